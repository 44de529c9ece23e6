#!/usr/bin/env bash
# Mid-training checkpoints: a training stopped (--max-steps, mid-epoch and at an epoch's end) or
# killed (kill -9) and resumed with --resume ends with the same value weights, byte for byte, and
# the same loss log (but its times) as an uninterrupted run; so do two MPI ranks stopped and
# resumed on two ranks, and the pipeline's stage 3 resuming a stopped training. Other settings,
# fewer epochs and --resume without checkpoints are refused clearly.
# Args: <build_dir> <source_dir>.
set -euo pipefail
B="$1/recontrol"
S="$2"
D="$S/tests/fixtures/value/run"
T=$(mktemp -d /tmp/rc_resume.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
pass=0
nolog() { sed 's/, "seconds": [0-9.]*//' "$1"; } # the loss log but its times
same() { # same weights byte for byte, same loss history
    cmp -s "$1.safetensors" "$2.safetensors" || fail "$3: weights differ from the uninterrupted run"
    [ "$(grep -c train_loss "$1.train.json")" -gt 0 ] || fail "$3: no losses in the log"
    diff <(nolog "$1.train.json") <(nolog "$2.train.json") >/dev/null ||
        fail "$3: loss log differs from the uninterrupted run"
}

# ---- stopped and resumed, one process (20 training sequences, batch 3: 7 steps per epoch) -------
A=(train --data "$D" --hidden 32,24 --epochs 4 --batch-size 3 --lr 1e-2 --seed 3 --threads 2 --quiet)
"$B" "${A[@]}" --out "$T/full.safetensors" 2>"$T/log" || { cat "$T/log"; fail "uninterrupted run"; }
[ -f "$T/full.ckpt" ] || fail "no checkpoint after the epochs"
for stops in "5 10 17" "7 14 21"; do # mid-epoch; at the ends of epochs
    rm -f "$T"/part.*
    for k in $stops; do
        "$B" "${A[@]}" --out "$T/part.safetensors" --max-steps "$k" --resume --checkpoint-every 2 >"$T/log" 2>&1 ||
            { cat "$T/log"; fail "stop at step $k"; }
        grep -q "stopped after $k steps" "$T/log" || { cat "$T/log"; fail "no stop line at step $k"; }
        [ ! -f "$T/part.safetensors" ] || fail "a stopped training wrote the model"
    done
    "$B" "${A[@]}" --out "$T/part.safetensors" --resume >"$T/log" 2>&1 || { cat "$T/log"; fail "resume"; }
    grep -q "resumed from $T/part.ckpt: step ${stops##* }" "$T/log" || { cat "$T/log"; fail "no resume line"; }
    same "$T/full" "$T/part" "stopped at steps $stops"
done
# a finished training extended by --resume with more epochs equals the longer run
"$B" "${A[@]}" --epochs 6 --out "$T/full6.safetensors" 2>/dev/null
"$B" "${A[@]}" --epochs 6 --out "$T/part.safetensors" --resume >"$T/log" 2>&1 || { cat "$T/log"; fail "extend"; }
grep -q "resumed from .*: step 28, 4 epochs done" "$T/log" || { cat "$T/log"; fail "no extend line"; }
cmp -s "$T/full6.safetensors" "$T/part.safetensors" || fail "4 + 2 epochs differ from 6"
echo "stopped mid-epoch (steps 5, 10, 17) and at epoch ends (7, 14, 21), resumed: weights identical, same losses; 4 epochs extended to 6 = 6"
pass=$((pass + 1))

# ---- killed (kill -9) while training, resumed -----------------------------------------------
K=(train --data "$D" --hidden 64,64 --epochs 300 --batch-size 2 --lr 1e-3 --seed 5 --threads 1 --quiet)
"$B" "${K[@]}" --out "$T/kfull.safetensors" 2>/dev/null
"$B" "${K[@]}" --out "$T/kill.safetensors" --checkpoint-every 7 2>/dev/null &
pid=$!
for _ in $(seq 1 400); do [ -f "$T/kill.ckpt" ] && break; sleep 0.01; done
sleep 0.2
kill -9 "$pid" 2>/dev/null && killed=1 || killed=0
wait "$pid" 2>/dev/null || true
"$B" "${K[@]}" --out "$T/kill.safetensors" --resume >"$T/log" 2>&1 || { cat "$T/log"; fail "resume after kill -9"; }
where=$(sed -n 's/.*resumed from [^:]*: \(step [0-9]*\).*/\1/p' "$T/log")
[ "$killed" = 0 ] || [ -n "$where" ] || { cat "$T/log"; fail "killed run did not resume"; }
same "$T/kfull" "$T/kill" "killed and resumed"
echo "killed with kill -9 ($([ "$killed" = 1 ] && echo "resumed at $where" || echo "it had finished first")): weights identical"
pass=$((pass + 1))

# ---- refused ---------------------------------------------------------------------------------
if "$B" "${A[@]}" --out "$T/full.safetensors" --resume --lr 2e-2 >"$T/log" 2>&1; then fail "other settings resumed"; fi
grep -q "written by a training with other settings" "$T/log" || { cat "$T/log"; fail "no message for other settings"; }
if "$B" "${A[@]}" --out "$T/full.safetensors" --resume --epochs 2 >"$T/log" 2>&1; then fail "fewer epochs resumed"; fi
grep -q "4 epochs done, more than the 2 asked for" "$T/log" || { cat "$T/log"; fail "no message for fewer epochs"; }
if "$B" "${A[@]}" --out "$T/x.safetensors" --resume --no-checkpoint >"$T/log" 2>&1; then fail "--resume --no-checkpoint"; fi
grep -q "needs checkpoints" "$T/log" || { cat "$T/log"; fail "no message for --resume --no-checkpoint"; }
printf 'not a checkpoint' >"$T/bad.ckpt"
if "$B" "${A[@]}" --out "$T/bad.safetensors" --resume >"$T/log" 2>&1; then fail "a damaged checkpoint resumed"; fi
grep -q "bad.ckpt" "$T/log" || { cat "$T/log"; fail "no message naming the damaged checkpoint"; }
echo "other settings, fewer epochs, --resume --no-checkpoint, a damaged checkpoint: refused clearly"
pass=$((pass + 1))

# ---- the pipeline's stage 3 resumes a stopped training ----------------------------------------
F="$S/tests/fixtures/tiny"
for i in $(seq 0 9); do printf '{"ids": [%d, %d, %d]}\n' $((1 + i)) $((40 + 3 * i)) $((100 + i)); done >"$T/train.jsonl"
for i in $(seq 0 2); do printf '{"ids": [%d, %d, 9]}\n' $((200 + i)) $((3 + i)); done >"$T/test.jsonl"
cat >"$T/recipe.json" <<JSON
{
  "name": "tiny-resume", "model": "$F/mha_hd32_tied", "reward": {"reward_model": "$F/rm_score"}, "format": "ids",
  "train_data": "$T/train.jsonl", "test_data": "$T/test.jsonl",
  "extract": {"max_new_tokens": 6, "batch": 4, "dtype": "fp32"},
  "value": {"hidden": [16], "epochs": 5, "batch_size": 3, "lr": 1e-3},
  "control": {"step_size": 0.5, "steps": 3},
  "generate": {"max_new_tokens": 4, "batch": 4},
  "out": "$T/pa"
}
JSON
"$B" pipeline "$T/recipe.json" >"$T/log" 2>&1 || { cat "$T/log"; fail "pipeline"; }
mkdir "$T/pb"
cp -r "$T/pa/train" "$T/pb/"
"$B" train --data "$T/pb/train" --out "$T/pb/value.safetensors" --hidden 16 --epochs 5 --batch-size 3 --lr 1e-3 \
    --max-steps 4 >"$T/log" 2>&1 || { cat "$T/log"; fail "stopped stage-3 training"; }
"$B" pipeline "$T/recipe.json" --out "$T/pb" >"$T/log" 2>&1 || { cat "$T/log"; fail "pipeline resuming stage 3"; }
grep -q "resumed from $T/pb/value.ckpt: step 4" "$T/log" || { cat "$T/log"; fail "stage 3 did not resume"; }
cmp -s "$T/pa/value.safetensors" "$T/pb/value.safetensors" || fail "pipeline: resumed value network differs"
echo "pipeline stage 3: a training stopped at step 4 resumed by the pipeline, value network identical"
pass=$((pass + 1))

# ---- two MPI ranks stopped and resumed on two ranks -------------------------------------------
if command -v mpirun >/dev/null && grep -q libmpi <<<"$(ldd "$B")"; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    export OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_rmaps_base_oversubscribe=1
    export OMPI_MCA_hwloc_base_binding_policy=none OMP_NUM_THREADS=1
    if grep -q libasan <<<"$(ldd "$B")"; then export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"; fi
    M=(train --data "$D" --hidden 32,24 --epochs 3 --batch-size 4 --lr 1e-2 --seed 3 --quiet)
    timeout 300 mpirun -np 2 "$B" "${M[@]}" --out "$T/mfull.safetensors" >"$T/log" 2>&1 || { cat "$T/log"; fail "2 ranks"; }
    timeout 300 mpirun -np 2 "$B" "${M[@]}" --out "$T/mpart.safetensors" --max-steps 7 >"$T/log" 2>&1 ||
        { cat "$T/log"; fail "2 ranks stopped"; }
    timeout 300 mpirun -np 2 "$B" "${M[@]}" --out "$T/mpart.safetensors" --resume >"$T/log" 2>&1 ||
        { cat "$T/log"; fail "2 ranks resumed"; }
    grep -q "resumed from .*: step 7" "$T/log" || { cat "$T/log"; fail "2 ranks: no resume line"; }
    same "$T/mfull" "$T/mpart" "2 ranks"
    echo "2 MPI ranks stopped at step 7 and resumed on 2 ranks: weights identical"
    pass=$((pass + 1))
else
    echo "(no mpirun or no MPI in this build: the multi-rank resume is not tested here)"
fi
echo "train_resume: $pass passed, 0 failed"
