# Shared by run_emulated.sh and selftest.sh: the compiler flags of the emulated build and a helper
# that translates one .cu file (translate.py) and compiles it against emu.h.
# AddressSanitizer stands in for memcheck; UBSan's alignment check makes a misaligned vector load
# or store (float4/uint4 need 16 bytes, float2/uint2 8) a fault, as on the device.
EMU_FLAGS="-O1 -g -fsanitize=address,alignment -fno-sanitize-recover=alignment -fno-omit-frame-pointer"
# device code: every load and store through __asan_load/store calls, which the runtime wraps to
# record shared-memory accesses for the race check
EMU_KERNEL_FLAGS="--param asan-instrumentation-with-call-threshold=0"
EMU_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:detect_stack_use_after_return=0}

# emu_compile_cu SRC.cu OUT.o
emu_compile_cu() {
    local out_cc="${2%.o}.cc"
    python3 "$EMU_DIR/translate.py" "$1" "$out_cc"
    g++ -std=c++17 $EMU_FLAGS $EMU_KERNEL_FLAGS -w -I "$EMU_DIR/include" -I . -include "$EMU_DIR/emu.h" -c "$out_cc" -o "$2"
}

# emu_compile_runtime OUT.o
emu_compile_runtime() {
    g++ -std=c++17 $EMU_FLAGS -Wall -Wextra -Werror -Wno-unused-parameter -I "$EMU_DIR" \
        -c "$EMU_DIR/emu_runtime.cc" -o "$1"
}
