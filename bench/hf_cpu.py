#!/usr/bin/env python3
"""HF transformers (PyTorch, fp32, CPU) on a GGUF file, the reference side of bench/compare_cpu.py.

Loads the GGUF through transformers (dequantized to fp32, as transformers always does), then times:
single-sequence greedy decode (64 new tokens after a 32-token prompt, KV cache on), peak RSS at
that point, prefill of 128 and 512 random tokens (one forward, best of 2), batch-32 greedy decode
(32 x 32-token prompts, 64 new tokens). Prints one JSON object. Needs torch, transformers, gguf.
usage: hf_cpu.py --model FILE.gguf [--threads N] [--decode N] [--batch-steps N] [--greedy-ids 1,2,3]
"""
import argparse
import json
import os
import resource
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--decode", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--batch-steps", type=int, default=64, help="new tokens per sequence in the batch run")
    ap.add_argument("--greedy-ids", default="", help="also return the greedy continuation of these ids")
    a = ap.parse_args()
    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    d, f = os.path.split(os.path.abspath(a.model))
    t0 = time.perf_counter()
    m = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32)
    m.eval()
    load_s = time.perf_counter() - t0
    vocab = m.config.vocab_size
    gen = torch.Generator().manual_seed(11)
    res = {"torch": torch.__version__, "threads": a.threads, "load_s": load_s}
    with torch.inference_mode():
        ids = torch.randint(100, 40000, (1, 32), generator=gen)
        m.generate(ids, max_new_tokens=4, min_new_tokens=4, do_sample=False)  # warm-up
        t = time.perf_counter()
        m.generate(ids, max_new_tokens=a.decode, min_new_tokens=a.decode, do_sample=False)
        dt = time.perf_counter() - t
        # generate() also runs the 32-token prefill: take it out with a separate timing
        t = time.perf_counter()
        m(ids)
        pf = time.perf_counter() - t
        res["decode_tok_s"] = a.decode / max(dt - pf, 1e-9)
        res["peak_rss_mib_decode"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        for p in (128, 512):
            best = 1e30
            for _ in range(2):
                x = torch.randint(100, 40000, (1, p), generator=gen)
                t = time.perf_counter()
                m(x, use_cache=False, logits_to_keep=1)
                best = min(best, time.perf_counter() - t)
            res[f"prefill_{p}_tok_s"] = p / best
        ids = torch.randint(100, 40000, (a.batch, 32), generator=gen)
        att = torch.ones_like(ids)
        t = time.perf_counter()
        m.generate(ids, attention_mask=att, max_new_tokens=a.batch_steps,
                   min_new_tokens=a.batch_steps, do_sample=False)
        res["batch"] = a.batch
        res["batch_steps"] = a.batch_steps
        res["batch_decode_tok_s"] = a.batch * a.batch_steps / (time.perf_counter() - t)
        if a.greedy_ids:
            g = torch.tensor([[int(v) for v in a.greedy_ids.split(",")]])
            out = m.generate(g, max_new_tokens=a.decode, do_sample=False)
            res["greedy"] = out[0, g.shape[1]:].tolist()
    res["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    res["weight_bytes"] = sum(p.numel() * p.element_size() for p in m.parameters())
    json.dump(res, sys.stdout)
    print()


if __name__ == "__main__":
    main()
