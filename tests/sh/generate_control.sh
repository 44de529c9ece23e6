#!/usr/bin/env bash
# `recontrol generate --value-model`: --steps 0 gives exactly plain generation, a large ascent
# changes the tokens, and a value network of the wrong width is refused with a clear message.
# The value network is trained here by the CLI itself (extract -> rewards -> train) on a tiny
# golden model, so the whole stage chain is exercised.
set -euo pipefail
B="$1/recontrol"
M="$2/tests/fixtures/tiny/mha_hd32_tied"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

. "$2/tests/sh/lib/tiny_value.sh"
V=$(tiny_value_net "$B" "$M" "$T") || { echo "$V"; fail "training the value network"; }

gen() { "$B" generate --model "$M" --ids 1,5,9,33 --ids 7,3 --max-new-tokens 12 --no-stop "$@" 2>"$T/log"; }
plain=$(gen) || { cat "$T/log"; fail "plain generate"; }
zero=$(gen --value-model "$V" --steps 0) || { cat "$T/log"; fail "steps 0"; }
[ "$plain" = "$zero" ] || fail "--steps 0 differs from plain: [$plain] vs [$zero]"
big=$(gen --value-model "$V" --steps 50 --step-size 100) || { cat "$T/log"; fail "steps 50"; }
[ "$plain" != "$big" ] || fail "a large ascent left every token unchanged"
grep -q "RE-Control on" "$T/log" || fail "no RE-Control notice on stderr"

if gen --value-model "$2/tests/fixtures/value/mlp2.safetensors" >/dev/null; then
    fail "a value model of width 20 was accepted for a hidden size of 64"
fi
grep -qi "20" "$T/log" && grep -q "64" "$T/log" || { cat "$T/log"; fail "width error does not name both widths"; }
echo "generate_control: 4 passed, 0 failed"
