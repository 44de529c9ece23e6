#!/usr/bin/env python3
"""recontrol against llama.cpp and HF transformers on the same GGUF, same thread count, on the CPU.

Rounds are interleaved (the order rotates each round) so that a load change on a shared machine
hits every engine alike; the figures are medians over rounds, each with the 1-minute load average
read just before it. Per round:
  recontrol  build/bench_default_model: prefill 128/512, single-sequence decode (64 tokens after a
             32-token prompt), batch-32 decode (32 x 32-token prompts, 64 steps), and the machine's
             streaming read bandwidth (threaded sum over 1 GiB) measured in the same process
  llama.cpp  llama-bench -p 128,512 -n 64 (pp / tg), llama-batched-bench -npp 32 -ntg 64 -npl 32
  HF         bench/hf_cpu.py (transformers, fp32 weights dequantized from the same GGUF)
Peak RSS: recontrol `generate` of 64 tokens after 32 (one process), llama-bench -p 0 -n 64,
hf_cpu.py at the end of its decode phase. Bytes/token: weights as each engine holds them + the KV
prefix; % of floor = tok/s x bytes/token / read bandwidth. Greedy: recontrol's 64-token greedy
continuation of a fixed prompt against transformers' (same ids).
llama.cpp is not part of this project: build it from the llama-cpp-python source package (which
vendors it) and pass the binaries; nothing of it is committed.
usage: compare_cpu.py --build DIR --llama-bin DIR --hf-python PY [--rounds N] [--threads N]
                      [--model GGUF] [--json OUT] [--md OUT]
"""
import argparse
import datetime
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def run(cmd, env=None):
    """Runs cmd; returns (stdout, stderr); exits with its stderr when it fails."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    out, err = p.communicate()
    if p.returncode != 0:
        sys.exit(f"compare_cpu: {' '.join(cmd)} failed ({p.returncode}):\n{err[-2000:]}")
    return out, err


def run_rss(cmd, env=None):
    """Runs cmd and returns (stdout, peak RSS MiB) using wait4 on the child."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.exit(f"compare_cpu: {' '.join(cmd)} failed ({p.returncode})")
    return out.decode(), ru.ru_maxrss / 1024.0


def recontrol_round(a, env):
    with tempfile.NamedTemporaryFile(suffix=".json") as t:
        run([os.path.join(a.build, "bench_default_model"), "--threads", str(a.threads), "--model",
             a.model, "--json", t.name], env)
        with open(t.name) as f:
            j = json.load(f)
    return {"prefill_128": j["prefill_tok_s"]["128"], "prefill_512": j["prefill_tok_s"]["512"],
            "decode": j["decode_tok_s"], "batch32": j["batch_decode_tok_s"],
            "read_bw_gb_s": j["read_bw_gb_s"], "weight_bytes": j["weight_bytes"]}


def llama_round(a, env):
    out, _ = run([os.path.join(a.llama_bin, "llama-bench"), "-m", a.model, "-t", str(a.threads),
                  "-p", "128,512", "-n", "64", "-r", "1", "-o", "json"], env)
    r = {}
    for e in json.loads(out):
        if e["n_prompt"] and not e["n_gen"]:
            r[f"prefill_{e['n_prompt']}"] = e["avg_ts"]
        elif e["n_gen"] and not e["n_prompt"]:
            r["decode"] = e["avg_ts"]
    out, _ = run([os.path.join(a.llama_bin, "llama-batched-bench"), "-m", a.model, "-t",
                  str(a.threads), "-c", "4096", "-b", "2048", "-ub", "512", "-npp", "32", "-ntg",
                  "64", "-npl", "32"], env)
    # table row: |  PP |  TG |  B | N_KV | T_PP s | S_PP t/s | T_TG s | S_TG t/s | T s | S t/s |
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 8 and cells[0] == "32" and cells[1] == "64" and cells[2] == "32":
            r["batch32"] = float(cells[7])
    return r


def hf_round(a, env, greedy_ids):
    out, _ = run([a.hf_python, os.path.join(HERE, "hf_cpu.py"), "--model", a.model, "--threads",
                  str(a.threads), "--greedy-ids", greedy_ids, "--batch-steps", str(a.hf_batch_steps)], env)
    j = json.loads(out.strip().splitlines()[-1])
    return {"prefill_128": j["prefill_128_tok_s"], "prefill_512": j["prefill_512_tok_s"],
            "decode": j["decode_tok_s"], "batch32": j["batch_decode_tok_s"],
            "peak_rss_mib": j["peak_rss_mib_decode"], "weight_bytes": j["weight_bytes"],
            "greedy": j.get("greedy")}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--llama-bin", required=True, help="folder with llama-bench, llama-batched-bench")
    ap.add_argument("--hf-python", required=True, help="python with torch, transformers, gguf")
    ap.add_argument("--model", default=os.path.expanduser("~/.cache/recontrol/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--hf-batch-steps", type=int, default=64,
                    help="HF's batch-32 run decodes this many steps (it is slow)")
    ap.add_argument("--json")
    ap.add_argument("--md")
    a = ap.parse_args()
    env = dict(os.environ, OMP_WAIT_POLICY="passive", GOMP_SPINCOUNT="10000")
    greedy_prompt = [1, 504, 3458, 282, 4649, 314, 253, 2103, 30, 378, 2103, 314]  # fixed ids
    ids = ",".join(map(str, greedy_prompt))
    engines = ["recontrol", "llama.cpp", "hf"]
    rounds = {e: [] for e in engines}
    for k in range(a.rounds):
        order = engines[k % 3:] + engines[:k % 3]
        for e in order:
            la = loadavg()
            r = (recontrol_round(a, env) if e == "recontrol" else
                 llama_round(a, env) if e == "llama.cpp" else hf_round(a, env, ids))
            r["loadavg"] = la
            rounds[e].append(r)
            print(f"round {k + 1} {e} (load {la:.1f}): " +
                  ", ".join(f"{x} {v:.1f}" for x, v in r.items() if isinstance(v, float)), file=sys.stderr)
            if a.json:  # progress, in case the run is cut short
                with open(a.json + ".partial", "w") as f:
                    json.dump(rounds, f)
    # peak RSS and greedy, once each
    out, rss_rc = run_rss([os.path.join(a.build, "recontrol"), "generate", "--model", a.model, "--ids",
                           ids, "--max-new-tokens", "64", "--batch", "1", "--json"], env)
    rc_greedy = json.loads(out.strip().splitlines()[-1])["ids"]
    _, rss_ll = run_rss([os.path.join(a.llama_bin, "llama-bench"), "-m", a.model, "-t",
                         str(a.threads), "-p", "0", "-n", "64", "-r", "1"], env)
    hf_greedy = rounds["hf"][-1].get("greedy")
    med = {e: {} for e in engines}
    for e in engines:
        for key in ("prefill_128", "prefill_512", "decode", "batch32", "loadavg", "read_bw_gb_s"):
            vals = [r[key] for r in rounds[e] if key in r]
            if vals:
                med[e][key] = statistics.median(vals)
    med["recontrol"]["peak_rss_mib"] = rss_rc
    med["llama.cpp"]["peak_rss_mib"] = rss_ll
    med["hf"]["peak_rss_mib"] = statistics.median(r["peak_rss_mib"] for r in rounds["hf"])
    bw = med["recontrol"]["read_bw_gb_s"]
    cfg = {"layers": 30, "kv_dim": 192}  # SmolLM2-135M; KV prefix: mean 64 positions
    kv_f32 = 2 * cfg["layers"] * 64 * cfg["kv_dim"] * 4
    wb = {"recontrol": rounds["recontrol"][0]["weight_bytes"],
          "llama.cpp": os.path.getsize(a.model),  # the GGUF's blocks, used as stored
          "hf": rounds["hf"][0]["weight_bytes"]}
    kvb = {"recontrol": kv_f32, "llama.cpp": kv_f32 // 2, "hf": kv_f32}  # llama.cpp: f16 cache
    for e in engines:
        bpt = wb[e] + kvb[e]
        med[e]["bytes_per_token"] = bpt
        med[e]["pct_of_bw_floor"] = 100.0 * med[e]["decode"] * bpt / (bw * 1e9)
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    res = {"date": datetime.date.today().isoformat(), "cpu": cpu, "cores": os.cpu_count(),
           "commit": commit, "model": os.path.basename(a.model), "threads": a.threads,
           "rounds": a.rounds, "median": med, "per_round": rounds, "read_bw_gb_s": bw,
           "greedy_recontrol": rc_greedy, "greedy_hf": hf_greedy,
           "greedy_identical": rc_greedy == hf_greedy if hf_greedy else None}
    for e in engines:
        for r in rounds[e]:
            r.pop("greedy", None)
    def ratio(x, e):
        return med["recontrol"][x] / med[e][x] if med[e].get(x) else float("nan")
    rows = [("prefill 128 tok/s", "prefill_128"), ("prefill 512 tok/s", "prefill_512"),
            ("decode tok/s (1 sequence)", "decode"), ("batch-32 decode new tok/s", "batch32")]
    md = [f"{res['date']}, {cpu}, {os.cpu_count()} cores, {a.threads} threads, commit {commit}, "
          f"{a.rounds} interleaved rounds (medians), read bandwidth {bw:.1f} GB/s; 1-minute load "
          f"average before each engine's runs (median): recontrol {med['recontrol']['loadavg']:.1f}, "
          f"llama.cpp {med['llama.cpp']['loadavg']:.1f}, HF {med['hf']['loadavg']:.1f}", "",
          "| | recontrol | llama.cpp | HF transformers | recontrol / llama.cpp | recontrol / HF |",
          "|---|---:|---:|---:|---:|---:|"]
    for label, k in rows:
        md.append(f"| {label} | {med['recontrol'][k]:.1f} | {med['llama.cpp'].get(k, float('nan')):.1f} | "
                  f"{med['hf'][k]:.1f} | {ratio(k, 'llama.cpp'):.2f}x | {ratio(k, 'hf'):.2f}x |")
    md.append(f"| peak RSS MiB (decode) | {rss_rc:.0f} | {rss_ll:.0f} | {med['hf']['peak_rss_mib']:.0f} | | |")
    md.append("| bytes per decode token (MB) | " + " | ".join(f"{med[e]['bytes_per_token'] / 1e6:.1f}" for e in engines) + " | | |")
    md.append("| decode % of bandwidth floor | " + " | ".join(f"{med[e]['pct_of_bw_floor']:.0f}%" for e in engines) + " | | |")
    md.append("")
    md.append(f"greedy 64 tokens, recontrol vs transformers: "
              f"{'identical' if res['greedy_identical'] else 'DIFFERENT' if hf_greedy else 'not compared'}")
    text = "\n".join(md)
    print(text)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    if a.md:
        with open(a.md, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
