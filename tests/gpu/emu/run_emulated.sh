#!/usr/bin/env bash
# Builds tests/gpu/gpu_tests against the CPU emulation of CUDA in tests/gpu/emu (every CUDA
# thread a fiber; AddressSanitizer on "device" memory) and runs it: checks the kernels' and the
# engine's logic on a machine without a GPU. Slow (use a filter), blind to races and to real
# floating-point behaviour of the device (no fast-math, no tensor cores).
# Usage: bash tests/gpu/emu/run_emulated.sh BUILD_DIR [FILTER]
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
FLAGS="-O1 -g -fsanitize=address -fno-omit-frame-pointer"
# the CPU part of the layers: every object of the rc_* libraries that did not come from a .cu file
find "$B/CMakeFiles" -path '*/rc_*.dir/*' -name '*.o' ! -name '*.cu.o' ! -path '*/rc_cuda_objs.dir/*' > "$E/objs.txt"
rm -f "$E/librc_cpu.a"
xargs ar rcs "$E/librc_cpu.a" < "$E/objs.txt"
# CUDA sources as C++: kernel<<<cfg>>>(args) -> rc_emu::launch(rc_emu::cfg(cfg), kernel, args)
objs=()
for f in kernels/cuda/*.cu engine/*.cu; do
    out="$E/src/$(echo "$f" | tr '/' '_').cc"
    python3 - "$f" "$out" <<'PY'
import re, sys
s = open(sys.argv[1]).read()
s = re.sub(r"extern\s+__shared__\s+(\w+)\s+(\w+)\[\];", r"\1 *\2 = (\1 *)rc_emu::dyn_smem();", s)
s = re.sub(r"(\b[A-Za-z_]\w*(?:<[^;{}<>]*>)?)<<<(.*?)>>>\((.*?)\);",
           lambda m: f"rc_emu::launch(rc_emu::cfg({m.group(2)}), {m.group(1)}, {m.group(3)});", s, flags=re.S)
open(sys.argv[2], "w").write(s)
PY
    o="${out%.cc}.o"
    g++ -std=c++17 $FLAGS -w -I tests/gpu/emu/include -I . -include tests/gpu/emu/emu.h -c "$out" -o "$o"
    objs+=("$o")
done
g++ -std=c++17 $FLAGS -I tests/gpu/emu -c tests/gpu/emu/emu_runtime.cc -o "$E/emu_runtime.o"
gcc -std=c11 $FLAGS -Wall -Wextra -Wno-unused-parameter -I tests/gpu/emu/include -I . \
    -DRC_FIXTURES="\"$ROOT/tests/fixtures\"" -c tests/gpu/gpu_tests.c -o "$E/gpu_tests.o"
g++ $FLAGS -fopenmp -o "$E/gpu_tests_emu" "$E/gpu_tests.o" "${objs[@]}" "$E/emu_runtime.o" \
    "$E/librc_cpu.a" -lcjson -lpcre2-8 -lsentencepiece -lz -lm
gcc -std=c11 $FLAGS -Wall -Wextra -Wno-unused-parameter -I tests/gpu/emu/include -I . \
    -c bench/gpu/bench_gpu.c -o "$E/bench_gpu.o"
g++ $FLAGS -fopenmp -o "$E/bench_gpu_emu" "$E/bench_gpu.o" "${objs[@]}" "$E/emu_runtime.o" \
    "$E/librc_cpu.a" -lcjson -lpcre2-8 -lsentencepiece -lz -lm
echo "built $E/gpu_tests_emu and $E/bench_gpu_emu (run the latter with --tiny)"
RC_GPU_TESTS_SAMPLE_DRAWS=${RC_GPU_TESTS_SAMPLE_DRAWS:-256} \
    ASAN_OPTIONS=detect_leaks=0:detect_stack_use_after_return=0 "$E/gpu_tests_emu" tests/fixtures ${FILTER:+"$FILTER"}
