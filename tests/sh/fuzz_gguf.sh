#!/usr/bin/env bash
# Short bounded libFuzzer run of the GGUF reader and dequantization (tests/fuzz/fuzz_gguf.c)
# with ASan + UBSan, from the seed corpus in tests/fuzz/corpus_gguf. Skips (exit 0, saying
# so) when clang or its libFuzzer runtime is missing. Args: <build_dir> <source_dir>.
# FUZZ_SECONDS overrides the time bound (default 20).
set -euo pipefail
BUILD="$1"
SRC="$2"
SECS="${FUZZ_SECONDS:-20}"

CC=""
for c in clang clang-14 clang-15 clang-16; do
    if command -v "$c" >/dev/null 2>&1; then CC="$c"; break; fi
done
OUT="$BUILD/fuzz"
mkdir -p "$OUT"
probe="$OUT/probe_gguf.c"
echo 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }' >"$probe"
if [ -z "$CC" ] || ! "$CC" -fsanitize=fuzzer,address,undefined "$probe" -o "$OUT/probe_gguf" >/dev/null 2>&1; then
    echo "skipped: clang/libFuzzer not available"
    exit 0
fi

BIN="$OUT/fuzz_gguf"
"$CC" -std=c11 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
    -fno-sanitize-recover=undefined -I"$SRC" \
    "$SRC/tests/fuzz/fuzz_gguf.c" "$SRC/engine/gguf.c" "$SRC/kernels/cpu/dequant.c" \
    "$SRC/engine/common.c" -lm -o "$BIN"

# New inputs go to a scratch corpus in the build dir; the committed seeds stay untouched.
WORK="$OUT/corpus_work"
rm -rf "$WORK"
mkdir -p "$WORK"
set +e
"$BIN" -max_total_time="$SECS" -runs=5000000 -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
    -dict="$SRC/tests/fuzz/gguf.dict" -artifact_prefix="$OUT/" -print_final_stats=1 \
    "$WORK" "$SRC/tests/fuzz/corpus_gguf" 2>&1 | tail -n 25
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ]; then
    echo "FAIL: fuzzer exited with $status (crash input saved under $OUT/)"
    exit 1
fi
echo "fuzz_gguf: ok (${SECS}s)"
