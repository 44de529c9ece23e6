#!/usr/bin/env bash
# The whole GPU suite in ONE call on a lent GPU: a preflight (driver, runtime, device, libraries,
# built architectures), the kernel tests, the engine tests, compute-sanitizer memcheck, racecheck
# and synccheck on the kernel tests at small shapes, the CLI on the device against the CPU engine,
# the benchmarks and the HF transformers reference. Every step is time-boxed and writes its log
# and its result under $OUT/gpu_suite as it ends, and summary.json + summary.md (what passed, what
# failed, the first error of each) are rewritten after every step, so a call cut short still
# leaves everything up to the step it was in.
#
# How to run it:
#  1. Build on the dev machine (no GPU needed), without -march=native:
#       cmake -S . -B build-cuda -DCMAKE_BUILD_TYPE=Release -DRC_CUDA=ON -DRC_NATIVE=OFF
#       cmake --build build-cuda -j2 --target gpu_tests bench_gpu recontrol emu_selftest_cuda
#       bash bench/gpu/run_gpu_suite.sh --prepare build-cuda
#     (--prepare checks the build holds sm_90a code, copies the executables, the CUDA module when
#      there is one, the shared libraries a bare GPU machine may lack, cuobjdump and the commit into
#      build-cuda/gpu-run.)
#  2. On the GPU machine, from the repository root of the same checkout with build-cuda/gpu-run
#     beside it, in one call (the steps are cut to end by RC_DEADLINE, 420 s by default):
#       OUT=<results dir> bash bench/gpu/run_gpu_suite.sh build-cuda
#  3. Copy the results into the repository:
#       cp <results dir>/gpu_suite/bench_gpu.json    bench/results/gpu-<card>-<date>.json
#       cp <results dir>/gpu_suite/hf_reference.json bench/results/hf-<card>-<date>.json
#       cp <results dir>/gpu_suite/summary.md        bench/results/gpu-<card>-<date>.md
#  Rehearsal without a GPU, against the CPU emulation of CUDA (tests/gpu/emu): every step that
#  can run does, the others say "skipped: no GPU":
#       RC_EMU_BUILD_ONLY=1 bash tests/gpu/emu/run_emulated.sh build
#       OUT=<dir> bash bench/gpu/run_gpu_suite.sh --emulated build
#
# Steps (RC_SUITE_STEPS, default all, in this order) and their time limits in seconds (RC_T_<STEP>):
#   preflight 30, selftest 20, kernel_tests 90, engine_tests 60, memcheck 45, racecheck 45,
#   synccheck 30, cli 40, backend 40, bench 130, value 60, hf 100; all cut to end by RC_DEADLINE (420 s). Expected on
#   an H200 about 7 minutes (bench/gpu/NOTES.md). Exit status: 0 when no step failed, 1 otherwise,
#   2 when the preflight refused the build (then nothing else runs).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SUMMARIZE="$ROOT/bench/gpu/summarize.py"

# cuobjdump: the toolkit's, else one carried in gpu-run/tools, else the PyPI package's
find_cuobjdump() {
    local c
    for c in "${CUOBJDUMP:-}" "$(command -v cuobjdump 2>/dev/null)" /usr/local/cuda/bin/cuobjdump \
             "${1:-}/tools/cuobjdump"; do
        [ -n "$c" ] && [ -x "$c" ] && { echo "$c"; return 0; }
    done
    c=$(python3 -c 'import nvidia, os, glob
for p in nvidia.__path__:
    for f in glob.glob(os.path.join(p, "*", "bin", "cuobjdump")): print(f)' 2>/dev/null | head -n 1)
    [ -n "$c" ] && [ -x "$c" ] && { echo "$c"; return 0; }
    return 1
}

# The architectures of the device code in FILE (one per line: sm_90a, sm_80 ...; PTX as compute_80).
list_archs() {
    local cu=$1 f=$2
    { "$cu" --list-elf "$f" 2>/dev/null | grep -oE 'sm_[0-9]+[a-z]?' ; \
      "$cu" --list-ptx "$f" 2>/dev/null | grep -oE 'sm_[0-9]+[a-z]?' | sed 's/^sm_/compute_/'; } | sort -u
}

if [ "${1:-}" = "--prepare" ]; then
    B=${2:?usage: run_gpu_suite.sh --prepare BUILD_DIR}
    rm -rf "$B/gpu-run"
    mkdir -p "$B/gpu-run/lib" "$B/gpu-run/tools"
    for exe in "$B/gpu_tests" "$B/bench_gpu" "$B/recontrol" "$B/emu_selftest_cuda" "$B/librecontrol_cuda.so"; do
        case "$exe" in *.so) [ -e "$exe" ] || continue ;; esac # the CUDA module, when the build makes one
        [ -e "$exe" ] || { echo "missing $exe: build the gpu_tests, bench_gpu, recontrol and emu_selftest_cuda targets first"; exit 1; }
        cp "$exe" "$B/gpu-run/"
        # every resolved library except glibc's, the driver's and cuBLAS (the GPU image has those;
        # cudart is linked statically)
        ldd "$exe" | awk '/=> \//{print $3}' | grep -vE '/(libc|libm|libdl|libpthread|librt|ld-linux[^/]*)\.so|libcuda\.so|libcudart|libcublas|libstdc\+\+|libgcc_s' |
            while read -r lib; do cp -L "$lib" "$B/gpu-run/lib/"; done
    done
    # the NCCL path (built when the CUDA build finds NCCL): libnccl is carried with it
    if [ -x "$B/nccl_tests" ]; then
        cp "$B/nccl_tests" "$B/gpu-run/"
        ldd "$B/nccl_tests" | awk '/=> \//{print $3}' | grep -E 'libnccl|libmpi|libopen-|libpmix|libhwloc|libevent' |
            while read -r lib; do cp -L "$lib" "$B/gpu-run/lib/"; done
    fi
    cu=$(find_cuobjdump "") || {
        tmp=$(mktemp -d)
        if pip download -q --no-deps nvidia-cuda-cuobjdump -d "$tmp" >/dev/null 2>&1; then
            python3 -m zipfile -e "$tmp"/nvidia_cuda_cuobjdump-*.whl "$tmp/x" &&
                cu=$(find "$tmp/x" -name cuobjdump -type f | head -n 1) && chmod +x "$cu"
        fi
    }
    if [ -n "${cu:-}" ] && [ -x "$cu" ]; then
        cp "$cu" "$B/gpu-run/tools/cuobjdump"
        list_archs "$cu" "$B/gpu_tests" > "$B/gpu-run/archs.txt"
        echo "device code in gpu_tests: $(tr '\n' ' ' < "$B/gpu-run/archs.txt")"
        grep -qx sm_90a "$B/gpu-run/archs.txt" ||
            { echo "refused: no sm_90a code in $B/gpu_tests (set CMAKE_CUDA_ARCHITECTURES before enable_language)"; exit 1; }
    else
        echo "warning: no cuobjdump here (toolkit or PyPI nvidia-cuda-cuobjdump): architectures unchecked"
    fi
    (command -v nvcc >/dev/null && nvcc --version | tail -n 2) > "$B/gpu-run/toolkit.txt" 2>&1
    git rev-parse HEAD > "$B/gpu-run/commit" 2>/dev/null || echo unknown > "$B/gpu-run/commit"
    git status --porcelain --untracked-files=no | grep -q . && echo "+local changes" >> "$B/gpu-run/commit"
    du -sh "$B/gpu-run"
    echo "prepared $B/gpu-run: carry it to the GPU machine"
    exit 0
fi

EMU=0
if [ "${1:-}" = "--emulated" ]; then EMU=1; shift; fi
B=${1:?usage: run_gpu_suite.sh [--emulated] BUILD_DIR   (or --prepare BUILD_DIR on the dev machine)}
cd "$ROOT"
case "$B" in /*) ;; *) B="$ROOT/$B" ;; esac
if [ $EMU = 1 ]; then
    BIN="$B/emu"
    GPU_TESTS="$BIN/gpu_tests_emu"
    BENCH="$BIN/bench_gpu_emu"
    [ -x "$GPU_TESTS" ] || { echo "$GPU_TESTS is missing: RC_EMU_BUILD_ONLY=1 bash tests/gpu/emu/run_emulated.sh $B"; exit 1; }
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:detect_stack_use_after_return=0}
    export RC_GPU_TESTS_SAMPLE_DRAWS=${RC_GPU_TESTS_SAMPLE_DRAWS:-256}
else
    BIN="$B/gpu-run"
    GPU_TESTS="$BIN/gpu_tests"
    BENCH="$BIN/bench_gpu"
    [ -d "$BIN" ] || { echo "$BIN is missing: run --prepare on the dev machine and carry it"; exit 1; }
fi
OUTDIR=${OUT:-out}/gpu_suite
mkdir -p "$OUTDIR/steps"
rm -f "$OUTDIR"/steps/*.json
STEPS=${RC_SUITE_STEPS:-preflight selftest kernel_tests engine_tests memcheck racecheck synccheck cli backend bench value hf}
DEADLINE=${RC_DEADLINE:-420}
T0=$(date +%s)
log() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
COMMIT=$(head -c 200 "$BIN/commit" 2>/dev/null | tr '\n' ' ')
[ -n "$COMMIT" ] || COMMIT="$(git rev-parse HEAD 2>/dev/null) (working tree)"
export RC_COMMIT="$COMMIT"
HAVE_GPU=0
[ $EMU = 0 ] && nvidia-smi -L >/dev/null 2>&1 && HAVE_GPU=1
printf '{"date": "%s", "commit": "%s", "mode": "%s", "deadline_s": %s, "steps": "%s"}\n' \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$COMMIT" "$([ $EMU = 1 ] && echo emulated || echo gpu)" \
    "$DEADLINE" "$STEPS" > "$OUTDIR/meta.json"

# CUDA libraries the image keeps outside the loader's path (carried ones, pip wheels, a toolkit)
if [ $EMU = 0 ]; then
    for exe in "$GPU_TESTS" "$BENCH" "$BIN/recontrol" "$BIN/librecontrol_cuda.so"; do
        [ -e "$exe" ] || continue
        if ldd "$exe" | grep -q "not found"; then
            export LD_LIBRARY_PATH="$BIN/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
            for lib in $(ldd "$exe" | awk '/not found/{print $1}' | sort -u); do
                hit=$(find /usr/local/cuda* /usr/lib /opt -name "$lib" 2>/dev/null | head -n 1)
                [ -n "$hit" ] && export LD_LIBRARY_PATH="$(dirname "$hit"):$LD_LIBRARY_PATH"
            done
        fi
    done
fi

has() { case " $STEPS " in *" $1 "*) return 0;; esac; return 1; }
# Seconds a step may take: its own limit, cut so that the whole run ends by the deadline.
lim() {
    local left=$(( DEADLINE - ($(date +%s) - T0) ))
    [ "$left" -lt 3 ] && left=3
    [ "$1" -lt "$left" ] && echo "$1" || echo "$left"
}
summarize() { python3 "$SUMMARIZE" "$OUTDIR" > /dev/null 2>"$OUTDIR/summarize.err" || true; }
json_str() { python3 -c 'import json, sys; print(json.dumps(sys.argv[1]))' "$1"; }
step_record() { # NAME STATUS RC SECONDS LIMIT NOTE
    printf '{"step": "%s", "status": "%s", "rc": %s, "seconds": %s, "limit_s": %s, "log": "%s.log", "note": %s}\n' \
        "$1" "$2" "$3" "$4" "$5" "$1" "$(json_str "$6")" > "$OUTDIR/steps/$1.json"
}
SKIP=77
FAILED=0
# run_step NAME DEFAULT_LIMIT FUNCTION: FUNCTION runs time-boxed in the background of this shell,
# its output in NAME.log; exit 0 passed, 77 skipped (its last line says why), 124 timeout, else failed.
run_step() {
    local name=$1 def=$2 fn=$3 var t s0 rc status note secs
    has "$name" || return 0
    var="RC_T_$(echo "$name" | tr '[:lower:]' '[:upper:]')"
    t=$(lim "${!var:-$def}")
    step_record "$name" running null null "$t" "started; a call cut short ends here"
    summarize
    log "$name (limit $t s)"
    s0=$(date +%s.%N)
    export -f "$fn"
    timeout -k 5 "$t" bash -c "set -o pipefail; $fn" > "$OUTDIR/$name.log" 2>&1 < /dev/null
    rc=$?
    secs=$(python3 -c "import time; print(round(time.time() - $s0, 1))")
    note=""
    case $rc in
        0) status=passed ;;
        $SKIP) status=skipped; note=$(tail -n 1 "$OUTDIR/$name.log") ;;
        124|137) status=timeout; note="cut after $t s" ;;
        2) status=failed; [ "$name" = preflight ] && status=refused ;;
        *) status=failed ;;
    esac
    case $status in failed|timeout|refused) FAILED=1 ;; esac
    step_record "$name" "$status" "$rc" "$secs" "$t" "$note"
    summarize
    log "$name: $status ($secs s)${note:+: $note}"
    return 0
}
export GPU_TESTS BENCH BIN EMU HAVE_GPU OUTDIR ROOT SKIP
export -f find_cuobjdump list_archs

# ---- the steps ----------------------------------------------------------------------------------

step_preflight() {
    bad=0
    echo "== host"; uname -srm; nproc; free -g | head -n 2
    echo "== device and driver"
    if [ "$HAVE_GPU" = 1 ]; then
        nvidia-smi
        nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total,clocks.max.sm,power.limit --format=csv
        cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n 1 | tr -d ' ')
        drv_cuda=$(nvidia-smi | grep -oE 'CUDA Version: [0-9]+\.[0-9]+' | head -n 1 | awk '{print $3}')
    else
        echo "skipped: no GPU (nvidia-smi: no device)"
        cap=""; drv_cuda=""
    fi
    echo "== runtime the binaries were built with (cudart linked statically)"
    cat "$BIN/toolkit.txt" 2>/dev/null || (command -v nvcc >/dev/null && nvcc --version | tail -n 2) || echo "unknown"
    rt=$(grep -oE 'release [0-9]+\.[0-9]+' "$BIN/toolkit.txt" 2>/dev/null | awk '{print $2}')
    if [ -n "$drv_cuda" ] && [ -n "$rt" ]; then
        if python3 -c "import sys; a=tuple(map(int,'$drv_cuda'.split('.'))); b=tuple(map(int,'$rt'.split('.'))); sys.exit(0 if a >= b else 1)"; then
            echo "driver supports CUDA $drv_cuda >= runtime $rt: ok"
        else
            echo "ERROR: the driver supports CUDA $drv_cuda only, the binaries need $rt (cudaErrorInsufficientDriver)"; bad=1
        fi
    fi
    echo "== recontrol info --device (what the backend interface finds: module, runtime, cuBLAS, devices)"
    "$BIN/recontrol" info --device || echo "note: recontrol info --device failed"
    echo "== libraries (ldd)"
    for exe in "$GPU_TESTS" "$BENCH" "$BIN/recontrol" "$BIN/librecontrol_cuda.so" "$BIN/emu_selftest_cuda" "$BIN/nccl_tests"; do
        [ -e "$exe" ] || { echo "$exe: absent"; continue; }
        echo "-- $exe"; ldd "$exe"
        if ldd "$exe" | grep -q "not found"; then echo "ERROR: $exe: libraries not found"; bad=1; fi
        ldd "$exe" | grep -q libcudart && echo "note: $exe links libcudart dynamically"
    done
    echo "== device code (cuobjdump --list-elf / --list-ptx)"
    if [ "$EMU" = 1 ]; then
        dev=${RC_SUITE_DEVICE_BUILD:-$(dirname "$BIN")/gpu_tests} # a real CUDA build to check, if any
    else
        dev="$GPU_TESTS"
    fi
    cu=$(find_cuobjdump "$BIN") || cu=""
    if [ -x "$dev" ] && [ -n "$cu" ]; then
        echo "cuobjdump: $cu"
        archs=$(list_archs "$cu" "$dev" | tr '\n' ' ')
        echo "architectures in $dev: ${archs:-none}"
        if [ -z "$archs" ]; then echo "ERROR: no device code in $dev"; bad=1; fi
        case " $archs " in
            *" sm_90a "*) echo "sm_90a code present: ok" ;;
            *) if [ "$cap" = "9.0" ] || [ -z "$cap" ]; then
                   echo "ERROR: no sm_90a code in $dev, needed for a Hopper card (H100/H200): rebuild with CMAKE_CUDA_ARCHITECTURES=90a-real;80-virtual"
                   bad=2
               fi ;;
        esac
    elif [ -s "$BIN/archs.txt" ]; then
        echo "architectures (recorded by --prepare): $(tr '\n' ' ' < "$BIN/archs.txt")"
        grep -qx sm_90a "$BIN/archs.txt" || { echo "ERROR: no sm_90a code (recorded by --prepare)"; bad=2; }
    else
        echo "architectures unchecked: ${dev} absent or no cuobjdump (toolkit, gpu-run/tools, PyPI nvidia-cuda-cuobjdump)"
    fi
    echo "== fixtures"; ls tests/fixtures/tiny | head -n 20
    [ "$bad" = 2 ] && exit 2
    [ "$bad" = 1 ] && exit 1
    [ "$HAVE_GPU" = 1 ] || [ "$EMU" = 1 ] || { echo "skipped: no GPU"; exit "$SKIP"; }
    exit 0
}

# The emulator's self-test on the device: what the emulator accepts must run here too, and
# compute-sanitizer must flag the deliberately broken kernels the emulator refuses.
step_selftest() {
    [ "$HAVE_GPU" = 1 ] || { echo "skipped: no GPU (the emulated self-test runs in ctest)"; exit "$SKIP"; }
    exe="$BIN/emu_selftest_cuda"
    [ -x "$exe" ] || { echo "ERROR: $exe missing (build emu_selftest_cuda, run --prepare)"; exit 1; }
    rc=0
    "$exe" ok || { echo "FAIL: emu_selftest_cuda ok: the device disagrees with the emulator"; rc=1; }
    cs=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -n 1)
    [ -n "$cs" ] || { echo "compute-sanitizer not found: broken kernels not checked"; exit $rc; }
    for c in "racecheck race_raw" "racecheck race_war" "racecheck race_dynamic" "memcheck misaligned_load"; do
        set -- $c
        want="race reported|hazard"; [ "$1" = memcheck ] && want="misaligned"
        out=$("$cs" --tool "$1" "$exe" "$2" 2>&1)
        if echo "$out" | grep -v "^$2:" | grep -qiE -- "$want"; then echo "ok: $1 flags $2: $(echo "$out" | grep -m1 -iE -- "$want")"
        else echo "FAIL: $1 on $2: nothing matching \"$want\" in:"; echo "$out" | tail -n 20; rc=1; fi
    done
    exit $rc
}

# kernel tests: every gpu_tests group but the engine ones
KERNEL_FILTER=${RC_SUITE_KERNEL_FILTER:-!engine,!model}
ENGINE_FILTER=${RC_SUITE_ENGINE_FILTER:-engine,model}
export KERNEL_FILTER ENGINE_FILTER
step_kernel_tests() { "$GPU_TESTS" "$ROOT/tests/fixtures" "$KERNEL_FILTER"; }
step_engine_tests() {
    "$GPU_TESTS" "$ROOT/tests/fixtures" "$ENGINE_FILTER" || exit 1
    if [ "$EMU" = 0 ] && [ -x "$BIN/nccl_tests" ]; then # one rank: communicator bootstrap and a device sum
        "$BIN/nccl_tests" || { echo "FAIL: nccl_tests"; exit 1; }
    fi
}

# compute-sanitizer on the kernel tests at small shapes (RC_GPU_TESTS_SMALL) and on the smallest
# model (every engine kernel and the decode graph once)
sanitizer() {
    [ "$HAVE_GPU" = 1 ] || { echo "skipped: no GPU"; exit "$SKIP"; }
    cs=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -n 1)
    [ -n "$cs" ] || { echo "skipped: compute-sanitizer not found"; exit "$SKIP"; }
    rc=0
    RC_GPU_TESTS_SMALL=1 RC_GPU_TESTS_SAMPLE_DRAWS=64 "$cs" --tool "$1" --error-exitcode 3 \
        "$GPU_TESTS" "$ROOT/tests/fixtures" "$KERNEL_FILTER" || rc=1
    [ "$1" = memcheck ] && { "$cs" --tool memcheck --error-exitcode 3 "$GPU_TESTS" "$ROOT/tests/fixtures" "model mha_hd32_tied" || rc=1; }
    exit $rc
}
step_memcheck() { sanitizer memcheck; }
step_racecheck() { sanitizer racecheck; }
step_synccheck() { sanitizer synccheck; }
export -f sanitizer

# The CLI on the device against the CPU engine in the same binary: f32 logits and greedy
# continuations (plain and RE-Control) of a golden tiny model must agree.
step_cli() {
    [ "$HAVE_GPU" = 1 ] || { echo "skipped: no GPU (recontrol --device cuda loads the real CUDA module)"; exit "$SKIP"; }
    R="$BIN/recontrol"
    M="$ROOT/tests/fixtures/tiny/mha_hd32_tied"
    C="$OUTDIR/cli"
    mkdir -p "$C"
    set -x
    ids="--ids 1,5,9,33,7,100,42,3"
    "$R" logits --model $M $ids --out "$C/cpu.npy" &&
        "$R" logits --device cuda --dtype f32 --model $M $ids --out "$C/gpu.npy" &&
        python3 -c "
import numpy as n, sys
a = n.load('$C/cpu.npy'); b = n.load('$C/gpu.npy')
e = abs(a - b).max() / abs(a).max(); same = bool((a.argmax(1) == b.argmax(1)).all())
print('logits f32 max rel err %.3g, argmax equal %s' % (e, same)); sys.exit(0 if e < 1e-4 and same else 1)" ||
        { echo "FAIL: logits differ"; exit 1; }
    gen="generate --model $M --ids 1,5,9,33 --ids 7,3 --ids 100,20,4,8,15 --max-new-tokens 40 --batch 2 --json"
    "$R" $gen > "$C/gen_cpu.jsonl" && "$R" $gen --device cuda --dtype f32 > "$C/gen_gpu.jsonl" &&
        diff "$C/gen_cpu.jsonl" "$C/gen_gpu.jsonl" && echo "greedy f32: identical" || { echo "FAIL: greedy differs"; exit 1; }
    printf '{"ids": [1, 5, 9, 33]}\n{"ids": [7, 3]}\n{"ids": [100, 20, 4, 8, 15]}\n' > "$C/p.jsonl"
    "$R" extract --model $M --data "$C/p.jsonl" --format ids --out "$C/run" --max-new-tokens 8 --dtype fp32 &&
        printf '{"index": 0, "reward": 1}\n{"index": 1, "reward": -1}\n{"index": 2, "reward": 0.5}\n' > "$C/run/rewards.jsonl" &&
        "$R" train --data "$C/run" --out "$C/v.safetensors" --hidden 8 --epochs 3 --batch-size 2 --val-frac 0 --quiet &&
        "$R" $gen --value-model "$C/v.safetensors" --steps 5 --step-size 2 > "$C/ctl_cpu.jsonl" &&
        "$R" $gen --value-model "$C/v.safetensors" --steps 5 --step-size 2 --device cuda --dtype f32 > "$C/ctl_gpu.jsonl" &&
        diff "$C/ctl_cpu.jsonl" "$C/ctl_gpu.jsonl" && echo "RE-Control greedy f32: identical" ||
        { echo "FAIL: RE-Control greedy differs"; exit 1; }
}

# The backend interface on the device against the CPU backend: the whole tiny pipeline (extract
# with capture, labels, training, plain and RE-Control generation, eval), logits and sampled
# generation with --device cuda --dtype f32 (tests/sh/emu_backend.sh, run here on the real module).
step_backend() {
    [ "$HAVE_GPU" = 1 ] || { echo "skipped: no GPU (tests/sh/emu_backend.sh covers it on the emulation in ctest)"; exit "$SKIP"; }
    RC_BACKEND_REAL=1 bash "$ROOT/tests/sh/emu_backend.sh" "$BIN" "$ROOT"
}

step_bench() {
    if [ "$EMU" = 1 ]; then "$BENCH" --tiny --out "$OUTDIR/bench_gpu.json"; else "$BENCH" --out "$OUTDIR/bench_gpu.json"; fi
}

# PyTorch on the value-network benchmarks' shapes (issue 12): the control loop by autograd and in
# closed form as a CUDA graph, and the reference's bf16 training loop (bench/gpu/value_reference.py)
step_value() {
    [ "$HAVE_GPU" = 1 ] || { echo "skipped: no GPU (PyTorch on the card)"; exit "$SKIP"; }
    python3 "$ROOT/bench/gpu/value_reference.py" --out "$OUTDIR/value_reference.json"
}

step_hf() {
    [ "$HAVE_GPU" = 1 ] || { echo "skipped: no GPU (the reference runs HF transformers on the card)"; exit "$SKIP"; }
    python3 "$ROOT/bench/gpu/hf_reference.py" --out "$OUTDIR/hf_reference.json"
}
export -f step_preflight step_selftest step_kernel_tests step_engine_tests step_memcheck step_racecheck \
    step_synccheck step_cli step_backend step_bench step_value step_hf

run_step preflight 30 step_preflight
if grep -q '"rc": 2,' "$OUTDIR/steps/preflight.json" 2>/dev/null; then
    log "preflight refused the build: $(grep -m1 '^ERROR' "$OUTDIR/preflight.log")"
    summarize; cat "$OUTDIR/summary.md"
    exit 2
fi
run_step selftest 20 step_selftest
run_step kernel_tests 90 step_kernel_tests
run_step engine_tests 60 step_engine_tests
run_step memcheck 45 step_memcheck
run_step racecheck 45 step_racecheck
run_step synccheck 30 step_synccheck
run_step cli 40 step_cli
run_step backend 40 step_backend
run_step bench 130 step_bench
run_step value 60 step_value
run_step hf 100 step_hf
summarize
log "summary: $OUTDIR/summary.md and summary.json"
cat "$OUTDIR/summary.md"
exit $FAILED
