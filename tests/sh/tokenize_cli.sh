#!/usr/bin/env bash
# `recontrol tokenize` end to end on the committed tokenizer fixtures: ids as HF gives them
# (values from tests/fixtures/tok goldens), --json, --decode, stdin, --help, and errors.
# Args: <build_dir> <source_dir>.
set -euo pipefail
B="$1/recontrol"
T="$2/tests/fixtures/tok"
fail() { echo "FAIL: $*"; exit 1; }

# SmolLM2 (byte-level BPE): special tokens inside text, no BOS
out=$("$B" tokenize --model "$T/smol" --text "Hello <|im_start|>world 123")
[ "$out" = "19556 216 1 6693 216 33 34 35" ] || fail "smol ids: $out"
out=$("$B" tokenize --model "$T/smol" --text "<|im_end|>" --json)
[ "$out" = '{"ids":[2],"pieces":["<|im_end|>"]}' ] || fail "smol json: $out"
# SentencePiece: BOS added, --no-special, decode with and without special tokens
out=$("$B" tokenize --model "$T/spm" --text "The quick brown fox jumps over the lazy dog.")
[ "$out" = "1 897 916 914 900 915 911 280 910 898 1512" ] || fail "spm ids: $out"
out=$("$B" tokenize --model "$T/spm" --no-special --text "The quick")
[ "$out" = "897 916" ] || fail "spm --no-special: $out"
out=$("$B" tokenize --model "$T/spm" --decode 1,897,916)
[ "$out" = "<s> The quick" ] || fail "spm decode: $out"
out=$("$B" tokenize --model "$T/spm" --decode "1 897 916" --skip-special)
[ "$out" = "The quick" ] || fail "spm decode --skip-special: $out"
out=$(printf 'The quick' | "$B" tokenize --model "$T/spm" --file -)
[ "$out" = "1 897 916" ] || fail "stdin: $out"
# a tokenizer file given directly picks up the tokenizer_config.json next to it
out=$("$B" tokenize --model "$T/spm/tokenizer.model" --text "The quick")
[ "$out" = "1 897 916" ] || fail "spm file: $out"
out=$("$B" tokenize --model "$T/smol/tokenizer.json.gz" --text "Hello <|im_start|>world 123")
[ "$out" = "19556 216 1 6693 216 33 34 35" ] || fail "json.gz file: $out"
out=$("$B" tokenize --model "$T/gguf/l3.gguf" --text "Hello world")
[ "$out" = "0 45 300 81 84 1552" ] || fail "gguf file: $out"
"$B" tokenize --help | grep -q -- "--decode" || fail "--help"
# errors: clear message, non-zero status
if err=$("$B" tokenize --model /nonexistent --text x 2>&1); then fail "missing model accepted"; fi
echo "$err" | grep -q "no such file" || fail "missing model message: $err"
if err=$("$B" tokenize --model "$T/smol" --decode 1,abc 2>&1); then fail "bad ids accepted"; fi
echo "$err" | grep -q "not a token id" || fail "bad ids message: $err"
if err=$("$B" tokenize --model "$T/smol" --decode 999999 2>&1); then fail "out-of-range id accepted"; fi
echo "$err" | grep -q "out of range" || fail "range message: $err"
if "$B" tokenize --model "$T/smol" >/dev/null 2>&1; then fail "no input accepted"; fi
echo "1 passed, 0 failed"
