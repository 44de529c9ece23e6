#!/usr/bin/env bash
# Builds the CUDA backend module (librecontrol_cuda.so) against the CPU emulation of CUDA, so that
# `recontrol ... --device cuda` runs on a machine without a GPU: RC_CUDA_MODULE=<path> selects it.
# Logic only (no races, no device arithmetic). Usage: build_module.sh OUT_DIR; prints the path.
set -euo pipefail
OUT=${1:?usage: build_module.sh OUT_DIR}
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$ROOT"
mkdir -p "$OUT/src"
# one build at a time per OUT_DIR (ctest runs the tests that build it in parallel)
exec 9>"$OUT/.lock"
flock 9
FLAGS="-O2 -g -fPIC -w"
# an object is rebuilt when its .cu or any header it may include is newer (no dependency scan)
newest_h=$(find base kernels engine train tests/gpu/emu -name '*.h' -o -name '*.cuh' | xargs ls -t | head -n 1)
objs=()
for f in kernels/cuda/*.cu engine/*.cu train/*.cu; do
    [ -e "$f" ] || continue
    grep -q '#include <nccl.h>' "$f" && continue # NCCL's collectives have no emulation
    cc="$OUT/src/$(echo "$f" | tr '/' '_').cc"
    o="${cc%.cc}.o"
    if [ ! -e "$o" ] || [ "$f" -nt "$o" ] || [ "$newest_h" -nt "$o" ]; then
        python3 tests/gpu/emu/translate.py "$f" "$cc"
        g++ -std=c++17 $FLAGS -I tests/gpu/emu/include -I . -include tests/gpu/emu/emu.h -c "$cc" -o "$o"
    fi
    objs+=("$o")
done
if [ ! -e "$OUT/emu_runtime.o" ] || [ tests/gpu/emu/emu_runtime.cc -nt "$OUT/emu_runtime.o" ] ||
    [ tests/gpu/emu/emu.h -nt "$OUT/emu_runtime.o" ]; then
    g++ -std=c++17 $FLAGS -I tests/gpu/emu -c tests/gpu/emu/emu_runtime.cc -o "$OUT/emu_runtime.o"
fi
g++ -shared -o "$OUT/librecontrol_cuda.so" "${objs[@]}" "$OUT/emu_runtime.o"
echo "$OUT/librecontrol_cuda.so"
