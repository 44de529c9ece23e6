#!/usr/bin/env bash
# Data-parallel runs under Open MPI's mpirun on the tiny models: `pipeline` (extract, label, train,
# generate, eval) with 1, 2 and 3 ranks gives the run directory of a plain one-process run (the
# same files, byte for byte; the value network within a written tolerance), `generate --jsonl`
# prints the same lines, a killed two-rank extraction resumes with 2, 3 or 1 ranks to the clean
# files, ranks that disagree about the settings stop with one message, and a rank that dies
# takes the job down within a bounded time, named by the launcher. Launcher variables without
# MPI are refused clearly. Args: <build_dir> <source_dir>. Exit 77 (skipped) without mpirun.
set -euo pipefail
B="$1/recontrol"
F="$2/tests/fixtures/tiny"
T=$(mktemp -d /tmp/rc_mpi.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
pass=0

# ---- launcher variables, no MPI needed -------------------------------------------------------
if RANK=1 WORLD_SIZE=2 "$B" info --help >"$T/e1" 2>&1; then fail "RANK/WORLD_SIZE without mpirun accepted"; fi
grep -q "start them with mpirun or srun" "$T/e1" || { cat "$T/e1"; fail "no clear message for RANK/WORLD_SIZE"; }
if OMPI_COMM_WORLD_RANK=3 OMPI_COMM_WORLD_SIZE=2 "$B" info --help >"$T/e2" 2>&1; then fail "rank 3 of 2 accepted"; fi
grep -q "rank must be below size" "$T/e2" || { cat "$T/e2"; fail "no clear message for rank >= size"; }
RANK=0 WORLD_SIZE=1 "$B" info --help >/dev/null || fail "a world of 1 from RANK/WORLD_SIZE"
# a Slurm batch script (no job step: not started by srun) is one process, whatever SLURM_NTASKS says
SLURM_PROCID=0 SLURM_NTASKS=16 SLURM_LOCALID=0 "$B" info --help >/dev/null || fail "Slurm batch step taken for a rank"
pass=$((pass + 1))

if ! command -v mpirun >/dev/null; then
    echo "skipped: mpirun not installed (scripts/install-deps.sh installs Open MPI); $pass passed"
    exit 77
fi
# Open MPI as root (CI), more ranks than cores, shared memory only, no core binding.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_hwloc_base_binding_policy=none OMP_NUM_THREADS=1
# (ldd's output read whole: `ldd | grep -q` under pipefail fails when grep stops reading early)
LIBS=$(ldd "$B")
if ! grep -q libmpi <<<"$LIBS"; then
    # built without MPI: a launcher asking for 2 ranks gets a clear error
    if mpirun --oversubscribe -np 2 "$B" info --help >"$T/e3" 2>&1; then fail "2 ranks without MPI accepted"; fi
    grep -q "built without MPI" "$T/e3" || { cat "$T/e3"; fail "no clear message without MPI"; }
    echo "recontrol built without MPI: the multi-rank runs are not tested; $((pass + 1)) passed"
    exit 77
fi

run() { local np=$1; shift; timeout 300 mpirun -np "$np" "$@"; }
# mpirun can return from an aborted job while the launcher still ends the other ranks: a resume
# must not start before every rank of the killed run ($1: a string of its command line) is gone.
wait_gone() {
    # (60 s: on a loaded machine the launcher's SIGTERM -> SIGKILL sequence alone can take seconds)
    for _ in $(seq 1 1200); do pgrep -f -- "$1" >/dev/null || return 0; sleep 0.05; done
    fail "ranks of a stopped job still running after 60 s: $(pgrep -af -- "$1")"
}
# Under AddressSanitizer, Open MPI's own allocations made by MPI_Init are still held at exit: do not
# count them as our leaks in the ranks (a process alone never starts MPI and keeps leak checks).
if grep -q libasan <<<"$LIBS"; then export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"; fi

# ---- the pipeline on 1 process and on 1, 2, 3 ranks -----------------------------------------
for i in $(seq 0 13); do
    printf '{"ids": [%d, %d, %d, %d]}\n' $((1 + i)) $((40 + 3 * i)) $((100 + i)) $((7 * i + 2))
done >"$T/train.jsonl"
for i in $(seq 0 6); do printf '{"ids": [%d, %d, 9]}\n' $((200 + i)) $((3 + i)); done >"$T/test.jsonl"
recipe() {
    cat <<JSON
{
  "name": "tiny-ranks",
  "model": "$F/mha_hd32_tied",
  "reward": {"reward_model": "$F/rm_score"},
  "format": "ids",
  "train_data": "$T/train.jsonl",
  "test_data": "$T/test.jsonl",
  "extract": {"max_new_tokens": 8, "batch": 4, "dtype": "fp32"},
  "value": {"hidden": [16], "epochs": 4, "batch_size": 5, "lr": 1e-3},
  "control": {"step_size": 0.5, "steps": 5},
  "generate": {"max_new_tokens": 8, "batch": 4},
  "out": "$T/$1"
}
JSON
}
recipe plain >"$T/plain.json"
"$B" pipeline "$T/plain.json" >"$T/plain.log" 2>&1 || { cat "$T/plain.log"; fail "plain pipeline"; }
# value weights: |w_N - w_1| <= 1e-6 everywhere. The ranks add their parts of each batch's
# gradient in rank order instead of row order (fp32 sums, |w| ~ 0.3, ~12 Adam steps of lr 1e-3):
# measured 1.5e-8 on this data; 1e-6 leaves room for other CPUs' rounding.
cmp_weights() {
    python3 - "$1" "$2" <<'PY'
import json, struct, sys
def load(p):
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n]); d = b[8 + n:]
    return {k: struct.unpack("<%df" % ((v["data_offsets"][1] - v["data_offsets"][0]) // 4),
                             d[v["data_offsets"][0]:v["data_offsets"][1]])
            for k, v in h.items() if k != "__metadata__"}
a, b = load(sys.argv[1]), load(sys.argv[2])
assert a.keys() == b.keys(), "tensors differ"
m = max(abs(x - y) for k in a for x, y in zip(a[k], b[k]))
print("value weights: max |w_N - w_1| = %.3g" % m)
sys.exit(0 if m <= 1e-6 else 1)
PY
}
for np in 1 2 3; do
    recipe "r$np" >"$T/r$np.json"
    run "$np" "$B" pipeline "$T/r$np.json" >"$T/r$np.log" 2>&1 || { cat "$T/r$np.log"; fail "pipeline on $np ranks"; }
    n=0
    # every file but the value network, its log (times), its checkpoint and the lock files (pids): byte for byte, once the run
    # directory's own path (in the manifests and reports) is set aside
    for f in $(cd "$T/plain" && find . -type f ! -name '*.train.json' ! -name 'value.safetensors' ! -name 'value.ckpt' ! -name .lock | sort); do
        case "$f" in
        *.json | *.md) cmp -s <(sed "s|$T/plain|RUN|g" "$T/plain/$f") <(sed "s|$T/r$np|RUN|g" "$T/r$np/$f") ;;
        *) cmp -s "$T/plain/$f" "$T/r$np/$f" ;;
        esac || fail "$np ranks: $f differs from the one-process run"
        n=$((n + 1))
    done
    [ "$(cd "$T/r$np" && find . -type f | wc -l)" = "$(cd "$T/plain" && find . -type f | wc -l)" ] ||
        fail "$np ranks: not the same set of files as the one-process run"
    cmp_weights "$T/plain/value.safetensors" "$T/r$np/value.safetensors" || fail "$np ranks: value weights"
    [ "$(grep -c '^\[extract\] .* (.* ranks)$' "$T/r$np.log" || true)" -ge "$((np > 1 ? 1 : 0))" ] ||
        fail "$np ranks: no job-wide progress line"
    grep -q "1/5 rollouts" "$T/r$np.log" && [ "$(grep -c '1/5 rollouts' "$T/r$np.log")" = 1 ] ||
        fail "$np ranks: stage lines not printed once"
    echo "pipeline on $np rank(s): $n files identical to the one-process run, report identical"
    pass=$((pass + 1))
done

# ---- generate --jsonl with sampling ---------------------------------------------------------
G=(generate --model "$F/mha_hd32_tied" --jsonl "$T/train.jsonl" --max-new-tokens 10 --batch 3 --json
   --temperature 0.9 --top-p 0.95 --seed 11 --threads 1)
"$B" "${G[@]}" >"$T/g1" 2>/dev/null
for np in 2 3; do
    run "$np" "$B" "${G[@]}" --out "$T/g$np" 2>/dev/null || fail "generate on $np ranks"
    cmp -s "$T/g1" "$T/g$np" || fail "generate on $np ranks differs from one process"
done
echo "generate --jsonl: 2 and 3 ranks print the one-process lines"
pass=$((pass + 1))

# ---- a killed two-rank extraction resumes (with 2, 3 and 1 ranks) -----------------------------
awk 'BEGIN { srand(5); for (i = 0; i < 160; i++) { n = 1 + i % 12; s = "{\"ids\": [";
      for (k = 0; k < n; k++) s = s (k ? ", " : "") int(3 + rand() * 250); print s "]}" } }' >"$T/p.jsonl"
X=(extract --model "$F/mha_hd32_tied" --data "$T/p.jsonl" --format ids --max-new-tokens 12 --batch 4
   --shard-size 8 --dtype bf16 --max-prompt-tokens 10 --threads 1)
"$B" "${X[@]}" --out "$T/xclean" 2>/dev/null
for again in 2 3 1; do
    d="$T/x$again"
    if RC_EXTRACT_ABORT_AFTER_SHARDS=2 run 2 "$B" "${X[@]}" --out "$d" >"$T/kill.log" 2>&1; then
        fail "the two-rank extraction was not stopped"
    fi
    wait_gone "--out $d"
    grep -q "RC_EXTRACT_ABORT_AFTER_SHARDS=2: rank" "$T/kill.log" || { cat "$T/kill.log"; fail "the two-rank extraction failed otherwise"; }
    run "$again" "$B" "${X[@]}" --out "$d" >"$T/resume.log" 2>&1 || { cat "$T/resume.log"; fail "resume on $again ranks"; }
    # each rank stops after its 2nd shard; the launcher may kill the other one a shard earlier
    k=$(sed -n 's/.*resuming .*: \([0-9]*\) of 17 shards committed.*/\1/p' "$T/resume.log")
    [ -n "$k" ] && [ "$k" -ge 2 ] && [ "$k" -le 4 ] ||
        { cat "$T/kill.log" "$T/resume.log"; ls "$d"; fail "no resume line with 2 to 4 shards"; }
    for f in "$T"/xclean/*; do
        cmp -s "$f" "$d/$(basename "$f")" || fail "resumed on $again ranks: $(basename "$f") differs"
    done
    [ "$(ls "$d" | wc -l)" = "$(ls "$T/xclean" | wc -l)" ] || fail "resumed on $again ranks: extra files"
done
echo "killed two-rank extraction: resumed on 2, 3 and 1 ranks to the clean run's files"
pass=$((pass + 1))

# ---- a killed two-rank labelling resumes (with 3 and 1 ranks): every rank's partial log is read
L=(label --reward-model "$F/rm_regression_head_bf16" --batch 4 --threads 1)
"$B" "${L[@]}" --run "$T/xclean" 2>/dev/null
for again in 3 1; do
    d="$T/x$again"
    if RC_LABEL_ABORT_AFTER_BATCHES=3 run 2 "$B" "${L[@]}" --run "$d" >"$T/lkill.log" 2>&1; then
        fail "the two-rank labelling was not stopped"
    fi
    wait_gone "--run $d"
    ls "$d"/rewards.partial-*.jsonl >/dev/null 2>&1 || fail "no partial reward logs after the kill"
    run "$again" "$B" "${L[@]}" --run "$d" >"$T/lres.log" 2>&1 || { cat "$T/lres.log"; fail "label resume on $again ranks"; }
    grep -q "resuming: .* already scored" "$T/lres.log" || { cat "$T/lres.log"; fail "label did not resume"; }
    cmp -s "$T/xclean/rewards.jsonl" "$d/rewards.jsonl" || fail "label resumed on $again ranks: rewards differ"
    if ls "$d"/rewards.partial*.jsonl >/dev/null 2>&1; then fail "partial reward logs left behind"; fi
done
echo "killed two-rank labelling: resumed on 3 and 1 ranks to the clean rewards"
pass=$((pass + 1))

# ---- ranks that disagree; a rank that dies ---------------------------------------------------
start=$(date +%s)
if run 2 sh -c 'exec "$0" "$@" --max-new-tokens $((6 + OMPI_COMM_WORLD_RANK))' "$B" "${X[@]}" --out "$T/dis" \
    >"$T/dis.log" 2>&1; then
    fail "ranks with different settings ran"
fi
[ "$(grep -c 'ranks disagree about the extract settings: rank 1 has' "$T/dis.log")" = 1 ] ||
    { cat "$T/dis.log"; fail "not one clear message for ranks that disagree"; }
if RC_EXTRACT_ABORT_RANK=1 RC_EXTRACT_ABORT_AFTER_SHARDS=1 run 3 "$B" "${X[@]}" --out "$T/die" >"$T/die.log" 2>&1; then
    fail "the job went on after rank 1 died"
fi
wait_gone "--out $T/die"
grep -q "process rank 1 .* exited on signal 9" "$T/die.log" || { cat "$T/die.log"; fail "the dead rank is not named"; }
secs=$(($(date +%s) - start))
[ "$secs" -lt 120 ] || fail "stopping took $secs s"
echo "disagreeing ranks: one message; rank 1 killed: job stopped naming it ($secs s for both)"
pass=$((pass + 1))
echo "mpi_ranks: $pass passed, 0 failed"
