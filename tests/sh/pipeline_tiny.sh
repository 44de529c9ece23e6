#!/usr/bin/env bash
# `recontrol pipeline` end to end on the tiny golden models (token-id prompts, a tiny reward
# model): all five stages run, the report compares plain with RE-Control, and a rerun keeps the
# finished work (the value network is not retrained). A bad recipe is refused with a message.
set -euo pipefail
B="$1/recontrol"
F="$2/tests/fixtures/tiny"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

for i in $(seq 0 11); do
    printf '{"ids": [%d, %d, %d, %d]}\n' $((1 + i)) $((40 + 3 * i)) $((100 + i)) $((7 * i + 2))
done >"$T/train.jsonl"
for i in $(seq 0 3); do printf '{"ids": [%d, %d, 9]}\n' $((200 + i)) $((3 + i)); done >"$T/test.jsonl"
cat >"$T/recipe.json" <<JSON
{
  "name": "tiny",
  "model": "$F/mha_hd32_tied",
  "reward": {"reward_model": "$F/rm_score"},
  "format": "ids",
  "train_data": "\${recipe_dir}/train.jsonl",
  "test_data": "\${recipe_dir}/test.jsonl",
  "extract": {"max_new_tokens": 6, "batch": 4, "dtype": "bf16"},
  "value": {"hidden": [16], "epochs": 3, "batch_size": 4, "lr": 1e-3},
  "control": {"step_size": 0.5, "steps": 5},
  "generate": {"max_new_tokens": 6, "batch": 4},
  "out": "\${recipe_dir}/run"
}
JSON
"$B" pipeline "$T/recipe.json" >"$T/log" 2>&1 || { cat "$T/log"; fail "pipeline"; }
for f in train/acts-00000.safetensors train/rewards.jsonl value.safetensors test-plain/rewards.jsonl \
    test-control/rewards.jsonl report.json report.md; do
    [ -s "$T/run/$f" ] || fail "missing $f"
done
[ "$(wc -l <"$T/run/train/rewards.jsonl")" -eq 12 ] || fail "expected 12 train rewards"
[ "$(wc -l <"$T/run/test-control/rewards.jsonl")" -eq 4 ] || fail "expected 4 test rewards"
grep -q "average reward" "$T/run/report.md" || fail "report has no reward row"

stamp=$(stat -c %Y "$T/run/value.safetensors")
sleep 1
"$B" pipeline "$T/recipe.json" >"$T/log2" 2>&1 || { cat "$T/log2"; fail "rerun"; }
[ "$(stat -c %Y "$T/run/value.safetensors")" = "$stamp" ] || fail "rerun retrained the value network"
grep -q "kept" "$T/log2" || fail "rerun did not say it kept the value network"

echo '{"name": "x"}' >"$T/bad.json"
if "$B" pipeline "$T/bad.json" >"$T/log3" 2>&1; then fail "an incomplete recipe was accepted"; fi
grep -q 'missing "model"' "$T/log3" || { cat "$T/log3"; fail "no clear message for a missing key"; }
echo "pipeline_tiny: 4 passed, 0 failed"
