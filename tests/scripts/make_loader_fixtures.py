#!/usr/bin/env python3
"""Tiny HF checkpoints for tests/test_model_load.c, written by transformers' save_pretrained (and
safetensors' own writer for the UltraRM-style layout), plus reference values dumped by numpy.

Writes under tests/fixtures/loader/ (default; or argv[1]):
  causal_f32/       LlamaForCausalLM, untied, F32, single model.safetensors
  causal_bf16/      LlamaForCausalLM, tied embeddings, BF16
  causal_sharded/   LlamaForCausalLM, untied, F32, sharded by max_shard_size (index.json)
  rm_score_f16/     LlamaForSequenceClassification (num_labels 1), F16
  rm_ultrarm/       "LlamaRewardModel": LlamaModel under model.* plus regression_head.weight, F32
  each with ref_<tensor name>.npy: float32 values of a few stored tensors (bf16/f16 upcast, exact)
  numpy_f4_2x3.npy, numpy_f8_2x3x4.npy, numpy_f4_vec5.npy, numpy_f4_fortran.npy: npy files as
  numpy writes them (values: arange * 0.5 - 1).

Re-runnable: seeds are fixed. Usage: python3 tests/scripts/make_loader_fixtures.py [out_dir]
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

BASE = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=67, max_position_embeddings=128,
            rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2)
REFS = ["model.embed_tokens.weight", "model.layers.1.self_attn.k_proj.weight",
        "model.layers.0.mlp.down_proj.weight", "model.layers.1.post_attention_layernorm.weight",
        "model.norm.weight"]


def randomize(model, seed):
    # random norms too (HF initializes them to ones, which would hide a mix-up)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)


def dump_refs(out, names):
    from safetensors import safe_open
    files = [f for f in os.listdir(out) if f.endswith(".safetensors")]
    for fn in files:
        with safe_open(os.path.join(out, fn), "pt") as f:
            for k in f.keys():
                if k in names:
                    np.save(os.path.join(out, "ref_" + k + ".npy"),
                            f.get_tensor(k).float().numpy().astype(np.float32))


def save(model, out, dtype, names, **kw):
    shutil.rmtree(out, ignore_errors=True)
    model.to(dtype).save_pretrained(out, **kw)
    dump_refs(out, names)


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(__file__), "..", "fixtures", "loader")
    os.makedirs(root, exist_ok=True)

    m = LlamaForCausalLM(LlamaConfig(**BASE, tie_word_embeddings=False))
    randomize(m, 1)
    save(m, os.path.join(root, "causal_f32"), torch.float32, REFS + ["lm_head.weight"])

    m = LlamaForCausalLM(LlamaConfig(**BASE, tie_word_embeddings=True))
    randomize(m, 2)
    save(m, os.path.join(root, "causal_bf16"), torch.bfloat16, REFS)

    m = LlamaForCausalLM(LlamaConfig(**BASE, tie_word_embeddings=False))
    randomize(m, 3)
    save(m, os.path.join(root, "causal_sharded"), torch.float32, REFS + ["lm_head.weight"],
         max_shard_size="40KB")

    m = LlamaForSequenceClassification(LlamaConfig(**BASE, num_labels=1, pad_token_id=0))
    randomize(m, 4)
    save(m, os.path.join(root, "rm_score_f16"), torch.float16, REFS + ["score.weight"])

    # UltraRM layout: class LlamaRewardModel(PreTrainedModel) with self.model = LlamaModel and
    # self.regression_head = nn.Linear(hidden, 1, bias=False).
    out = os.path.join(root, "rm_ultrarm")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    cfg = LlamaConfig(**BASE, pad_token_id=0)
    backbone = LlamaModel(cfg)
    randomize(backbone, 5)
    sd = {"model." + k: v.contiguous() for k, v in backbone.state_dict().items()}
    g = torch.Generator().manual_seed(6)
    sd["regression_head.weight"] = torch.randn(1, cfg.hidden_size, generator=g)
    save_file(sd, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    d = json.loads(cfg.to_json_string())
    d["architectures"] = ["LlamaRewardModel"]
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(d, f, indent=2)
    dump_refs(out, REFS + ["regression_head.weight"])

    a = np.arange(24, dtype=np.float64) * 0.5 - 1
    np.save(os.path.join(root, "numpy_f4_2x3.npy"), a[:6].astype(np.float32).reshape(2, 3))
    np.save(os.path.join(root, "numpy_f8_2x3x4.npy"), a.reshape(2, 3, 4))
    np.save(os.path.join(root, "numpy_f4_vec5.npy"), a[:5].astype(np.float32))
    np.save(os.path.join(root, "numpy_f4_fortran.npy"),
            np.asfortranarray(a[:6].astype(np.float32).reshape(2, 3)))
    with open(os.path.join(root, "versions.json"), "w") as f:
        json.dump({"torch": torch.__version__, "transformers": transformers.__version__,
                   "numpy": np.__version__}, f)
        f.write("\n")


if __name__ == "__main__":
    main()
