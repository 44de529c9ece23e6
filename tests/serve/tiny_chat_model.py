"""Assembles a tiny LLaMA with a real tokenizer for the server tests, with the standard library
only (CI has no numpy or torch): random weights (fixed seed) sized for the SentencePiece test
tokenizer (2,000 pieces, Vicuna chat template), plus a random value network of the model's
width. The tests compare the server with `recontrol generate` on the same files, so the weights
need no meaning.

usage: python3 tiny_chat_model.py OUT_DIR   (writes OUT_DIR/model/ and OUT_DIR/value.safetensors)
"""
import json
import os
import random
import shutil
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TOK = os.path.join(HERE, "..", "fixtures", "tok", "spm")

CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
    "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
    "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16,
    "vocab_size": 2000, "max_position_embeddings": 512, "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0, "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2,
    "torch_dtype": "float32",
}


def write_safetensors(path, tensors):
    """tensors: list of (name, shape, flat list of floats), written as F32."""
    header, blobs, off = {}, [], 0
    for name, shape, vals in tensors:
        blob = struct.pack("<%df" % len(vals), *vals)
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [off, off + len(blob)]}
        blobs.append(blob)
        off += len(blob)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def rand(rng, n, scale):
    return [rng.uniform(-scale, scale) for _ in range(n)]


def make(out):
    rng = random.Random(1234)
    c = CONFIG
    d, f, hd = c["hidden_size"], c["intermediate_size"], c["head_dim"]
    q, kv = c["num_attention_heads"] * hd, c["num_key_value_heads"] * hd
    t = [("model.embed_tokens.weight", (c["vocab_size"], d), rand(rng, c["vocab_size"] * d, 1.0))]
    for i in range(c["num_hidden_layers"]):
        p = "model.layers.%d." % i
        for name, rows, cols in (("self_attn.q_proj", q, d), ("self_attn.k_proj", kv, d),
                                 ("self_attn.v_proj", kv, d), ("self_attn.o_proj", d, q),
                                 ("mlp.gate_proj", f, d), ("mlp.up_proj", f, d),
                                 ("mlp.down_proj", d, f)):
            t.append((p + name + ".weight", (rows, cols), rand(rng, rows * cols, cols ** -0.5)))
        t.append((p + "input_layernorm.weight", (d,), [1.0] * d))
        t.append((p + "post_attention_layernorm.weight", (d,), [1.0] * d))
    t.append(("model.norm.weight", (d,), [1.0] * d))
    t.append(("lm_head.weight", (c["vocab_size"], d), rand(rng, c["vocab_size"] * d, 1.0)))
    mdir = os.path.join(out, "model")
    os.makedirs(mdir, exist_ok=True)
    write_safetensors(os.path.join(mdir, "model.safetensors"), t)
    with open(os.path.join(mdir, "config.json"), "w") as fh:
        json.dump(c, fh, indent=1)
    for name in ("tokenizer.model", "tokenizer_config.json"):
        shutil.copy(os.path.join(TOK, name), os.path.join(mdir, name))
    h = 16
    write_safetensors(os.path.join(out, "value.safetensors"), [
        ("fc1.weight", (h, d), rand(rng, h * d, d ** -0.5)), ("fc1.bias", (h,), rand(rng, h, 0.1)),
        ("fc2.weight", (1, h), rand(rng, h, h ** -0.5)), ("fc2.bias", (1,), [0.0])])


if __name__ == "__main__":
    make(sys.argv[1])
