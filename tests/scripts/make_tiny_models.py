#!/usr/bin/env python3
"""Tiny random LLaMA models and their HF transformers outputs, the golden fixtures of
tests/test_forward.c. Re-runnable: seeds are fixed, so the output is the same on a rerun with the
same torch/transformers versions (versions are recorded in each golden.json).

For every model in MODELS this writes tests/fixtures/tiny/<name>/:
  config.json, model.safetensors      save_pretrained (F32 or BF16 storage)
  logits_<k>.npy                      float32 [len_k, vocab]: transformers logits of seqs[k]
  golden.json                         {seqs, prompts, greedy (32 new tokens per prompt),
                                       rewards (reward models), min_greedy_margin, versions}

Every output is computed by transformers in fp32 with eager attention. For a BF16-stored model
the bf16 weights are loaded and cast to fp32 (exact), so the reference is the fp32 forward of the
very weights the C engine reads.

Usage: python3 tests/scripts/make_tiny_models.py [out_dir]   (default tests/fixtures/tiny)
"""
import json
import os
import shutil
import sys

import numpy as np
import torch
import transformers
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification, LlamaModel

N_NEW = 32

# name: config overrides + kind/storage. Every model: 2 layers, hidden 64-128, vocab <= 1001.
MODELS = {
    # MHA, head_dim 32, tied, theta 1e4, odd vocab 257, F32.
    "mha_hd32_tied": dict(kind="causal", dtype="f32", hidden_size=64, num_attention_heads=2,
                          num_key_value_heads=2, intermediate_size=128, vocab_size=257,
                          tie_word_embeddings=True, rope_theta=1e4),
    # GQA 2:1, head_dim 64, untied, theta 5e5, BF16 storage.
    "gqa_hd64_untied_bf16": dict(kind="causal", dtype="bf16", hidden_size=128, num_attention_heads=2,
                                 num_key_value_heads=1, intermediate_size=128, vocab_size=320,
                                 tie_word_embeddings=False, rope_theta=5e5),
    # head_dim 64 from the config while hidden/heads = 32 (q is 128 wide), GQA, tied, vocab 1001.
    "gqa_hd64_explicit_v1001": dict(kind="causal", dtype="f32", hidden_size=64, num_attention_heads=2,
                                    num_key_value_heads=1, head_dim=64, intermediate_size=96,
                                    vocab_size=1001, tie_word_embeddings=True, rope_theta=1e4),
    # GQA 4:2, head_dim 16, untied, Llama-3.1 rope_scaling (llama3), theta 5e5.
    "gqa_llama3_rope": dict(kind="causal", dtype="f32", hidden_size=64, num_attention_heads=4,
                            num_key_value_heads=2, intermediate_size=128, vocab_size=300,
                            tie_word_embeddings=False, rope_theta=5e5,
                            rope_scaling={"rope_type": "llama3", "factor": 8.0,
                                          "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                          "original_max_position_embeddings": 16}),
    # LlamaForSequenceClassification (score.weight), MHA head_dim 32, num_labels 1, pad 0.
    "rm_score": dict(kind="seqcls", dtype="f32", hidden_size=64, num_attention_heads=2,
                     num_key_value_heads=2, intermediate_size=128, vocab_size=257,
                     tie_word_embeddings=False, rope_theta=1e4, num_labels=1, pad_token_id=0),
    # UltraRM layout: backbone + regression_head.weight [1, d] (no score.weight), BF16, GQA.
    "rm_regression_head_bf16": dict(kind="ultrarm", dtype="bf16", hidden_size=64,
                                    num_attention_heads=4, num_key_value_heads=2,
                                    intermediate_size=128, vocab_size=257,
                                    tie_word_embeddings=False, rope_theta=1e4, num_labels=1,
                                    pad_token_id=0),
}

SEQ_LENS = [1, 7, 23]      # logits sequences
PROMPT_LENS = [1, 5, 12]   # greedy prompts
REWARD_LENS = [3, 9, 17, 30]


def make_config(spec):
    kw = {k: v for k, v in spec.items() if k not in ("kind", "dtype", "rope_theta", "rope_scaling")}
    rope = {"rope_type": "default", "rope_theta": spec["rope_theta"]}
    if "rope_scaling" in spec:
        rope = dict(spec["rope_scaling"], rope_theta=spec["rope_theta"])
    kw.setdefault("pad_token_id", None)
    cfg = LlamaConfig(num_hidden_layers=2, max_position_embeddings=256, rms_norm_eps=1e-5,
                      bos_token_id=1, eos_token_id=2, rope_parameters=rope,
                      attn_implementation="eager", **kw)
    return cfg


@torch.no_grad()
def randomize(model, seed):
    """Weights with spread (the default 0.02 init gives near-uniform logits and fragile argmax)."""
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if p.ndim == 1:  # RMSNorm weights
            p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
        elif "embed_tokens" in name:
            # Tied: a small embedding so that the layers' output, not the input token's own
            # embedding, dominates the final state (else greedy just repeats the last token).
            std = 0.1 if model.config.tie_word_embeddings else 1.0
            p.copy_(std * torch.randn(p.shape, generator=g))
        elif name.endswith(("o_proj.weight", "down_proj.weight")) and model.config.tie_word_embeddings:
            p.copy_(2.0 * torch.randn(p.shape, generator=g) / (p.shape[1] ** 0.5))
        else:
            p.copy_(torch.randn(p.shape, generator=g) / (p.shape[1] ** 0.5))


def legacy_config_keys(path, spec):
    """Also write the pre-v5 keys (rope_theta, rope_scaling), as most published checkpoints have."""
    with open(path) as f:
        c = json.load(f)
    c["rope_theta"] = spec["rope_theta"]
    if "rope_scaling" in spec:
        c["rope_scaling"] = spec["rope_scaling"]
    with open(path, "w") as f:
        json.dump(c, f, indent=2, sort_keys=True)


def ids(gen, n, vocab, avoid=()):
    out = []
    while len(out) < n:
        t = int(torch.randint(0, vocab, (1,), generator=gen))
        if t not in avoid:
            out.append(t)
    return out


@torch.no_grad()
def build(name, spec, out_root, seed):
    torch.manual_seed(seed)
    out = os.path.join(out_root, name)
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    cfg = make_config(spec)
    kind = spec["kind"]
    if kind == "causal":
        model = LlamaForCausalLM(cfg)
    elif kind == "seqcls":
        model = LlamaForSequenceClassification(cfg)
    else:
        model = LlamaModel(cfg)
    model.eval()
    randomize(model, seed)
    head = None
    if kind == "ultrarm":
        g = torch.Generator().manual_seed(seed + 1)
        head = torch.randn(1, cfg.hidden_size, generator=g) / cfg.hidden_size ** 0.5

    store = torch.bfloat16 if spec["dtype"] == "bf16" else torch.float32
    if kind == "ultrarm":
        sd = {"model." + k: v.to(store).contiguous() for k, v in model.state_dict().items()}
        sd["regression_head.weight"] = head.to(store).contiguous()
        save_file(sd, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
        cfg.architectures = ["LlamaForSequenceClassification"]
        cfg.save_pretrained(out)
    else:
        model.to(store).save_pretrained(out)
    legacy_config_keys(os.path.join(out, "config.json"), spec)
    gen_cfg = os.path.join(out, "generation_config.json")
    if os.path.exists(gen_cfg):
        os.remove(gen_cfg)
    if kind == "ultrarm":
        if store == torch.bfloat16:  # the reference must use the rounded weights
            for p in model.parameters():
                p.copy_(p.to(torch.bfloat16).float())
            head = head.to(torch.bfloat16).float()
    else:
        # Reload what was written, in fp32: the reference runs on exactly the stored weights.
        # (Casting the live module with .to(bf16) and back would also round the RoPE inv_freq
        # buffer to bf16, a different model from the one on disk.)
        cls = LlamaForCausalLM if kind == "causal" else LlamaForSequenceClassification
        model = cls.from_pretrained(out, dtype=torch.float32, attn_implementation="eager").eval()
        assert model.model.rotary_emb.inv_freq.dtype == torch.float32

    V = cfg.vocab_size
    g = torch.Generator().manual_seed(seed + 2)
    golden = {"name": name, "kind": kind, "dtype": spec["dtype"], "seed": seed,
              "versions": {"torch": torch.__version__, "transformers": transformers.__version__}}
    avoid = (0,) if kind != "causal" else ()
    if kind == "causal":
        seqs = [ids(g, n, V) for n in SEQ_LENS]
        for k, s in enumerate(seqs):
            logits = model(torch.tensor([s])).logits[0].float().numpy()
            np.save(os.path.join(out, f"logits_{k}.npy"), logits.astype(np.float32))
        golden["seqs"] = seqs
        prompts = [ids(g, n, V) for n in PROMPT_LENS]
        greedy, margins = [], []
        for p in prompts:
            res = model.generate(torch.tensor([p]), attention_mask=torch.ones(1, len(p), dtype=torch.long),
                                 max_new_tokens=N_NEW, min_new_tokens=N_NEW, do_sample=False,
                                 eos_token_id=None, pad_token_id=0, output_scores=True,
                                 return_dict_in_generate=True)
            new = res.sequences[0, len(p):].tolist()
            assert len(new) == N_NEW
            # Cross-check with a plain argmax loop over full forwards (no cache) and record the
            # smallest top-1/top-2 logit gap: a tiny gap would make the test depend on rounding.
            seq = list(p)
            for t in range(N_NEW):
                lg = model(torch.tensor([seq])).logits[0, -1]
                top2 = torch.topk(lg, 2).values
                margins.append(float(top2[0] - top2[1]))
                seq.append(int(torch.argmax(lg)))
            assert seq[len(p):] == new, f"{name}: generate() and the argmax loop disagree"
            greedy.append(new)
        golden["prompts"] = prompts
        golden["greedy"] = greedy
        golden["min_greedy_margin"] = min(margins)
        # fp32 engines agree to ~1e-6 relative; a gap this size keeps greedy well defined.
        assert min(margins) > 1e-3, f"{name}: near-tie in greedy decoding, pick another seed"

    else:
        seqs = [ids(g, n, V, avoid) for n in REWARD_LENS]
        # Right-padded batch with pad_token_id, as a reward-labelling run would send it; HF picks
        # the last non-pad token of each row.
        L = max(len(s) for s in seqs)
        batch = torch.tensor([s + [0] * (L - len(s)) for s in seqs])
        mask = (batch != 0).long()
        if kind == "seqcls":
            rewards = model(batch, attention_mask=mask).logits[:, 0].tolist()
            single = [model(torch.tensor([s])).logits[0, 0].item() for s in seqs]
        else:
            hs = model(batch, attention_mask=mask).last_hidden_state
            rewards = [float(hs[i, len(s) - 1] @ head[0]) for i, s in enumerate(seqs)]
            single = [float(model(torch.tensor([s])).last_hidden_state[0, -1] @ head[0]) for s in seqs]
        for r, s in zip(rewards, single):
            assert abs(r - s) <= 1e-4 * max(1.0, abs(s)), (name, r, s)
        golden["seqs"] = seqs
        golden["rewards"] = rewards
    with open(os.path.join(out, "golden.json"), "w") as f:
        json.dump(golden, f, indent=1)
    size = sum(os.path.getsize(os.path.join(out, x)) for x in os.listdir(out))
    print(f"{name}: {size / 1024:.0f} KiB, min greedy margin {golden.get('min_greedy_margin')}")


def main():
    out_root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "tiny")
    torch.set_num_threads(1)
    for i, (name, spec) in enumerate(MODELS.items()):
        build(name, spec, out_root, seed=1000 + i)


if __name__ == "__main__":
    main()
