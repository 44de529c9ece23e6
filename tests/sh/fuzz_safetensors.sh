#!/usr/bin/env bash
# Bounded libFuzzer run of the safetensors header parser. Args: <build_dir> <source_dir>.
exec bash "$2/tests/fuzz/run_fuzz.sh" "$1" "$2" safetensors 4096 base/safetensors.c base/common.c
