#!/usr/bin/env bash
# The whole test suite: configure, build and run every test with ctest (no GPU needed;
# GPU tests report "skipped: no CUDA device" when there is none).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${RC_BUILD_DIR:-build}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release ${RC_CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
ctest --test-dir "$BUILD" --output-on-failure -j"$(nproc)" ${RC_CTEST_ARGS:-}
