#!/usr/bin/env python3
"""RoPE inverse-frequency fixture for tests/test_config.c, computed by HF transformers itself
(LlamaRotaryEmbedding's default init and ROPE_INIT_FUNCTIONS["llama3"]).

Writes tests/fixtures/loader/rope_inv_freq.json: {"versions": {...}, "cases": [{"name",
"config" (the config.json text transformers writes), "inv_freq": [head_dim/2 floats]}]}.

Usage: python3 tests/scripts/make_rope_fixture.py [out_dir]   (default tests/fixtures/loader)
"""
import json
import os
import sys

import torch
import transformers
from transformers import LlamaConfig
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

LLAMA3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 8192}

CASES = {
    # plain RoPE, theta 1e4, head_dim 64 (hidden / heads)
    "default_hd64": dict(hidden_size=256, num_attention_heads=4, rope_theta=10000.0),
    # plain RoPE, theta 5e5, explicit head_dim 128
    "default_theta5e5_hd128": dict(hidden_size=256, num_attention_heads=4, head_dim=128,
                                   rope_theta=500000.0),
    # Llama-3.1-8B's rope_scaling: head_dim 128, theta 5e5, max positions 131072
    "llama31_8b": dict(hidden_size=512, num_attention_heads=4, rope_theta=500000.0,
                       max_position_embeddings=131072, rope_scaling=LLAMA3),
    # Llama-3.2-1B style (factor 32), head_dim 64
    "llama32_factor32": dict(hidden_size=256, num_attention_heads=4, rope_theta=500000.0,
                             max_position_embeddings=131072,
                             rope_scaling=dict(LLAMA3, factor=32.0)),
    # small original context so that all three bands (kept, smoothed, divided) are hit at hd 32
    "llama3_small_ctx": dict(hidden_size=128, num_attention_heads=4, rope_theta=10000.0,
                             max_position_embeddings=4096,
                             rope_scaling={"rope_type": "llama3", "factor": 4.0,
                                           "low_freq_factor": 1.0, "high_freq_factor": 2.0,
                                           "original_max_position_embeddings": 64}),
}


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(__file__), "..", "fixtures", "loader")
    os.makedirs(out_dir, exist_ok=True)
    cases = []
    for name, kw in CASES.items():
        base = dict(intermediate_size=128, num_hidden_layers=1, vocab_size=100,
                    architectures=["LlamaForCausalLM"])
        base.update(kw)
        cfg = LlamaConfig(**base)
        rp = getattr(cfg, "rope_parameters", None) or getattr(cfg, "rope_scaling", None) or {}
        rtype = rp.get("rope_type", rp.get("type", "default"))
        if rtype == "default":
            inv, _ = LlamaRotaryEmbedding.compute_default_rope_parameters(cfg)
        else:
            inv, _ = ROPE_INIT_FUNCTIONS[rtype](cfg, torch.device("cpu"))
        cases.append({"name": name, "rope_type": rtype, "config": cfg.to_json_string(),
                      "inv_freq": [float(x) for x in inv.float().tolist()]})
    doc = {"versions": {"torch": torch.__version__, "transformers": transformers.__version__},
           "cases": cases}
    with open(os.path.join(out_dir, "rope_inv_freq.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
