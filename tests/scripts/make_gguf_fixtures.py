#!/usr/bin/env python3
"""GGUF golden fixtures for tests/test_gguf.c, made with the `gguf` package and HF transformers.

Writes tests/fixtures/gguf/:
  tiny_mixed.gguf    a tiny random LLaMA (2 layers, d 256, GQA 4:1, untied) written with
                     gguf.GGUFWriter; tensors in Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q6_K, F16, BF16, F32;
                     attn_q/attn_k rows permuted exactly as llama.cpp's convert_hf_to_gguf.py does.
  tiny_tied.gguf     a smaller tied-embedding LLaMA (MHA, d 64) in F16 / Q8_0 / F32.
  <name>.json        {seqs, logits files, greedy continuation, min greedy margin, versions}
  <name>_logits_<k>.f32   float32 [len_k, vocab] little-endian: transformers logits of seqs[k]
                     after AutoModelForCausalLM.from_pretrained(dir, gguf_file=...) (dequantized
                     to fp32 by transformers/gguf; eager attention; fp32).
  dequant_<TYPE>.bin / dequant_<TYPE>.f32   random raw blocks of one ggml type and the floats
                     gguf.quants.dequantize gives for them; dequant.json lists them.
  bad_*.gguf         small invalid / unsupported files for the error-path tests.
  ../../fuzz/corpus_gguf/   seed inputs of the GGUF fuzz target (tests/fuzz/fuzz_gguf.c).
  default_model.json golden for the real default model (SmolLM2-135M-Instruct.Q4_1.gguf) when its
                     path is given with --default PATH: token ids of a few chat prompts (HF
                     tokenizer from the GGUF), last-position logits for the first 2048 vocab ids plus
                     the top-20, all-position argmax, and greedy continuations (up to 24 tokens or <|im_end|>) of the first two.

Usage: python3 tests/scripts/make_gguf_fixtures.py [--default PATH] [out_dir]
Re-runnable: fixed seeds.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile

import numpy as np
import torch
import transformers
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

N_NEW = 24
FIXTURE_DIR = None


def permute(w, n_head, n_head_kv):
    """llama.cpp convert_hf_to_gguf.py LlamaModel.permute (rotate-half -> interleaved rows)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def quantize_q6_k(x):
    """Q6_K from the block_q6_K spec (ql[128], qh[64], int8 scales[16], fp16 d): 16 sub-blocks of
    16 values, one int8 scale each, 6-bit values q-32. The gguf package cannot quantize Q6_K."""
    rows, cols = x.shape
    assert cols % 256 == 0
    b = x.reshape(-1, 256).astype(np.float32)
    sub = b.reshape(-1, 16, 16)
    scale_f = np.abs(sub).max(axis=2) / 31.0 + 1e-12            # (nb, 16)
    d = (scale_f.max(axis=1) / 127.0).astype(np.float16)        # (nb,)
    d32 = d.astype(np.float32)
    sc = np.clip(np.round(scale_f / d32[:, None]), 1, 127).astype(np.int8)
    q = np.clip(np.round(sub / (d32[:, None, None] * sc[:, :, None].astype(np.float32))), -32, 31)
    q = (q.astype(np.int32) + 32).reshape(-1, 256)               # 0..63
    nb = b.shape[0]
    out = np.zeros((nb, 210), np.uint8)
    for n in range(2):
        base = n * 128
        l = np.arange(32)
        q1, q2, q3, q4 = (q[:, base + l], q[:, base + l + 32], q[:, base + l + 64],
                          q[:, base + l + 96])
        out[:, n * 64 + l] = (q1 & 0xF) | ((q3 & 0xF) << 4)
        out[:, n * 64 + l + 32] = (q2 & 0xF) | ((q4 & 0xF) << 4)
        out[:, 128 + n * 32 + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6)
    out[:, 192:208] = sc.view(np.uint8)
    out[:, 208:210] = d.view(np.uint8).reshape(nb, 2)
    res = out.reshape(rows, cols // 256 * 210)
    err = np.abs(dequantize(res, T.Q6_K) - x).max()
    assert err < 0.1 * np.abs(x).max() + 1e-6, err
    return res


def encode(x, qtype):
    """Returns (array, raw_dtype) for GGUFWriter.add_tensor."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if qtype == T.F32:
        return x, None
    if qtype == T.F16:
        return x.astype(np.float16), None
    if qtype == T.Q6_K:
        return quantize_q6_k(x), T.Q6_K
    return quantize(x, qtype), qtype


def write_gguf(path, cfg, sd, types, name):
    """sd: HF state dict (numpy fp32). types: dict gguf tensor name -> qtype."""
    w = gguf.GGUFWriter(path, "llama")
    w.add_name(name)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_rope_freq_base(cfg.rope_parameters["rope_theta"])
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    w.add_vocab_size(cfg.vocab_size)
    w.add_file_type(1)
    # a placeholder gpt2-style vocabulary so that tokenizer-aware readers find one
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list([f"<t{i}>" for i in range(cfg.vocab_size)])
    w.add_token_types([1] * cfg.vocab_size)
    w.add_bos_token_id(cfg.bos_token_id)
    w.add_eos_token_id(cfg.eos_token_id)
    w.add_pad_token_id(cfg.eos_token_id)
    nh, nkv = cfg.num_attention_heads, cfg.num_key_value_heads

    def put(gname, arr):
        qt = types.get(gname, T.F32)
        data, raw = encode(arr, qt)
        if raw is None:
            w.add_tensor(gname, data)
        else:
            w.add_tensor(gname, data, raw_shape=data.shape, raw_dtype=raw)

    put("token_embd.weight", sd["model.embed_tokens.weight"])
    for l in range(cfg.num_hidden_layers):
        p = f"model.layers.{l}."
        put(f"blk.{l}.attn_norm.weight", sd[p + "input_layernorm.weight"])
        put(f"blk.{l}.attn_q.weight", permute(sd[p + "self_attn.q_proj.weight"], nh, nh))
        put(f"blk.{l}.attn_k.weight", permute(sd[p + "self_attn.k_proj.weight"], nh, nkv))
        put(f"blk.{l}.attn_v.weight", sd[p + "self_attn.v_proj.weight"])
        put(f"blk.{l}.attn_output.weight", sd[p + "self_attn.o_proj.weight"])
        put(f"blk.{l}.ffn_norm.weight", sd[p + "post_attention_layernorm.weight"])
        put(f"blk.{l}.ffn_gate.weight", sd[p + "mlp.gate_proj.weight"])
        put(f"blk.{l}.ffn_up.weight", sd[p + "mlp.up_proj.weight"])
        put(f"blk.{l}.ffn_down.weight", sd[p + "mlp.down_proj.weight"])
    put("output_norm.weight", sd["model.norm.weight"])
    if not cfg.tie_word_embeddings:
        put("output.weight", sd["lm_head.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def random_llama(seed, rope_theta, **kw):
    torch.manual_seed(seed)
    cfg = LlamaConfig(num_hidden_layers=2, max_position_embeddings=128, rms_norm_eps=1e-5,
                      bos_token_id=1, eos_token_id=2, attn_implementation="eager",
                      rope_parameters={"rope_type": "default", "rope_theta": rope_theta}, **kw)
    model = LlamaForCausalLM(cfg).eval()
    sd = {}
    g = torch.Generator().manual_seed(seed + 1)
    for k, v in model.state_dict().items():
        if k.endswith("norm.weight"):   # non-trivial norm gains
            t = 1.0 + 0.3 * torch.randn(v.shape, generator=g)
        elif "embed_tokens" in k or "lm_head" in k:
            t = torch.randn(v.shape, generator=g)
        else:                          # larger than the default init: peaky, stable greedy
            t = torch.randn(v.shape, generator=g) * (1.5 / v.shape[1] ** 0.5)
        sd[k] = t.numpy().astype(np.float32)
    if cfg.tie_word_embeddings:
        sd["lm_head.weight"] = sd["model.embed_tokens.weight"]
    return cfg, sd


def oracle(path, seqs):
    """transformers' own GGUF loader (dequantizes with the gguf package), fp32, eager."""
    d, f = os.path.split(os.path.abspath(path))
    m = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32,
                                             attn_implementation="eager").eval()
    logits, greedy, margins = [], [], []
    with torch.no_grad():
        for s in seqs:
            logits.append(m(torch.tensor([s])).logits[0].float().numpy())
        ids = torch.tensor([seqs[0]])
        out = []
        for _ in range(N_NEW):
            lg = m(ids).logits[0, -1].float()
            top = torch.topk(lg, 2).values
            margins.append(float(top[0] - top[1]))
            nxt = int(lg.argmax())
            out.append(nxt)
            ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
    return m, logits, out, min(margins)


def versions():
    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "gguf": getattr(gguf, "__version__", "installed"), "numpy": np.__version__}


def make_model_fixture(out, name, cfg, sd, types, seqs):
    path = os.path.join(out, name + ".gguf")
    with tempfile.TemporaryDirectory() as td:
        tmp = os.path.join(td, name + ".gguf")
        write_gguf(tmp, cfg, sd, types, name)
        shutil.copyfile(tmp, path)
        m, logits, greedy, margin = oracle(tmp, seqs)
    # transformers must have undone the Q/K permutation: its weights sit near the HF originals
    for l in range(cfg.num_hidden_layers):
        for proj, nkv in (("q_proj", cfg.num_attention_heads), ("k_proj", cfg.num_key_value_heads)):
            got = getattr(m.model.layers[l].self_attn, proj).weight.detach().numpy()
            orig = sd[f"model.layers.{l}.self_attn.{proj}.weight"]
            near = np.abs(got - orig).mean()
            far = np.abs(got - permute(orig, cfg.num_attention_heads, nkv)).mean()
            assert near < 0.5 * far, (name, l, proj, near, far)
    files = []
    for k, lg in enumerate(logits):
        fn = f"{name}_logits_{k}.f32"
        lg.astype("<f4").tofile(os.path.join(out, fn))
        files.append(fn)
    # how far the dequantized model is from the fp32 HF weights it came from (information only)
    ref = LlamaForCausalLM(cfg).eval()
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=False)
    if cfg.tie_word_embeddings:
        ref.tie_weights()
    with torch.no_grad():
        r = ref(torch.tensor([seqs[0]])).logits[0].numpy()
    qerr = float(np.abs(r - logits[0]).max() / np.abs(r).max())
    meta = {"gguf": name + ".gguf", "vocab_size": cfg.vocab_size, "seqs": seqs,
            "logits": files, "greedy_prompt": 0, "greedy": greedy,
            "min_greedy_margin": margin, "quantization_rel_err_vs_fp32": qerr,
            "types": {k: v.name for k, v in types.items()}, "versions": versions()}
    with open(os.path.join(out, name + ".json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(f"{name}: {os.path.getsize(path)} bytes, greedy margin {margin:.4f}, "
          f"quantization rel err vs fp32 {qerr:.4f}")


# byte offsets of the fp16 scale fields (d, dmin / m) inside one block, per type
SCALE_FIELDS = {T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
                T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208]}


def make_dequant_fixtures(out):
    rng = np.random.default_rng(1234)
    listing = []
    for qt in [T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q2_K, T.Q3_K,
               T.Q4_K, T.Q5_K, T.Q6_K]:
        be, bb = gguf.GGML_QUANT_SIZES[qt]
        nb = 8 if be == 256 else (64 if be == 32 else 256)
        if qt == T.F32:
            raw = rng.standard_normal(nb).astype("<f4").view(np.uint8)
        elif qt == T.F16:
            raw = (rng.standard_normal(nb) * 4).astype("<f2").view(np.uint8)
        elif qt == T.BF16:
            raw = quantize((rng.standard_normal((1, nb)) * 4).astype(np.float32), T.BF16).reshape(-1)
        else:
            raw = rng.integers(0, 256, size=(nb, bb), dtype=np.uint8)
            for off in SCALE_FIELDS[qt]:
                sc = (rng.standard_normal(nb) * 0.05).astype("<f2")
                raw[:, off:off + 2] = sc.view(np.uint8).reshape(nb, 2)
        raw = np.ascontiguousarray(raw).reshape(1, -1)
        ref = dequantize(raw, qt).astype("<f4").reshape(-1)
        assert np.all(np.isfinite(ref))
        raw.tofile(os.path.join(out, f"dequant_{qt.name}.bin"))
        ref.tofile(os.path.join(out, f"dequant_{qt.name}.f32"))
        listing.append({"type": qt.name, "id": int(qt), "elements": int(ref.size),
                        "bytes": int(raw.size)})
    with open(os.path.join(out, "dequant.json"), "w") as f:
        json.dump({"types": listing, "versions": versions()}, f, indent=1)


def make_bad_files(out, tiny_tied_path):
    """Invalid files beyond truncation (which the C test makes by cutting tiny files itself)."""
    rng = np.random.default_rng(7)
    # an unsupported tensor type (IQ4_NL raw blocks) in an otherwise valid llama file
    w = gguf.GGUFWriter(os.path.join(out, "bad_unsupported_type.gguf"), "llama")
    w.add_embedding_length(64); w.add_block_count(1); w.add_feed_forward_length(64)
    w.add_head_count(2); w.add_head_count_kv(2); w.add_context_length(64)
    w.add_layer_norm_rms_eps(1e-5); w.add_vocab_size(32)
    blocks = rng.integers(0, 256, size=(32, 2 * 18), dtype=np.uint8)
    w.add_tensor("token_embd.weight", blocks, raw_shape=blocks.shape, raw_dtype=T.IQ4_NL)
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    # an architecture the engine does not run
    w = gguf.GGUFWriter(os.path.join(out, "bad_arch.gguf"), "gpt2")
    w.add_embedding_length(64); w.add_block_count(1)
    w.add_tensor("token_embd.weight", np.zeros((4, 64), np.float32))
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    # llama metadata whose shapes disagree with the tensors (head count too small for d)
    w = gguf.GGUFWriter(os.path.join(out, "bad_shape.gguf"), "llama")
    w.add_embedding_length(64); w.add_block_count(1); w.add_feed_forward_length(64)
    w.add_head_count(2); w.add_head_count_kv(2); w.add_vocab_size(8)
    w.add_tensor("token_embd.weight", np.zeros((8, 48), np.float32))
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()


def make_fuzz_seeds(corpus):
    """Small valid GGUF files (every supported tensor type, strings, arrays, nested arrays) that
    seed tests/fuzz/fuzz_gguf.c; libFuzzer mutates them."""
    os.makedirs(corpus, exist_ok=True)
    rng = np.random.default_rng(3)
    w = gguf.GGUFWriter(os.path.join(corpus, "seed_types.gguf"), "llama")
    w.add_uint32("general.alignment", 32)
    w.add_array("tokenizer.ggml.tokens", ["a", "bc", ""])
    w.add_array("nested", [[1, 2], ["x"]])
    w.add_float32("llama.rope.freq_base", 1e4)
    w.add_bool("flag", True)
    w.add_int64("neg", -5)
    for qt in [T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q2_K, T.Q3_K,
               T.Q4_K, T.Q5_K, T.Q6_K]:
        be, bb = gguf.GGML_QUANT_SIZES[qt]
        if qt == T.F32:
            w.add_tensor("t_F32", rng.standard_normal(4).astype(np.float32))
        elif qt == T.F16:
            w.add_tensor("t_F16", rng.standard_normal((2, 2)).astype(np.float16))
        else:
            raw = rng.integers(0, 256, size=(1, bb if be > 1 else 8), dtype=np.uint8)
            w.add_tensor("t_" + qt.name, raw, raw_shape=raw.shape, raw_dtype=qt)
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    w = gguf.GGUFWriter(os.path.join(corpus, "seed_align64.gguf"), "llama")
    w.add_uint32("general.alignment", 64)
    w.add_tensor("a", np.ones((2, 3), np.float32))
    w.add_tensor("b", np.ones(5, np.float32))
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    for f in ("bad_arch.gguf", "bad_shape.gguf", "bad_unsupported_type.gguf"):
        shutil.copyfile(os.path.join(FIXTURE_DIR, f), os.path.join(corpus, f))


def make_default_golden(out, path):
    from transformers import AutoTokenizer
    d, f = os.path.split(os.path.abspath(path))
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    m = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32,
                                             attn_implementation="eager").eval()
    chats = ["What is the capital of France?", "Write a haiku about the sea.",
             "Explain gravity to a child in two sentences."]
    seqs = [tok.apply_chat_template([{"role": "user", "content": c}], add_generation_prompt=True)
            for c in chats]
    seqs = [list(map(int, s if isinstance(s, list) else s["input_ids"])) for s in seqs]
    seqs.append(list(range(100, 140)))  # raw ids, no template
    K = 2048
    entries = []
    with torch.no_grad():
        for s in seqs:
            lg = m(torch.tensor([s])).logits[0].float().numpy()
            last = lg[-1]
            top = np.argsort(-last)[:20]
            entries.append({"ids": s, "last_head": last[:K].tolist(),
                            "top_ids": top.tolist(), "top_logits": last[top].tolist(),
                            "last_absmax": float(np.abs(last).max()),
                            "argmax": lg.argmax(axis=1).tolist()})
        greedy, margins = [], []
        for gp in (0, 1):
            ids = torch.tensor([seqs[gp]])
            cont = []
            for _ in range(N_NEW):
                lg = m(ids).logits[0, -1]
                top2 = torch.topk(lg, 2).values
                margins.append(float(top2[0] - top2[1]))
                nxt = int(lg.argmax())
                cont.append(nxt)
                if nxt == 2:  # <|im_end|>, the eos of this model
                    break
                ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
            greedy.append(cont)
    meta = {"file": f, "sha256": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            "head_ids": K, "prompts": chats, "entries": entries, "greedy_prompts": [0, 1],
            "greedy": greedy, "greedy_text": [tok.decode(g) for g in greedy], "min_greedy_margin": min(margins),
            "versions": versions()}
    with open(os.path.join(out, "default_model.json"), "w") as fh:
        json.dump(meta, fh)
    print("default model golden:", repr(meta["greedy_text"]), "margin", min(margins))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--default", help="path of SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("out", nargs="?",
                    default=os.path.join(os.path.dirname(__file__), "..", "fixtures", "gguf"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.set_num_threads(2)

    cfg, sd = random_llama(11, vocab_size=256, hidden_size=256, intermediate_size=256,
                           num_attention_heads=4, num_key_value_heads=1, rope_theta=1e4,
                           tie_word_embeddings=False)
    types = {"token_embd.weight": T.Q8_0, "output.weight": T.Q6_K,
             "blk.0.attn_q.weight": T.Q4_0, "blk.0.attn_k.weight": T.Q4_1,
             "blk.0.attn_v.weight": T.Q6_K, "blk.0.attn_output.weight": T.Q8_0,
             "blk.0.ffn_gate.weight": T.Q5_0, "blk.0.ffn_up.weight": T.Q5_1,
             "blk.0.ffn_down.weight": T.Q4_1,
             "blk.1.attn_q.weight": T.Q6_K, "blk.1.attn_k.weight": T.F16,
             "blk.1.attn_v.weight": T.BF16, "blk.1.attn_output.weight": T.Q4_1,
             "blk.1.ffn_gate.weight": T.Q4_0, "blk.1.ffn_up.weight": T.Q8_0,
             "blk.1.ffn_down.weight": T.Q6_K}
    seqs = [[1, 5, 17, 200, 33, 9, 250, 42], [1, 255, 254, 2, 4],
            list(range(3, 3 + 40, 1)), [7]]
    make_model_fixture(a.out, "tiny_mixed", cfg, sd, types, seqs)

    cfg2, sd2 = random_llama(21, vocab_size=96, hidden_size=64, intermediate_size=96,
                             num_attention_heads=2, num_key_value_heads=2, rope_theta=5e5,
                             tie_word_embeddings=True)
    types2 = {"token_embd.weight": T.F16, "blk.0.attn_q.weight": T.Q8_0,
              "blk.1.attn_k.weight": T.Q8_0, "blk.0.ffn_down.weight": T.F16}
    make_model_fixture(a.out, "tiny_tied", cfg2, sd2, types2,
                       [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [1, 95, 0, 50]])

    make_dequant_fixtures(a.out)
    make_bad_files(a.out, os.path.join(a.out, "tiny_tied.gguf"))
    global FIXTURE_DIR
    FIXTURE_DIR = a.out
    make_fuzz_seeds(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fuzz",
                                 "corpus_gguf"))
    if a.default:
        make_default_golden(a.out, a.default)


if __name__ == "__main__":
    main()
