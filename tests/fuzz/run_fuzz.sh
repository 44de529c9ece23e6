#!/usr/bin/env bash
# Short bounded libFuzzer run of one parser with ASan + UBSan, from the seed corpus
# tests/fuzz/corpus_<name> and the dictionary tests/fuzz/<name>.dict. Skips (exit 0, saying so)
# when clang or its libFuzzer runtime is missing. FUZZ_SECONDS overrides the bound (default 20).
# Args: <build_dir> <source_dir> <name> <max_len> <source files relative to source_dir...>
set -euo pipefail
BUILD="$1"
SRC="$2"
NAME="$3"
MAXLEN="$4"
shift 4
SECS="${FUZZ_SECONDS:-20}"

CC=""
for c in clang clang-14 clang-15 clang-16; do
    if command -v "$c" >/dev/null 2>&1; then CC="$c"; break; fi
done
OUT="$BUILD/fuzz/$NAME"
mkdir -p "$OUT"
probe="$OUT/probe.c"
echo 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }' >"$probe"
if [ -z "$CC" ] || ! "$CC" -fsanitize=fuzzer,address,undefined "$probe" -o "$OUT/probe" >/dev/null 2>&1; then
    echo "skipped: clang/libFuzzer not available"
    exit 0
fi

CJSON_CFLAGS=$(pkg-config --cflags libcjson 2>/dev/null || true)
CJSON_LIBS=$(pkg-config --libs libcjson 2>/dev/null || echo -lcjson)
srcs=("$SRC/tests/fuzz/fuzz_$NAME.c")
for s in "$@"; do srcs+=("$SRC/$s"); done
BIN="$OUT/fuzz_$NAME"
# shellcheck disable=SC2086
"$CC" -std=c11 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
    -fno-sanitize-recover=undefined -I"$SRC" $CJSON_CFLAGS "${srcs[@]}" $CJSON_LIBS -lm -o "$BIN"

# New inputs go to a scratch corpus in the build dir; the committed seeds stay untouched.
WORK="$OUT/corpus_work"
rm -rf "$WORK"
mkdir -p "$WORK"
set +e
"$BIN" -max_total_time="$SECS" -runs=5000000 -timeout=10 -rss_limit_mb=2048 -max_len="$MAXLEN" \
    -dict="$SRC/tests/fuzz/$NAME.dict" -artifact_prefix="$OUT/" -print_final_stats=1 \
    "$WORK" "$SRC/tests/fuzz/corpus_$NAME" 2>&1 | tail -n 25
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ]; then
    echo "FAIL: fuzzer exited with $status (crash input saved under $OUT/)"
    exit 1
fi
echo "fuzz_$NAME: ok (${SECS}s)"
