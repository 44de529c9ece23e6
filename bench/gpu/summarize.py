#!/usr/bin/env python3
"""Summarizes a GPU suite directory (run_gpu_suite.sh): the steps' results (steps/*.json and their
logs: status, time, test counts, the first error of each), then the benchmark tables
(bench_gpu.json, hf_reference.json; the value network's control loop and training against PyTorch,
value_reference.json). Writes summary.json (for machines) and summary.md (for
people) into the directory and prints the Markdown. Safe to run at any point of a run: a step
still marked running is reported as cut short.
Usage: summarize.py SUITE_DIR"""
import glob
import json
import os
import re
import sys

ORDER = ["preflight", "selftest", "kernel_tests", "engine_tests", "memcheck", "racecheck", "synccheck", "cli",
         "backend", "bench", "hf"]

# the first line that says what went wrong, most specific patterns first
ERROR_PATTERNS = [
    r"^ERROR\b.*",
    r"^refused\b.*",
    r"^FAIL\b.*",
    r"^CUDA emulator: .*",
    r".*runtime error: .*",
    r"^==\d+==ERROR: .*",
    r"^========= (?!COMPUTE-SANITIZER|ERROR SUMMARY|Target application|Program hit|    )\S.*",
    r".*\b(CUDA error|cuBLAS error|cudaError\w+)\b.*",
    r"^Traceback .*",
    r".*\b(Segmentation fault|Aborted|core dumped)\b.*",
    r".*\b[Ee]rror\b.*",
]


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


# AddressSanitizer's notes about the emulator's fibers (ucontext): noise, not results
NOISE = re.compile(r"WARNING: ASan (doesn't fully support|is ignoring)|^False positive error reports|"
                   r"^For details see https://github.com/google/sanitizers")


def lines_of(text):
    return [ln for ln in text.splitlines() if ln.strip() and not NOISE.search(ln)]


def first_error(text):
    lines = lines_of(text)
    for pat in ERROR_PATTERNS:
        rx = re.compile(pat)
        for ln in lines:
            if rx.match(ln):
                return ln.strip()[:400]
    return None


def step_summary(d, rec):
    text = read(os.path.join(d, rec.get("log", rec["step"] + ".log")))
    out = dict(rec)
    m = re.findall(r"^(\d+) passed, (\d+) failed", text, re.M)
    if m:
        out["tests_passed"], out["tests_failed"] = int(m[-1][0]), int(m[-1][1])
    m = re.findall(r"ERROR SUMMARY: (\d+) error", text)
    if m:
        out["sanitizer_errors"] = sum(int(x) for x in m)
    if rec["status"] in ("failed", "timeout", "running", "refused"):
        out["first_error"] = first_error(text)
        tail = lines_of(text)
        out["last_line"] = tail[-1][:300] if tail else None
    if rec["status"] == "running":
        out["status"] = "cut short"
        out["note"] = "the call ended during this step (its log holds what it printed)"
    return out


def steps(d):
    recs = [load(p) for p in glob.glob(os.path.join(d, "steps", "*.json"))]
    recs = [r for r in recs if r and "step" in r]
    recs.sort(key=lambda r: ORDER.index(r["step"]) if r["step"] in ORDER else len(ORDER))
    return [step_summary(d, r) for r in recs]


def markdown(summary, b, h, v):
    out = []
    meta = summary["meta"]
    out.append(f"# recontrol GPU suite: {summary['device'] or '?'}")
    out.append("")
    out.append(f"date {meta.get('date', '?')}, commit {meta.get('commit', '?')}, mode {meta.get('mode', '?')}, "
               f"deadline {meta.get('deadline_s', '?')} s")
    out.append("")
    out.append(f"**{summary['verdict']}**: " + ", ".join(f"{k} {v}" for k, v in summary["counts"].items()))
    out.append("")
    out.append("| step | status | s | tests | first error / note |")
    out.append("|---|---|---:|---|---|")
    for s in summary["steps"]:
        tests = ""
        if "tests_passed" in s:
            tests = f"{s['tests_passed']} passed, {s['tests_failed']} failed"
        if "sanitizer_errors" in s:
            tests += (", " if tests else "") + f"{s['sanitizer_errors']} sanitizer errors"
        what = s.get("first_error") or s.get("note") or ""
        if s["status"] in ("timeout", "cut short") and s.get("last_line"):
            what = (what + "; " if what else "") + f"last output: {s['last_line']}"
        secs = "" if s.get("seconds") is None else s["seconds"]
        out.append(f"| {s['step']} | {s['status']} | {secs} | {tests} | {what.replace('|', '/')} |")
    out.append("")
    cbw = b.get("copy_bw_GBps")
    if b or h:
        out.append(f"copy bandwidth (device to device, read + write): recontrol {cbw and round(cbw)} GB/s, "
                   f"torch {h.get('copy_bw_GBps')} GB/s")
        out.append("")
    if b.get("kernels"):
        out.append("| kernel | ms | GB/s | % of copy bw | TFLOP/s |")
        out.append("|---|---:|---:|---:|---:|")
        for k in b["kernels"]:
            tf = k.get("TFLOPps")
            out.append(f"| {k['name']} | {k['ms']:.4f} | {k['GBps']:.0f} | {k['pct_copy_bw']:.1f} | "
                       f"{'' if tf is None else f'{tf:.1f}'} |")
        out.append("")
    if b.get("e2e"):
        out.append("| batch | prefill tok/s | decode tok/s | ms/step | decode % of copy bw | generate tok/s | "
                   "HF eager | HF static compiled | x eager | x static |")
        out.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in b["e2e"]:
            bs = r["batch"]
            if "error" in r:
                out.append(f"| {bs} | {r['error']} |||||||||")
                continue
            he = h.get(f"hf_eager_b{bs}_tok_per_s")
            hs = h.get(f"hf_static_compiled_b{bs}_tok_per_s")
            g = r["generate_tok_per_s"]
            out.append(f"| {bs} | {r['prefill_tok_per_s']:.0f} | {r['decode_tok_per_s']:.1f} | "
                       f"{r['decode_ms_per_step']:.3f} | {r['decode_pct_copy_bw']:.1f} | {g:.1f} | "
                       f"{he or ''} | {hs or ''} | {f'{g / he:.2f}' if he else ''} | "
                       f"{f'{g / hs:.2f}' if hs else ''} |")
        one = [r for r in b["e2e"] if r.get("batch") == 1 and "error" not in r]
        if one:
            r = one[0]
            out.append("")
            out.append(f"batch-1 decode step: fused GEMV {r.get('decode_ms_per_step_gemv_fused', 0):.3f} ms, "
                       f"GEMV {r.get('decode_ms_per_step_gemv', 0):.3f} ms, "
                       f"cuBLAS {r.get('decode_ms_per_step_cublas', 0):.3f} ms")
        out.append("")
        out.append("generate tok/s = batch x new tokens / (prefill + decode), the quantity HF's generate "
                   "timing measures; targets (H200): batch-1 decode >= 85% of copy bandwidth, "
                   ">= 3.5x HF static compiled at batch 1, >= 2x at batch 16.")
    out += value_tables(b, v)
    return "\n".join(out) + "\n"


def value_tables(b, v):
    """Issue 12: the 30-step control loop and value training, recontrol against PyTorch."""
    out = []
    if b.get("control"):
        out.append("")
        out.append("| control, 30 steps | recontrol path | ms | weight GB/s | target ms | PyTorch autograd ms | "
                   "PyTorch closed-form graph ms |")
        out.append("|---|---|---:|---:|---:|---:|---:|")
        for r in b["control"]:
            L, bs = r["layers"], r["batch"]
            ag = v.get(f"control30_autograd_L{L}_b{bs}_ms")
            cf = v.get(f"control30_closedform_graph_L{L}_b{bs}_ms")
            t = r.get("target_ms")
            met = "" if t is None else f"{t} ({'met' if r['ms'] <= t else 'missed'})"
            out.append(f"| {L} layers, batch {bs} | {r.get('path', '?')} | {r['ms']:.3f} | "
                       f"{r['effective_GBps']:.0f} | {met} | {ag or ''} | {cf or ''} |")
    if b.get("train"):
        ref = v.get("train_reference_bf16_states_per_s")
        out.append("")
        out.append("| value training, one epoch | states/s | x PyTorch reference loop (bf16) |")
        out.append("|---|---:|---:|")
        for r in b["train"]:
            sps = r["states_per_s"]
            out.append(f"| recontrol {r['dtype']} | {sps:.0f} | {f'{sps / ref:.2f}' if ref else ''} |")
        if ref:
            out.append(f"| PyTorch reference loop bf16 | {ref:.0f} | 1 |")
        out.append("")
        out.append("targets (H200): 2-layer control at batch 1 <= 0.2 ms, 3-layer <= 0.6 ms; training >= 5x "
                   "the reference loop's states/s.")
    return out


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "."
    b = load(os.path.join(d, "bench_gpu.json")) or {}
    h = load(os.path.join(d, "hf_reference.json")) or {}
    meta = load(os.path.join(d, "meta.json")) or {}
    st = steps(d)
    counts = {}
    for s in st:
        counts[s["status"]] = counts.get(s["status"], 0) + 1
    bad = [s["step"] for s in st if s["status"] in ("failed", "timeout", "cut short", "refused")]
    device = b.get("gpu") or h.get("gpu")
    m = re.search(r"^device: (.*)$", read(os.path.join(d, "kernel_tests.log")), re.M)
    if not device and m:
        device = m.group(1)
    summary = {
        "meta": meta,
        "device": device,
        "verdict": ("failed: " + ", ".join(bad)) if bad else ("passed" if st else "no step ran"),
        "counts": counts,
        "steps": st,
    }
    with open(os.path.join(d, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    md = markdown(summary, b, h, load(os.path.join(d, "value_reference.json")) or {})
    with open(os.path.join(d, "summary.md"), "w") as f:
        f.write(md)
    sys.stdout.write(md)


if __name__ == "__main__":
    main()
