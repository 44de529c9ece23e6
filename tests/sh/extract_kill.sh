#!/usr/bin/env bash
# `recontrol extract` killed with SIGKILL in the middle of a run resumes to the same files as an
# uninterrupted run: no sequence lost, none written twice. Also `label` killed the same way.
# Args: <build_dir> <source_dir>.
set -euo pipefail
BIN="$1/recontrol"
FIX="$2/tests/fixtures"
T=$(mktemp -d /tmp/rc_extract_kill.XXXXXX)
trap 'rm -rf "$T"' EXIT
count() { { find "$1" -maxdepth 1 -name "$2" 2>/dev/null || true; } | wc -l; }

# 600 prompts of 1..12 token ids; small shards so that many commits happen.
awk 'BEGIN { srand(7); for (i = 0; i < 600; i++) { n = 1 + i % 12; s = "{\"ids\": [";
      for (k = 0; k < n; k++) s = s (k ? ", " : "") int(3 + rand() * 250); print s "]}" } }' > "$T/p.jsonl"
ARGS=(extract --model "$FIX/tiny/mha_hd32_tied" --data "$T/p.jsonl" --format ids
      --max-new-tokens 48 --batch 8 --shard-size 8 --dtype bf16 --threads 1)

"$BIN" "${ARGS[@]}" --out "$T/clean" 2>/dev/null

killed=0
for attempt in 1 2 3; do
  "$BIN" "${ARGS[@]}" --out "$T/res" 2>/dev/null &
  pid=$!
  # wait until a few more shards are committed, then SIGKILL mid-shard
  target=$(( $(count "$T/res" 'responses-*.jsonl') + 3 ))
  for _ in $(seq 1 2000); do
    n=$(count "$T/res" 'responses-*.jsonl')
    [ "$n" -ge "$target" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.01
  done
  if kill -9 "$pid" 2>/dev/null; then killed=$((killed + 1)); fi
  wait "$pid" 2>/dev/null || true
done
echo "killed $killed times; shards committed before the final resume: $(count "$T/res" 'responses-*.jsonl')"
if [ "$killed" -eq 0 ]; then echo "FAIL: the run finished before it could be killed"; exit 1; fi
grep -q '"running"' "$T/res/extract.json" || { echo "FAIL: extract.json not marked running after kill"; exit 1; }

"$BIN" "${ARGS[@]}" --out "$T/res" 2>"$T/resume.log"
grep -q resuming "$T/resume.log" || { echo "FAIL: no resume"; cat "$T/resume.log"; exit 1; }
for f in "$T"/clean/acts-*.safetensors "$T"/clean/responses*.jsonl; do
  cmp -s "$f" "$T/res/$(basename "$f")" || { echo "FAIL: $(basename "$f") differs after resume"; exit 1; }
done
[ "$(count "$T/res" 'acts-*.safetensors')" = "$(count "$T/clean" 'acts-*.safetensors')" ] || { echo "FAIL: shard count"; exit 1; }
n=$(wc -l < "$T/res/responses.jsonl")
[ "$n" = 600 ] || { echo "FAIL: $n responses, expected 600"; exit 1; }
# every index exactly once, in order
awk -F'"index":' '{ split($2, a, ","); if (a[1] != NR - 1) { print "FAIL: line " NR " has index " a[1]; exit 1 } }' "$T/res/responses.jsonl"
echo "extract: resumed run identical to the clean run (600 sequences)"

# label: SIGKILL while scoring, then resume
LARGS=(label --run "$T/res" --reward-model "$FIX/tiny/rm_regression_head_bf16" --batch 4 --threads 1)
"$BIN" label --run "$T/clean" --reward-model "$FIX/tiny/rm_regression_head_bf16" --batch 4 --threads 1 2>/dev/null
"$BIN" "${LARGS[@]}" 2>/dev/null &
pid=$!
for _ in $(seq 1 2000); do
  [ -s "$T/res/rewards.partial.jsonl" ] && [ "$(wc -l < "$T/res/rewards.partial.jsonl")" -ge 40 ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.01
done
kill -9 "$pid" 2>/dev/null && echo "label killed after $(wc -l < "$T/res/rewards.partial.jsonl") rewards" || echo "note: label finished before the kill"
wait "$pid" 2>/dev/null || true
"$BIN" "${LARGS[@]}" 2>/dev/null
cmp -s "$T/clean/rewards.jsonl" "$T/res/rewards.jsonl" || { echo "FAIL: rewards differ after resume"; exit 1; }
echo "label: resumed rewards identical"
echo "1 passed, 0 failed"
