#!/usr/bin/env python3
"""HF transformers reference for bench_gpu, run on the same card in the same device call:
a Vicuna-7B-shaped LlamaForCausalLM with random fp16 weights (speed does not depend on the
values), greedy generate of --new tokens after a --prompt token prompt, timed as tokens per
second, (1) eager with the default dynamic cache and (2) with a static cache, which
transformers compiles with torch.compile on its own. Also measures the device-to-device copy
bandwidth with torch, so that the two programs' ceilings can be compared.

Also (3) the reference's stage 1: generate(output_hidden_states=True) with the last layer's state
of every step moved to the host, at --extract batch sizes (bench_gpu --extract is our side).

Usage: python3 bench/gpu/hf_reference.py --out hf_reference.json [--eager 1,16] [--static 1,16]
       [--extract 32] [--prompt 256] [--new 128]
Writes the JSON after every measurement, so a run cut short still leaves what it measured.
"""
import argparse
import json
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="hf_reference.json")
    ap.add_argument("--eager", default="1,16", help="batch sizes for eager generate ('' = none)")
    ap.add_argument("--static", default="1,16", help="batch sizes for static-cache compiled generate")
    ap.add_argument("--extract", default="32",
                    help="batch sizes for generate(output_hidden_states=True) with the last layer's "
                         "states moved to the host, as the reference's get_activations_only.py does "
                         "('' = none)")
    ap.add_argument("--prompt", type=int, default=256)
    ap.add_argument("--new", type=int, default=128)
    args = ap.parse_args()

    import torch
    import transformers
    from transformers import LlamaConfig, LlamaForCausalLM

    res = {}

    def put(key, value):
        res[key] = value
        print(f"{key}: {value}", flush=True)
        with open(args.out, "w") as f:
            json.dump(res, f, indent=1)

    dev = torch.device("cuda")
    prop = torch.cuda.get_device_properties(0)
    put("gpu", prop.name)
    put("versions", {"torch": torch.__version__, "transformers": transformers.__version__})
    put("date", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    # copy bandwidth, bytes read + written, as bench_gpu measures it
    a = torch.empty(2 << 30, dtype=torch.uint8, device=dev)
    b = torch.empty_like(a)
    for _ in range(3):
        b.copy_(a)
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(10):
        start.record()
        b.copy_(a)
        stop.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(stop))
    times.sort()
    put("copy_bw_GBps", round(2 * a.numel() / (times[len(times) // 2] / 1e3) / 1e9, 1))
    del a, b
    torch.cuda.empty_cache()

    cfg = LlamaConfig(vocab_size=32000, hidden_size=4096, intermediate_size=11008,
                      num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
                      max_position_embeddings=4096, rms_norm_eps=1e-5, rope_theta=10000.0,
                      tie_word_embeddings=False)
    torch.manual_seed(0)
    t0 = time.time()
    torch.set_default_dtype(torch.float16)  # build in fp16 directly (no 27 GB fp32 copy)
    with torch.device(dev):
        model = LlamaForCausalLM(cfg)
    torch.set_default_dtype(torch.float32)
    model.eval()
    put("weight_GB", round(sum(p.numel() * p.element_size() for p in model.parameters()) / 1e9, 3))
    put("model_init_s", round(time.time() - t0, 1))

    def gen(ids):
        return model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=args.new,
                              min_new_tokens=args.new, do_sample=False, pad_token_id=0)

    def timed(ids, reps):
        best = None
        for _ in range(reps):
            torch.cuda.synchronize()
            t = time.perf_counter()
            out = gen(ids)
            torch.cuda.synchronize()
            dt = time.perf_counter() - t
            assert out.shape[1] == ids.shape[1] + args.new
            best = dt if best is None or dt < best else best
        return best

    def batches(spec):
        return [int(x) for x in spec.split(",") if x.strip()]

    for bsz in batches(args.eager):
        ids = torch.randint(3, 32000, (bsz, args.prompt), device=dev)
        gen(ids)  # warm-up
        dt = timed(ids, 2)
        put(f"hf_eager_b{bsz}_tok_per_s", round(bsz * args.new / dt, 1))

    # stage 1 of the reference: rollouts with every step's final hidden state kept (fp16 on the
    # device during generate, then the last layer's states of every step moved to the host)
    for bsz in batches(args.extract):
        ids = torch.randint(3, 32000, (bsz, args.prompt), device=dev)

        def extract():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=args.new,
                                 min_new_tokens=args.new, do_sample=False, pad_token_id=0,
                                 output_hidden_states=True, return_dict_in_generate=True)
            states = [h[-1][:, -1, :].float().cpu() for h in out.hidden_states]
            assert len(states) == args.new
            return states

        try:
            extract()  # warm-up
            torch.cuda.synchronize()
            t = time.perf_counter()
            extract()
            torch.cuda.synchronize()
            dt = time.perf_counter() - t
            put(f"hf_extract_b{bsz}_tok_per_s", round(bsz * args.new / dt, 1))
        except torch.cuda.OutOfMemoryError as e:
            put(f"hf_extract_b{bsz}_error", "out of memory: " + str(e)[:200])
            torch.cuda.empty_cache()

    model.generation_config.cache_implementation = "static"
    for bsz in batches(args.static):
        ids = torch.randint(3, 32000, (bsz, args.prompt), device=dev)
        t = time.time()
        gen(ids)  # compiles
        put(f"hf_static_compiled_b{bsz}_first_call_s", round(time.time() - t, 1))
        gen(ids)
        dt = timed(ids, 1)
        put(f"hf_static_compiled_b{bsz}_tok_per_s", round(bsz * args.new / dt, 1))
    put("done", True)


if __name__ == "__main__":
    main()
