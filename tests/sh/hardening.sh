#!/usr/bin/env bash
# Issue 16's reproductions as regression tests, one or more per class: output paths (no crash,
# the real reason, checked before work), numbers on the command line and in recipes (no wrap, no
# NaN/Inf, ranges), NUL bytes and invalid UTF-8 in JSONL, paths and model types validated before
# a run directory is written, one process per run directory, stale temp files of killed runs,
# special files as inputs, out-of-vocabulary ids, prompts longer than the context.
set -uo pipefail
B="$1/recontrol"
SRC="$2"
M="$SRC/tests/fixtures/tiny/mha_hd32_tied"
RM="$SRC/tests/fixtures/tiny/rm_score"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0
fail() { echo "FAIL: $*"; [ -f "$T/err" ] && sed 's/^/  stderr: /' "$T/err" | head -20; exit 1; }
ok() { pass=$((pass + 1)); }
# expect_error STATUS NEEDLE -- command...: exits with STATUS (never a signal), stderr has NEEDLE
expect_error() {
    local want="$1" needle="$2"
    shift 3
    "$@" >"$T/out" 2>"$T/err"
    local got=$?
    [ "$got" -lt 128 ] || fail "$* died with signal $((got - 128))"
    [ "$got" -eq "$want" ] || fail "$*: exit $got, expected $want"
    grep -qF -- "$needle" "$T/err" || fail "$*: stderr lacks '$needle'"
    ok
}

# ---- output paths: an error, not a segfault; the real reason; before the work
expect_error 1 "the directory /nonexistent does not exist" -- "$B" generate --model "$M" --ids 1,2 --max-new-tokens 2 --out /nonexistent/x.txt
expect_error 1 "is a directory" -- "$B" generate --model "$M" --ids 1,2 --max-new-tokens 2 --out "$T"
expect_error 1 "the directory /nonexistent does not exist" -- "$B" logits --model "$M" --ids 1,2 --out /nonexistent/x.npy
printf '{"ids": [1, 5, 9, 33]}\n{"ids": [7, 3]}\n{"ids": [100, 20, 4]}\n' >"$T/p.jsonl"
"$B" extract --model "$M" --data "$T/p.jsonl" --format ids --out "$T/run" --max-new-tokens 6 --batch 2 \
    --dtype fp32 2>"$T/err" || fail "extract"
printf '{"index": 0, "reward": 1.0}\n{"index": 1, "reward": -1.0}\n{"index": 2, "reward": 0.5}\n' >"$T/run/rewards.jsonl"
start=$(date +%s)
expect_error 1 "the directory /nonexistent does not exist" -- "$B" train --data "$T/run" --out /nonexistent/v.safetensors --hidden 8 --epochs 100000 --batch-size 2
[ $(($(date +%s) - start)) -lt 20 ] || fail "train --out into a missing directory failed only after training"
grep -q "epoch" "$T/err" && fail "train ran epochs before refusing its --out"
expect_error 1 "is a file; --data takes the run directory" -- "$B" train --data "$T/p.jsonl" --out "$T/v.safetensors"

# ---- numbers: no wrap-around, no NaN/Inf, per-option ranges, the option named
expect_error 2 "--max-new-tokens expects an integer in [1, 1048576], got '4294967297'" -- "$B" generate --model "$M" --ids 1 --max-new-tokens 4294967297
expect_error 2 "got '2147483647'" -- "$B" generate --model "$M" --ids 1 --max-new-tokens 2147483647
expect_error 2 "--temperature expects a finite number" -- "$B" generate --model "$M" --ids 1 --temperature nan
expect_error 2 "--step-size expects a finite number in [0, 1000], got 'inf'" -- "$B" generate --model "$M" --ids 1 --step-size inf
expect_error 2 "--step-size expects a finite number" -- "$B" chat --model "$M" --step-size inf --prompt hi
expect_error 1 "--step-size expects a finite number in [0, 1000], got 'nan'" -- "$B" extract --model "$M" --data "$T/p.jsonl" --format ids --out "$T/x1" --step-size nan
expect_error 1 "got '-0.5'" -- "$B" extract --model "$M" --data "$T/p.jsonl" --format ids --out "$T/x1" --step-size -0.5
expect_error 2 "--threads expects an integer in [0, 4096], got '-5'" -- "$B" generate --model "$M" --ids 1 --threads -5
expect_error 2 "--threads expects an integer in [0, 4096], got 'abc'" -- "$B" train --data "$T/run" --out "$T/v.safetensors" --threads abc
expect_error 2 "--threads expects an integer" -- "$B" logits --model "$M" --ids 1 --out "$T/l.npy" --threads -5
expect_error 2 "--steps expects an integer in [0, 1000], got '1000000000'" -- "$B" generate --model "$M" --ids 1 --steps 1000000000
expect_error 2 "--seed expects an integer" -- "$B" train --data "$T/run" --out "$T/v.safetensors" --seed -1
[ ! -e "$T/x1" ] || fail "a refused extract created its run directory"

# ---- recipes: range-checked at load, before stage 1
mkdir -p "$T/rc"
printf '{"ids": [1, 2]}\n' >"$T/rc/train.jsonl"
cp "$T/rc/train.jsonl" "$T/rc/test.jsonl"
recipe() { printf '{"model": "%s", "format": "ids", "train_data": "${recipe_dir}/train.jsonl", "test_data": "${recipe_dir}/test.jsonl", "out": "%s", "reward": {"reward_model": "%s"}, %s}\n' "$M" "$T/rc/out" "$RM" "$1" >"$T/rc/r.json"; }
recipe '"value": {"epochs": -3}'
expect_error 1 "value.epochs expects an integer in [0, 1000000], got -3" -- "$B" pipeline "$T/rc/r.json"
[ ! -e "$T/rc/out" ] || fail "a bad recipe value surfaced after stages ran"
recipe '"control": {"step_size": -1}'
expect_error 1 "control.step_size expects a finite number" -- "$B" pipeline "$T/rc/r.json"
recipe '"control": {"steps": 1e9}'
expect_error 1 "control.steps expects an integer in [0, 1000]" -- "$B" pipeline "$T/rc/r.json"
recipe '"extract": {"batch": 2.5}'
expect_error 1 "extract.batch expects an integer" -- "$B" pipeline "$T/rc/r.json"
recipe '"value": {"epochs": 1}, "test_data": "/nonexistent.jsonl"'
expect_error 1 "test_data: /nonexistent.jsonl: no such file or directory" -- "$B" pipeline "$T/rc/r.json"
[ ! -e "$T/rc/out" ] || fail "a missing test_data surfaced after stages ran"

# ---- run directories: nothing written before validation; one process at a time; stale temps
expect_error 1 "no such file or directory" -- "$B" extract --model "$T/typo" --data "$T/p.jsonl" --format ids --out "$T/r2" --max-new-tokens 4
[ ! -e "$T/r2/extract.json" ] || fail "a mistyped --model left a manifest"
expect_error 1 "cannot open $T/typo.jsonl: No such file" -- "$B" extract --model "$M" --data "$T/typo.jsonl" --format ids --out "$T/r2" --max-new-tokens 4
"$B" extract --model "$M" --data "$T/p.jsonl" --format ids --out "$T/r2" --max-new-tokens 4 --dtype fp32 2>"$T/err" || fail "the corrected extract was refused"
ok
expect_error 1 "not a reward model" -- "$B" label --run "$T/r2" --reward-model "$M"
[ ! -e "$T/r2/label.json" ] || fail "label with the wrong model type left its manifest"
"$B" label --run "$T/r2" --reward-model "$RM" 2>"$T/err" || fail "the corrected label was refused"
[ -s "$T/r2/rewards.jsonl" ] || fail "no rewards"
ok
if command -v flock >/dev/null; then
    expect_error 1 "is in use by another recontrol process" -- flock "$T/r2/.lock" "$B" extract --model "$M" --data "$T/p.jsonl" --format ids --out "$T/r2" --max-new-tokens 4 --dtype fp32 --overwrite
    [ -s "$T/r2/rewards.jsonl" ] || fail "a refused --overwrite run removed files"
    expect_error 1 "is in use by another recontrol process" -- flock "$T/r2/.lock" "$B" label --run "$T/r2" --reward-model "$RM" --overwrite
fi
echo junk >"$T/r2/acts-00007.safetensors.tmp.999999"
echo junk >"$T/r2/rewards.jsonl.tmp.999998"
"$B" label --run "$T/r2" --reward-model "$RM" 2>"$T/err" || fail "label after a killed run"
[ ! -e "$T/r2/acts-00007.safetensors.tmp.999999" ] && [ ! -e "$T/r2/rewards.jsonl.tmp.999998" ] || fail "stale temp files kept"
grep -q "left by an interrupted run" "$T/err" || fail "stale temp removal not reported"
ok

# ---- special files and directories as inputs
mkfifo "$T/fifo"
expect_error 1 "is a FIFO" -- timeout 20 "$B" info --model "$T/fifo"
expect_error 1 "/dev/zero is a character device" -- "$B" generate --model /dev/zero --ids 1
expect_error 1 "is a directory; expected a JSONL file" -- "$B" extract --model "$M" --data "$T" --format ids --out "$T/r3"
[ ! -e "$T/r3/extract.json" ] || fail "a directory as --data left a manifest"
expect_error 1 "is a FIFO" -- timeout 20 "$B" generate --model "$M" --ids 1 --value-model "$T/fifo"

# ---- datasets: NUL bytes, out-of-vocabulary ids reported as file:line and skipped
printf '{"ids": [1, 2]}\n{"ids": [3, \0 4]}\n{"ids": [5, 900]}\n{"ids": [6, 7]}\n' >"$T/nul.jsonl"
"$B" extract --model "$M" --data "$T/nul.jsonl" --format ids --out "$T/r4" --max-new-tokens 3 --dtype fp32 2>"$T/err" || fail "a bad record aborted the run"
grep -q "nul.jsonl:2: a NUL byte at byte 13; line skipped" "$T/err" || fail "NUL byte not reported as file:line"
grep -q "nul.jsonl:3: \"ids\"\[1\] = 900 is outside the model's vocabulary (257 tokens); line skipped" "$T/err" || fail "out-of-vocabulary id not reported as file:line"
[ "$(wc -l <"$T/r4/responses.jsonl")" -eq 2 ] || fail "expected the 2 good records"
grep -q '"line":4' "$T/r4/responses.jsonl" || fail "line numbers shifted after the NUL line"
ok
printf '{"prompt": "a\\u0000b"}\n' >"$T/esc.jsonl"
expect_error 1 "esc.jsonl:1: a \\u0000 escape" -- "$B" generate --model "$M" --jsonl "$T/esc.jsonl" --max-new-tokens 2

# ---- JSON output is valid UTF-8; over-long prompts are warned about
# a text model: the tiny golden weights (vocabulary 257) with a byte-level BPE of the 256 bytes
# and no merges, so that generated ids decode to lone bytes (invalid UTF-8 on their own)
TM="$T/textmodel"
mkdir -p "$TM"
cp "$M/config.json" "$M/model.safetensors" "$TM/"
python3 - "$TM/tokenizer.json" <<'PY'
import json, sys
bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + list(range(ord("\xae"), ord("\xff") + 1))
cs, n = bs[:], 0
for b in range(256):
    if b not in bs:
        bs.append(b); cs.append(256 + n); n += 1
vocab = {chr(c): b for b, c in zip(bs, cs)}
json.dump({"version": "1.0", "added_tokens": [{"id": 256, "content": "<|endoftext|>", "special": True}],
           "normalizer": None, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
           "post_processor": None, "decoder": {"type": "ByteLevel"},
           "model": {"type": "BPE", "vocab": vocab, "merges": []}}, open(sys.argv[1], "w"))
PY
printf '{"prompt": "caf\xc3\xa9 \xff\xfe bad"}\n{"prompt": "ok \xe2\x82"}\n' >"$T/u.jsonl"
"$B" extract --model "$TM" --data "$T/u.jsonl" --format plain --out "$T/r5" --max-new-tokens 3 --dtype fp32 2>"$T/err" || fail "extract of invalid UTF-8 prompts"
python3 -c 'import sys, json; [json.loads(l) for l in open(sys.argv[1], encoding="utf-8", errors="strict")]' "$T/r5/responses.jsonl" \
    || fail "responses.jsonl is not valid UTF-8 JSON"
ok
"$B" generate --model "$TM" --jsonl "$T/u.jsonl" --max-new-tokens 3 --json --out "$T/g.jsonl" 2>"$T/err" || fail "generate --json"
python3 -c 'import sys, json; [json.loads(l) for l in open(sys.argv[1], encoding="utf-8", errors="strict")]' "$T/g.jsonl" \
    || fail "generate --json output is not valid UTF-8 JSON"
ok
"$B" generate --model "$M" --ids 1,2,3 --max-new-tokens 300 --no-stop >/dev/null 2>"$T/err" || fail "long generate"
grep -q "runs past the model's context of 256 positions" "$T/err" || fail "no warning for a sequence past the context"
ok

echo "hardening: $pass passed, 0 failed"
