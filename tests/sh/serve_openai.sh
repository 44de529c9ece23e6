#!/usr/bin/env bash
# `recontrol serve`: --help and start-up refusals with clear messages, then the official openai
# client against the server on loopback (tests/serve/test_openai.py: texts equal to
# `recontrol generate`, errors, queue, disconnect, timeout). Args: <build_dir> <source_dir>.
set -euo pipefail
B="$1/recontrol"
fail() { echo "FAIL: $*"; exit 1; }
"$B" serve --help | grep -q -- "--value-model NAME=FILE" || fail "serve --help"
if err=$(timeout 60 "$B" serve --model "$2/tests/fixtures/tiny/mha_hd32_tied" --port 0 2>&1); then
    fail "a model without a tokenizer was served"
fi
echo "$err" | grep -q "needs the model's tokenizer" || fail "no-tokenizer message: $err"
if err=$(timeout 60 "$B" serve --port 70000 2>&1); then fail "port 70000 accepted"; fi
echo "$err" | grep -q -- "--port" || fail "port message: $err"
if err=$(timeout 60 "$B" serve --value-model nameonly 2>&1); then fail "--value-model without =FILE accepted"; fi
echo "$err" | grep -q "NAME=FILE" || fail "value-model message: $err"
exec timeout 300 python3 "$2/tests/serve/test_openai.py" "$1" "$2"
