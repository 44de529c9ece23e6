#!/usr/bin/env bash
# The whole suite again under AddressSanitizer (leak check on) and UBSan (halting on the first
# error), in its own build dir (build-asan, CPU only). Every report of every process (the unit
# tests, recontrol run by the shell tests, expected failures included) is written to
# build-asan/sanitizer-logs/ and any report fails the run, so a sanitizer error in a command that
# a test expected to fail anyway is still caught. Left out: the fuzz tests (they already run under
# ASan + UBSan in the plain suite) and the tests of the CUDA emulation (built with ASan in the plain
# suite already; its fibers make ASan warn about swapcontext). tests/lsan.supp: intentional leaks.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${RC_ASAN_BUILD_DIR:-build-asan}
LOGS="$PWD/$BUILD/sanitizer-logs"
rm -rf "$LOGS"
mkdir -p "$LOGS"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=86:log_path=$LOGS/asan:detect_stack_use_after_return=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=87:log_path=$LOGS/ubsan"
export LSAN_OPTIONS="exitcode=88:log_path=$LOGS/lsan:suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
status=0
RC_BUILD_DIR="$BUILD" RC_CMAKE_ARGS="-DRC_SANITIZE=ON -DRC_CUDA=OFF ${RC_CMAKE_ARGS:-}" \
    RC_CTEST_ARGS="-E ^sh_fuzz_|emu|gpu_suite_emulated" bash tests/run.sh || status=$?
if compgen -G "$LOGS/*" >/dev/null; then
    echo "sanitizer reports:" >&2
    for f in "$LOGS"/*; do
        echo "==== $f" >&2
        head -n 60 "$f" >&2
    done
    exit 1
fi
exit "$status"
