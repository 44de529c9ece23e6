#!/usr/bin/env bash
# Bounded libFuzzer run of the GGUF reader and dequantization. Args: <build_dir> <source_dir>.
exec bash "$2/tests/fuzz/run_fuzz.sh" "$1" "$2" gguf 8192 base/gguf.c base/ggml_types.c kernels/cpu/dequant.c base/common.c
