#!/usr/bin/env bash
# The whole GPU suite in ONE call on a lent GPU: the GPU test runner, compute-sanitizer memcheck
# and racecheck on a small case, the kernel and end-to-end benchmarks, and the HF transformers
# reference on the same card; JSON, logs and a Markdown summary under $OUT/gpu_suite.
#
# How to run it:
#  1. Build on the dev machine (no GPU needed), for sm_90a, without -march=native:
#       cmake -S . -B build-cuda -DCMAKE_BUILD_TYPE=Release -DRC_CUDA=ON -DRC_NATIVE=OFF
#       cmake --build build-cuda -j2 --target gpu_tests bench_gpu recontrol
#       bash bench/gpu/run_gpu_suite.sh --prepare build-cuda
#     (--prepare copies the three executables, the shared libraries they need that a GPU machine may
#      lack, and the commit id into build-cuda/gpu-run, about 25 MB.)
#  2. On the GPU machine, from the repository root of the same checkout with build-cuda/gpu-run
#     copied beside it in one run of at most 600 s:
#       OUT=<results dir> bash bench/gpu/run_gpu_suite.sh build-cuda
#  3. Copy the results into the repository:
#       cp <results dir>/gpu_suite/bench_gpu.json    bench/results/gpu-<card>-<date>.json
#       cp <results dir>/gpu_suite/hf_reference.json bench/results/hf-<card>-<date>.json
#       cp <results dir>/gpu_suite/summary.md        bench/results/gpu-<card>-<date>.md
#
# Order: tests, cli (recontrol --device cuda against the CPU engine), bench, sanitizer, HF
# reference. Steps can be chosen with RC_SUITE_STEPS (default "tests cli bench sanitizer hf");
# each has a time limit (RC_T_TESTS 90, RC_T_BENCH 150, RC_T_SANITIZER 45 per tool run, RC_T_HF 240 seconds), all cut to end by RC_DEADLINE (585 s) so
# that the run fits one 600 s call; a step that runs out leaves its partial output (the HF static-
# cache compile is the usual one to be cut: rerun with RC_SUITE_STEPS=hf in a second call).
set -uo pipefail

if [ "${1:-}" = "--prepare" ]; then
    B=${2:?usage: run_gpu_suite.sh --prepare BUILD_DIR}
    rm -rf "$B/gpu-run"
    mkdir -p "$B/gpu-run/lib"
    for exe in "$B/gpu_tests" "$B/bench_gpu" "$B/recontrol"; do
        [ -x "$exe" ] || { echo "missing $exe: build the gpu_tests, bench_gpu and recontrol targets first"; exit 1; }
        cp "$exe" "$B/gpu-run/"
        # every resolved library except glibc's and the CUDA toolkit's (the GPU image has those)
        ldd "$exe" | awk '/=> \//{print $3}' | grep -vE '/(libc|libm|libdl|libpthread|librt|ld-linux[^/]*)\.so|libcuda|libcudart|libcublas|libstdc\+\+|libgcc_s' |
            while read -r lib; do cp -L "$lib" "$B/gpu-run/lib/"; done
    done
    # the NCCL path (built when the CUDA build finds NCCL): libnccl is carried with it
    if [ -x "$B/nccl_tests" ]; then
        cp "$B/nccl_tests" "$B/gpu-run/"
        ldd "$B/nccl_tests" | awk '/=> \//{print $3}' | grep -E 'libnccl|libmpi|libopen-|libpmix|libhwloc|libevent' |
            while read -r lib; do cp -L "$lib" "$B/gpu-run/lib/"; done
    fi
    git rev-parse HEAD > "$B/gpu-run/commit" 2>/dev/null || echo unknown > "$B/gpu-run/commit"
    git status --porcelain --untracked-files=no | grep -q . && echo "+local changes" >> "$B/gpu-run/commit"
    du -sh "$B/gpu-run"
    echo "prepared $B/gpu-run: carry it to the GPU machine"
    exit 0
fi

B=${1:?usage: run_gpu_suite.sh BUILD_DIR   (or --prepare BUILD_DIR on the dev machine)}
cd "$(dirname "$0")/../.."
[ -d "$B/gpu-run" ] || { echo "$B/gpu-run is missing: run --prepare $B on the dev machine and carry it"; exit 1; }
BIN="$B/gpu-run"
OUTDIR=${OUT:-out}/gpu_suite
mkdir -p "$OUTDIR"
STEPS=${RC_SUITE_STEPS:-tests cli bench sanitizer hf}
T0=$(date +%s)
log() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
COMMIT=$(head -c 200 "$B/gpu-run/commit" 2>/dev/null | tr '\n' ' ' || echo unknown)
export RC_COMMIT="$COMMIT"

{
    echo "{\"date\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\", \"commit\": \"$COMMIT\"}"
} > "$OUTDIR/meta.json"
nvidia-smi -L 2>&1 | tee "$OUTDIR/nvidia-smi.txt"
nvidia-smi --query-gpu=name,memory.total,memory.used,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv >> "$OUTDIR/nvidia-smi.txt" 2>&1

if ldd "$BIN/gpu_tests" | grep -q "not found"; then
    export LD_LIBRARY_PATH="$PWD/$B/gpu-run/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    log "using carried libraries in $B/gpu-run/lib"
fi
# CUDA libraries the image keeps outside the loader's path (pip wheels, a versioned toolkit dir)
for lib in $(ldd "$BIN/gpu_tests" "$BIN/bench_gpu" "$BIN/recontrol" | awk '/not found/{print $1}' | sort -u); do
    hit=$(find /usr/local/cuda* /usr/lib /opt -name "$lib" 2>/dev/null | head -n 1)
    [ -n "$hit" ] && export LD_LIBRARY_PATH="$(dirname "$hit")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" &&
        log "found $lib in $(dirname "$hit")"
done
if ldd "$BIN/gpu_tests" | grep "not found"; then
    log "libraries still missing (run --prepare before carrying)"; exit 1
fi

has() { case " $STEPS " in *" $1 "*) return 0;; esac; return 1; }
# Seconds a step may take: its own limit, cut so that the whole run ends by RC_DEADLINE (585 s).
lim() {
    local left=$(( ${RC_DEADLINE:-585} - ($(date +%s) - T0) ))
    [ "$left" -lt 5 ] && left=5
    [ "$1" -lt "$left" ] && echo "$1" || echo "$left"
}
rc_all=0

if has tests; then
    log "gpu_tests"
    timeout "$(lim "${RC_T_TESTS:-90}")" "$BIN/gpu_tests" tests/fixtures > "$OUTDIR/gpu_tests.log" 2>&1
    rc=$?; [ $rc -ne 0 ] && rc_all=1
    grep -E "^(FAIL|device:|-- )" "$OUTDIR/gpu_tests.log"
    tail -n 1 "$OUTDIR/gpu_tests.log"; log "gpu_tests exit $rc"
    if [ -x "$BIN/nccl_tests" ]; then # one rank: communicator bootstrap and a device sum
        timeout "$(lim 60)" "$BIN/nccl_tests" > "$OUTDIR/nccl_tests.log" 2>&1
        rc=$?; [ $rc -ne 0 ] && rc_all=1
        tail -n 3 "$OUTDIR/nccl_tests.log"; log "nccl_tests exit $rc"
    fi
fi

# The CLI on the device against the CPU engine in the same binary: f32 logits and greedy
# continuations (plain and RE-Control) of a golden tiny model must agree (cli.log).
if has cli; then
    log "recontrol --device cuda vs --device cpu"
    R="$BIN/recontrol"
    M=tests/fixtures/tiny/mha_hd32_tied
    C="$OUTDIR/cli"
    mkdir -p "$C"
    cli_fail=0
    {
        set -x
        ids="--ids 1,5,9,33,7,100,42,3"
        "$R" logits --model $M $ids --out "$C/cpu.npy" &&
            "$R" logits --device cuda --dtype f32 --model $M $ids --out "$C/gpu.npy" &&
            python3 -c "
import numpy as n, sys
a = n.load('$C/cpu.npy'); b = n.load('$C/gpu.npy')
e = abs(a - b).max() / abs(a).max(); same = bool((a.argmax(1) == b.argmax(1)).all())
print('logits f32 max rel err %.3g, argmax equal %s' % (e, same)); sys.exit(0 if e < 1e-4 and same else 1)" ||
            cli_fail=1
        gen="generate --model $M --ids 1,5,9,33 --ids 7,3 --ids 100,20,4,8,15 --max-new-tokens 40 --batch 2 --json"
        "$R" $gen > "$C/gen_cpu.jsonl" && "$R" $gen --device cuda --dtype f32 > "$C/gen_gpu.jsonl" &&
            diff "$C/gen_cpu.jsonl" "$C/gen_gpu.jsonl" && echo "greedy f32: identical" || cli_fail=1
        printf '{"ids": [1, 5, 9, 33]}\n{"ids": [7, 3]}\n{"ids": [100, 20, 4, 8, 15]}\n' > "$C/p.jsonl"
        "$R" extract --model $M --data "$C/p.jsonl" --format ids --out "$C/run" --max-new-tokens 8 --dtype fp32 &&
            printf '{"index": 0, "reward": 1}\n{"index": 1, "reward": -1}\n{"index": 2, "reward": 0.5}\n' > "$C/run/rewards.jsonl" &&
            "$R" train --data "$C/run" --out "$C/v.safetensors" --hidden 8 --epochs 3 --batch-size 2 --val-frac 0 --quiet &&
            "$R" $gen --value-model "$C/v.safetensors" --steps 5 --step-size 2 > "$C/ctl_cpu.jsonl" &&
            "$R" $gen --value-model "$C/v.safetensors" --steps 5 --step-size 2 --device cuda --dtype f32 > "$C/ctl_gpu.jsonl" &&
            diff "$C/ctl_cpu.jsonl" "$C/ctl_gpu.jsonl" && echo "RE-Control greedy f32: identical" ||
            cli_fail=1
        set +x
    } > "$OUTDIR/cli.log" 2>&1
    rc=$cli_fail; [ $rc -ne 0 ] && rc_all=1
    grep -E "rel err|identical|error" "$OUTDIR/cli.log"; log "cli exit $rc"
fi

if has bench; then
    log "bench_gpu"
    timeout "$(lim "${RC_T_BENCH:-150}")" "$BIN/bench_gpu" --out "$OUTDIR/bench_gpu.json" 2>&1 | tee "$OUTDIR/bench_gpu.log" | grep -vE "^  (matmul|rmsnorm|swiglu|embedding|rope|argmax|sample|attention)"
    log "bench_gpu done"
fi

if has sanitizer; then
    CS=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || true)
    if [ -z "$CS" ]; then
        log "compute-sanitizer not found"
    else
        for tool in memcheck racecheck; do
            log "compute-sanitizer $tool (model mha_hd32_tied: every engine kernel, the decode graph)"
            timeout "$(lim "${RC_T_SANITIZER:-45}")" "$CS" --tool "$tool" --error-exitcode 3 \
                "$BIN/gpu_tests" tests/fixtures "model mha_hd32_tied" > "$OUTDIR/sanitizer_$tool.log" 2>&1
            rc=$?; [ $rc -ne 0 ] && rc_all=1
            grep -E "ERROR SUMMARY|passed, " "$OUTDIR/sanitizer_$tool.log" | tail -n 2; log "$tool exit $rc"
        done
        log "compute-sanitizer memcheck (attention kernels)"
        timeout "$(lim "${RC_T_SANITIZER:-45}")" "$CS" --tool memcheck --error-exitcode 3 \
            "$BIN/gpu_tests" tests/fixtures attention > "$OUTDIR/sanitizer_memcheck_attention.log" 2>&1
        rc=$?; [ $rc -ne 0 ] && rc_all=1
        grep -E "ERROR SUMMARY|passed, " "$OUTDIR/sanitizer_memcheck_attention.log" | tail -n 2; log "exit $rc"
    fi
fi

if has hf; then
    log "HF transformers reference"
    timeout "$(lim "${RC_T_HF:-240}")" python3 bench/gpu/hf_reference.py --out "$OUTDIR/hf_reference.json" > "$OUTDIR/hf_reference.log" 2>&1
    log "hf_reference exit $?"; tail -n 12 "$OUTDIR/hf_reference.log"
fi

python3 bench/gpu/summarize.py "$OUTDIR" > "$OUTDIR/summary.md" 2>&1 || true
log "summary ($OUTDIR/summary.md):"
grep -vE "^\| (matmul|rmsnorm|swiglu|embedding|rope|argmax|sample)" "$OUTDIR/summary.md"
exit $rc_all
