#!/usr/bin/env python3
"""Turns the GPU suite's JSON (bench_gpu.json, hf_reference.json, gpu_tests.log) into a Markdown
summary: card, date, commit, test counts, per-kernel table, end-to-end table with the ratios to HF
transformers measured in the same call. Usage: summarize.py SUITE_DIR > summary.md"""
import json
import os
import re
import sys


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "."
    b = load(os.path.join(d, "bench_gpu.json")) or {}
    h = load(os.path.join(d, "hf_reference.json")) or {}
    meta = load(os.path.join(d, "meta.json")) or {}
    print(f"# recontrol GPU suite: {b.get('gpu', h.get('gpu', '?'))}")
    print()
    print(f"date {b.get('date', meta.get('date', '?'))}, commit {meta.get('commit', b.get('commit', '?'))}, "
          f"dtype {b.get('dtype', '?')}, HF {h.get('versions', '?')}")
    print()
    log = os.path.join(d, "gpu_tests.log")
    if os.path.exists(log):
        text = open(log).read()
        m = re.findall(r"(\d+) passed, (\d+) failed", text)
        fails = [ln for ln in text.splitlines() if ln.startswith("FAIL")]
        print(f"tests: {m[-1][0] + ' passed, ' + m[-1][1] + ' failed' if m else 'no summary line (crashed or timed out)'}")
        for ln in fails[:20]:
            print(f"- {ln}")
        print()
    for tool in ("memcheck", "racecheck"):
        p = os.path.join(d, f"sanitizer_{tool}.log")
        if os.path.exists(p):
            t = open(p).read()
            m = re.search(r"ERROR SUMMARY: (\d+) error", t)
            print(f"compute-sanitizer {tool}: {m.group(0) if m else 'no summary (see log)'}")
    print()
    cbw = b.get("copy_bw_GBps")
    print(f"copy bandwidth (device to device, read + write): recontrol {cbw and round(cbw)} GB/s, "
          f"torch {h.get('copy_bw_GBps')} GB/s")
    print()
    if b.get("kernels"):
        print("| kernel | ms | GB/s | % of copy bw | TFLOP/s |")
        print("|---|---:|---:|---:|---:|")
        for k in b["kernels"]:
            tf = k.get("TFLOPps")
            print(f"| {k['name']} | {k['ms']:.4f} | {k['GBps']:.0f} | {k['pct_copy_bw']:.1f} | "
                  f"{'' if tf is None else f'{tf:.1f}'} |")
        print()
    if b.get("e2e"):
        print("| batch | prefill tok/s | decode tok/s | ms/step | decode % of copy bw | generate tok/s | "
              "HF eager | HF static compiled | x eager | x static |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in b["e2e"]:
            bs = r["batch"]
            if "error" in r:
                print(f"| {bs} | {r['error']} |||||||||")
                continue
            he = h.get(f"hf_eager_b{bs}_tok_per_s")
            hs = h.get(f"hf_static_compiled_b{bs}_tok_per_s")
            g = r["generate_tok_per_s"]
            print(f"| {bs} | {r['prefill_tok_per_s']:.0f} | {r['decode_tok_per_s']:.1f} | "
                  f"{r['decode_ms_per_step']:.3f} | {r['decode_pct_copy_bw']:.1f} | {g:.1f} | "
                  f"{he or ''} | {hs or ''} | {f'{g / he:.2f}' if he else ''} | "
                  f"{f'{g / hs:.2f}' if hs else ''} |")
        one = [r for r in b["e2e"] if r.get("batch") == 1 and "error" not in r]
        if one:
            r = one[0]
            print()
            print(f"batch-1 decode step: fused GEMV {r.get('decode_ms_per_step_gemv_fused', 0):.3f} ms, "
                  f"GEMV {r.get('decode_ms_per_step_gemv', 0):.3f} ms, "
                  f"cuBLAS {r.get('decode_ms_per_step_cublas', 0):.3f} ms")
        print()
        print("generate tok/s = batch x new tokens / (prefill + decode), the quantity HF's generate "
              "timing measures; targets (H200): batch-1 decode >= 85% of copy bandwidth, "
              ">= 3.5x HF static compiled at batch 1, >= 2x at batch 16.")


if __name__ == "__main__":
    main()
