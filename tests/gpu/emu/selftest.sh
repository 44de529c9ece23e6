#!/usr/bin/env bash
# Builds tests/gpu/emu/selftest.cu against the CUDA emulation and checks that what must work
# works (with 4, 66 and 132 SMs, shuffled and in-order blocks, eager and lazy streams) and that
# each deliberately broken kernel or stream order is refused with the expected message. About a
# minute; no GPU needed.
# Usage: bash tests/gpu/emu/selftest.sh OUT_DIR
set -euo pipefail
OUT=${1:?usage: selftest.sh OUT_DIR}
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$ROOT"
mkdir -p "$OUT"
. tests/gpu/emu/common.sh
emu_compile_runtime "$OUT/emu_runtime.o"
emu_compile_cu tests/gpu/emu/selftest.cu "$OUT/selftest.o"
gcc -std=c11 $EMU_FLAGS -I . -c base/common.c -o "$OUT/common.o" # fp16/bf16 conversions
g++ $EMU_FLAGS -o "$OUT/emu_selftest" "$OUT/selftest.o" "$OUT/emu_runtime.o" "$OUT/common.o" -lm
B="$OUT/emu_selftest"

fails=0
for sms in 4 66 132; do
    for seed in 1 0 7; do
        streams=eager; [ "$seed" = 7 ] && streams=lazy
        if ! RC_EMU_SMS=$sms RC_EMU_SEED=$seed RC_EMU_STREAMS=$streams "$B" ok > "$OUT/ok.log" 2>&1; then
            echo "FAIL: features with RC_EMU_SMS=$sms RC_EMU_SEED=$seed RC_EMU_STREAMS=$streams:"
            cat "$OUT/ok.log"; fails=$((fails + 1))
        fi
    done
done
[ "$fails" = 0 ] && { echo "ok: features with 4/66/132 SMs, seeds 1/0/7, eager and lazy streams"; cat "$OUT/ok.log"; }

# broken kernels: MODE|a fragment the emulator's message must contain
while IFS='|' read -r mode want; do
    [ -z "$mode" ] && continue
    streams=eager; case $mode in stream_*) streams=lazy ;; esac
    if { RC_EMU_STREAMS=$streams "$B" "$mode" > "$OUT/$mode.log" 2>&1; } 2>/dev/null; then
        echo "FAIL: $mode ran without an error"; cat "$OUT/$mode.log"; fails=$((fails + 1))
    elif ! grep -qF -- "$want" "$OUT/$mode.log"; then
        echo "FAIL: $mode: expected \"$want\" in:"; cat "$OUT/$mode.log"; fails=$((fails + 1))
    else
        echo "ok: $mode refused: $(grep -m1 -F -- "$want" "$OUT/$mode.log" | cut -c1-150)"
    fi
done <<'CASES'
grid_sync_plain|grid.sync() in a kernel not launched with cudaLaunchCooperativeKernel
grid_sync_exit|grid.sync() can never complete
shfl_partial_warp|lanes 16-31 do not exist (the warp is partial)
shfl_divergent|lanes 16-31 have exited
shfl_outside_mask|reads lane 16, which is not in its mask 0x0000ffff
race_raw|read after write at __shared__ s +
race_war|write after read at __shared__ s +
race_dynamic|write after write at extern __shared__ (dynamic)
misaligned_load|misaligned address
stream_missing_wait|(stream ordering)
stream_missing_sync|(stream ordering)
CASES
if [ "$fails" != 0 ]; then echo "$fails emulator self-test(s) failed"; exit 1; fi
echo "all emulator self-tests passed"
