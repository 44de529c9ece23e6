#!/usr/bin/env bash
# Short bounded libFuzzer run of the safetensors header parser (tests/fuzz/fuzz_safetensors.c)
# with ASan + UBSan, from the seed corpus in tests/fuzz/corpus_safetensors. Skips (exit 0, saying
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
probe="$OUT/probe.c"
echo 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }' >"$probe"
if [ -z "$CC" ] || ! "$CC" -fsanitize=fuzzer,address,undefined "$probe" -o "$OUT/probe" >/dev/null 2>&1; then
    echo "skipped: clang/libFuzzer not available"
    exit 0
fi

CJSON_CFLAGS=$(pkg-config --cflags libcjson 2>/dev/null || true)
CJSON_LIBS=$(pkg-config --libs libcjson 2>/dev/null || echo -lcjson)
BIN="$OUT/fuzz_safetensors"
# shellcheck disable=SC2086
"$CC" -std=c11 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
    -fno-sanitize-recover=undefined -I"$SRC" $CJSON_CFLAGS \
    "$SRC/tests/fuzz/fuzz_safetensors.c" "$SRC/engine/safetensors.c" "$SRC/engine/common.c" \
    $CJSON_LIBS -lm -o "$BIN"

# New inputs go to a scratch corpus in the build dir; the committed seeds stay untouched.
WORK="$OUT/corpus_work"
rm -rf "$WORK"
mkdir -p "$WORK"
set +e
"$BIN" -max_total_time="$SECS" -runs=5000000 -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
    -dict="$SRC/tests/fuzz/safetensors.dict" -artifact_prefix="$OUT/" -print_final_stats=1 \
    "$WORK" "$SRC/tests/fuzz/corpus_safetensors" 2>&1 | tail -n 25
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ]; then
    echo "FAIL: fuzzer exited with $status (crash input saved under $OUT/)"
    exit 1
fi
echo "fuzz_safetensors: ok (${SECS}s)"
