#!/usr/bin/env bash
# `--device` on `recontrol generate` and `recontrol logits`: `--device cpu` gives the default
# output byte for byte, `--device cuda` without a usable GPU (or in a build without CUDA) fails
# with a clear message and exit 1, and a bad value (device or dtype) is a usage error (exit 2).
set -euo pipefail
B="$1/recontrol"
M="$2/tests/fixtures/tiny/mha_hd32_tied"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
pass=0

gen() { "$B" generate --model "$M" --ids 1,5,9,33 --ids 7,3 --max-new-tokens 6 --no-stop "$@"; }
def=$(gen 2>"$T/log") || { cat "$T/log"; fail "default generate"; }
cpu=$(gen --device cpu 2>"$T/log") || { cat "$T/log"; fail "generate --device cpu"; }
[ -n "$def" ] && [ "$def" = "$cpu" ] || fail "generate --device cpu differs: [$def] vs [$cpu]"
pass=$((pass + 1))

"$B" logits --model "$M" --ids 1,5,9,33 --out "$T/a.npy" 2>"$T/log" || { cat "$T/log"; fail "logits"; }
"$B" logits --model "$M" --ids 1,5,9,33 --out "$T/b.npy" --device cpu 2>"$T/log" ||
    { cat "$T/log"; fail "logits --device cpu"; }
cmp -s "$T/a.npy" "$T/b.npy" || fail "logits --device cpu differs from the default"
pass=$((pass + 1))

# --device cuda: only checked where no GPU is usable (a GPU run is compared in the GPU suite)
has_gpu=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q GPU; then has_gpu=1; fi
if [ "$has_gpu" = 0 ]; then
    for cmd in generate logits; do
        set +e
        if [ $cmd = generate ]; then gen --device cuda >"$T/out" 2>"$T/log"
        else "$B" logits --model "$M" --ids 1,5 --out "$T/c.npy" --device cuda >"$T/out" 2>"$T/log"; fi
        st=$?
        set -e
        [ $st = 1 ] || { cat "$T/log"; fail "$cmd --device cuda without a GPU: exit $st, expected 1"; }
        grep -Eq "built without CUDA|no CUDA device|CUDA backend module" "$T/log" ||
            { cat "$T/log"; fail "$cmd --device cuda: no clear message"; }
        [ ! -e "$T/c.npy" ] || fail "logits --device cuda wrote a file without a GPU"
        pass=$((pass + 1))
    done
else
    echo "device_flag: a GPU is present; the --device cuda failure checks are skipped"
fi

for args in "--device tpu" "--dtype f8"; do
    set +e
    gen $args >"$T/out" 2>"$T/log"; st1=$?
    "$B" logits --model "$M" --ids 1,5 --out "$T/d.npy" $args 2>"$T/log2"; st2=$?
    set -e
    [ $st1 = 2 ] && [ $st2 = 2 ] || fail "$args: exit $st1 / $st2, expected 2"
    grep -q "expected" "$T/log" && grep -q "expected" "$T/log2" ||
        { cat "$T/log" "$T/log2"; fail "$args: no message naming the accepted values"; }
    pass=$((pass + 1))
done
echo "device_flag: $pass passed, 0 failed"
