#!/usr/bin/env bash
# Extraction throughput (stage 1) on the CPU with the default model (or $MODEL): greedy rollouts
# + post-norm state capture for N prompts, as `recontrol extract` runs them. Writes
# bench/results/extract-cpu-<date>[-k].json (never over an earlier run) and prints a Markdown
# summary, with an estimate for the
# 160,800 HH-RLHF training prompts at the measured rate.
# usage: bench/bench_extract.sh BUILD_DIR DATA.jsonl[.gz] FORMAT [N_PROMPTS] [MAX_NEW] [BATCH]
#   env MODEL=PATH (default: the default model), CHAT_FORMAT=1 (--chat)
# The load average is recorded before and after: on a shared machine it distorts the figures.
set -euo pipefail
BUILD=${1:?build dir}; DATA=${2:?data file}; FMT=${3:?format hh|shp|plain}
N=${4:-8}; MAX_NEW=${5:-128}; BATCH=${6:-8}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$(mktemp -d /tmp/rc_bench_extract.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
MODEL_ARGS=()
[ -n "${MODEL:-}" ] && MODEL_ARGS=(--model "$MODEL")
CHAT=()
[ "${CHAT_FORMAT:-0}" = 1 ] && CHAT=(--chat)
load0=$(cut -d' ' -f1-3 /proc/loadavg)
t0=$(date +%s.%N)
"$BUILD/recontrol" extract "${MODEL_ARGS[@]}" "${CHAT[@]}" --data "$DATA" --format "$FMT" --out "$OUT/run" \
  --limit "$N" --max-new-tokens "$MAX_NEW" --batch "$BATCH" --dtype bf16 2> "$OUT/log"
t1=$(date +%s.%N)
load1=$(cut -d' ' -f1-3 /proc/loadavg)
date_s=$(date -u +%Y-%m-%d)
mkdir -p "$ROOT/bench/results"
JSON="$ROOT/bench/results/extract-cpu-$date_s.json"
k=2 # never overwrite an earlier run of the same day: -2, -3, ...
while [[ -e "$JSON" ]]; do JSON="$ROOT/bench/results/extract-cpu-$date_s-$k.json"; k=$((k + 1)); done
python3 - "$OUT/run" "$t0" "$t1" "$load0" "$load1" "$N" "$MAX_NEW" "$BATCH" "$DATA" "$FMT" "$JSON" "$(nproc)" \
  "$("$BUILD/recontrol" --version 2>/dev/null || echo "binary without --version; tree $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)")" <<'PY'
import json, sys
run, t0, t1, l0, l1, n, max_new, batch, data, fmt, out, ncpu, commit = sys.argv[1:]
wall = float(t1) - float(t0)
rs = [json.loads(l) for l in open(run + "/responses.jsonl")]
man = json.load(open(run + "/extract.json"))
new = sum(r["n_tokens"] for r in rs)
prompt = sum(len(r["prompt_ids"]) for r in rs)
per_prompt = wall / len(rs)
hh = 160800
res = {
    "what": "recontrol extract, CPU, greedy + post-norm state capture (bf16 shards)",
    "model": man["settings"]["model"].split("/")[-1], "data": data.split("/")[-1], "format": fmt,
    "prompts": len(rs), "max_new_tokens": int(max_new), "batch": int(batch),
    "wall_s": round(wall, 2), "new_tokens": new, "prompt_tokens": prompt,
    "new_tok_per_s": round(new / wall, 2), "all_tok_per_s": round((new + prompt) / wall, 2),
    "s_per_prompt": round(per_prompt, 3),
    "hidden_size": man.get("hidden_size"), "cpus": int(ncpu),
    "loadavg_before": l0, "loadavg_after": l1, "binary": commit,
    "estimate_hh_rlhf_160800_prompts_hours": round(per_prompt * hh / 3600, 1),
}
# one file per day: {"runs": [...]}, each call appends its run
try:
    doc = json.load(open(out))
    if "runs" not in doc:
        doc = {"runs": [doc]}
except (OSError, ValueError):
    doc = {"runs": []}
doc["runs"].append(res)
json.dump(doc, open(out, "w"), indent=1)
print(f"| model | prompts | new tok | prompt tok | wall s | new tok/s | all tok/s | s/prompt | 160,800 HH prompts |")
print(f"|---|---:|---:|---:|---:|---:|---:|---:|---:|")
print(f"| {res['model']} | {len(rs)} | {new} | {prompt} | {wall:.1f} | {res['new_tok_per_s']} | "
      f"{res['all_tok_per_s']} | {per_prompt:.2f} | {res['estimate_hh_rlhf_160800_prompts_hours']} h |")
print(f"\nload average before {l0}, after {l1}; {ncpu} CPUs; commit {commit}; written {out}")
PY
