#!/usr/bin/env bash
# Bounded libFuzzer run of the GGUF reader and dequantization. Args: <build_dir> <source_dir>.
exec bash "$2/tests/fuzz/run_fuzz.sh" "$1" "$2" gguf 8192 engine/gguf.c kernels/cpu/dequant.c engine/common.c
