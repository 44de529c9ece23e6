#!/usr/bin/env bash
# Builds tests/gpu/gpu_tests against the CPU emulation of CUDA in tests/gpu/emu (every CUDA
# thread a fiber; AddressSanitizer on "device" memory, UBSan alignment for vector accesses, warp
# collectives checked against their masks) and runs it: checks the kernels' and the engine's logic
# on a machine without a GPU. Slow (use a filter); no tensor cores, no performance model.
# Usage: bash tests/gpu/emu/run_emulated.sh BUILD_DIR [FILTER]
#   env: RC_EMU_SMS (SM count, default 4), RC_EMU_SEED (block order, 0 = in order),
#   RC_EMU_BUILD_ONLY=1 (build, do not run).
#   BUILD_DIR: a configured build (CUDA on or off) whose librc CPU objects are reused; the
#   emulated binary goes to BUILD_DIR/emu/gpu_tests_emu.
set -euo pipefail
B=${1:?usage: run_emulated.sh BUILD_DIR [FILTER]}
FILTER=${2:-}
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$ROOT"
E="$B/emu"
mkdir -p "$E/src"
cmake --build "$B" --target rc_cli -j2 >/dev/null
. tests/gpu/emu/common.sh
FLAGS=$EMU_FLAGS
# the CPU part of the layers: every object of the rc_* libraries that did not come from a .cu file
find "$B/CMakeFiles" -path '*/rc_*.dir/*' -name '*.o' ! -name '*.cu.o' ! -path '*/rc_cuda_objs.dir/*' > "$E/objs.txt"
rm -f "$E/librc_cpu.a"
xargs ar rcs "$E/librc_cpu.a" < "$E/objs.txt"
# base/dist.c uses MPI when the build found it (an unused -lmpi does no harm)
MPI_LIBS=$(pkg-config --libs ompi-c 2>/dev/null || true)
# CUDA sources as C++ (translate.py: launches, __shared__ storage per block)
objs=()
for f in kernels/cuda/*.cu engine/*.cu train/*.cu; do
    [ -e "$f" ] || continue
    grep -q '#include <nccl.h>' "$f" && continue # NCCL's collectives have no emulation
    o="$E/src/$(echo "$f" | tr '/' '_').o"
    emu_compile_cu "$f" "$o"
    objs+=("$o")
done
emu_compile_runtime "$E/emu_runtime.o"
gcc -std=c11 $FLAGS -Wall -Wextra -Wno-unused-parameter -I tests/gpu/emu/include -I . \
    -DRC_FIXTURES="\"$ROOT/tests/fixtures\"" -c tests/gpu/gpu_tests.c -o "$E/gpu_tests.o"
g++ $FLAGS -fopenmp -o "$E/gpu_tests_emu" "$E/gpu_tests.o" "${objs[@]}" "$E/emu_runtime.o" \
    "$E/librc_cpu.a" -lcjson -lpcre2-8 -lsentencepiece -lz -lm $MPI_LIBS
gcc -std=c11 $FLAGS -Wall -Wextra -Wno-unused-parameter -I tests/gpu/emu/include -I . \
    -c bench/gpu/bench_gpu.c -o "$E/bench_gpu.o"
g++ $FLAGS -fopenmp -o "$E/bench_gpu_emu" "$E/bench_gpu.o" "${objs[@]}" "$E/emu_runtime.o" \
    "$E/librc_cpu.a" -lcjson -lpcre2-8 -lsentencepiece -lz -lm $MPI_LIBS
echo "built $E/gpu_tests_emu and $E/bench_gpu_emu (run the latter with --tiny)"
[ -n "${RC_EMU_BUILD_ONLY:-}" ] && exit 0
RC_GPU_TESTS_SAMPLE_DRAWS=${RC_GPU_TESTS_SAMPLE_DRAWS:-256} "$E/gpu_tests_emu" tests/fixtures ${FILTER:+"$FILTER"}
