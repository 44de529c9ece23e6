#!/usr/bin/env python3
"""Tokenizer encode throughput: recontrol (bench_tokenizer) against HF tokenizers on the same
corpus (tests/fixtures/tok/corpus.jsonl) on the same machine, in the same run.

HF side: the Rust `tokenizers` Tokenizer behind transformers' AutoTokenizer (for the SentencePiece
fixture that is the LlamaTokenizer transformers builds from tokenizer.model), encode() per string
and on the whole corpus as one text, single-threaded (RAYON_NUM_THREADS=1); encode_batch with
RAYON_NUM_THREADS=1 is reported too. Writes bench/results/tokenizer-<date>.json and prints a Markdown table.

usage: python3 bench/bench_tokenizer_hf.py --bench BUILD/bench_tokenizer [--seconds S]
"""
import argparse
import datetime
import gzip
import json
import os
import platform
import subprocess
import tempfile
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIX = os.path.join(ROOT, "tests", "fixtures", "tok")


def corpus():
    out = []
    with open(os.path.join(FIX, "corpus.jsonl"), encoding="utf-8") as f:
        for line in f:
            it = json.loads(line)
            out.append(it["text"] if "text" in it else
                       bytes.fromhex(it["hex"]).decode("utf-8", errors="replace"))
    return out


def hf_tokenizer(name, tmp):
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer
    d = os.path.join(FIX, name)
    if name == "smol":
        p = os.path.join(tmp, "tokenizer.json")
        with gzip.open(os.path.join(d, "tokenizer.json.gz"), "rb") as f, open(p, "wb") as g:
            g.write(f.read())
        return Tokenizer.from_file(p)
    if name == "l3":
        return Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    return AutoTokenizer.from_pretrained(d).backend_tokenizer


def timed(fn, seconds):
    reps, t0 = 0, time.perf_counter()
    while True:
        fn()
        reps += 1
        el = time.perf_counter() - t0
        if el >= seconds:
            return reps, el


def bench_hf(name, texts, seconds):
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        tk = hf_tokenizer(name, tmp)
        load = time.perf_counter() - t0
    nbytes = sum(len(s.encode()) for s in texts)
    joined = "\n".join(texts) + "\n"
    r, el = timed(lambda: [tk.encode(s) for s in texts], seconds)
    per_string = nbytes * r / el / 1e6
    r, el = timed(lambda: tk.encode(joined), seconds)
    one_text = len(joined.encode()) * r / el / 1e6
    r, el = timed(lambda: tk.encode_batch(texts), seconds)
    batch = nbytes * r / el / 1e6
    ids = tk.encode(joined, add_special_tokens=False).ids
    r, el = timed(lambda: tk.decode(ids, skip_special_tokens=False), seconds)
    return {"impl": "hf-tokenizers", "model": name, "load_s": round(load, 4),
            "per_string_MBps": round(per_string, 2), "one_text_MBps": round(one_text, 2),
            "encode_batch_MBps_1_thread": round(batch, 2),
            "decode_Mtok_per_s": round(len(ids) * r / el / 1e6, 2)}


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", required=True, help="path to the built bench_tokenizer")
    ap.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args()
    texts = corpus()
    rows = []
    out = subprocess.run([args.bench, "--fixtures", FIX, "--seconds", str(args.seconds)],
                         check=True, capture_output=True, text=True).stdout
    ours = {}
    for line in out.splitlines():
        r = json.loads(line)
        r["model"] = os.path.basename(r["model"])  # no machine paths in the results
        ours[r["model"]] = r
    os.environ["RAYON_NUM_THREADS"] = "1"
    import tokenizers
    for name in ("smol", "l3", "spm"):
        hf = bench_hf(name, texts, args.seconds)
        rows.append({"model": name, "recontrol": ours[name], "hf": hf})
    res = {"date": datetime.date.today().isoformat(), "machine": platform.machine(),
           "cpu": cpu_name(),
           "load_avg_1min": round(os.getloadavg()[0], 2), "nproc": os.cpu_count(),
           "tokenizers_version": tokenizers.__version__,
           "corpus": {"strings": len(texts), "bytes": sum(len(s.encode()) for s in texts)},
           "rows": rows}
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    path = os.path.join(ROOT, "bench", "results", f"tokenizer-{res['date']}.json")
    with open(path, "w") as f:
        json.dump(res, f, indent=1)
    names = {"smol": "SmolLM2 byte-level BPE", "l3": "Llama-3-style BPE (3k vocab)",
             "spm": "SentencePiece BPE (2k vocab)"}
    print("| tokenizer | recontrol per string | HF per string | recontrol one text | "
          "HF one text | HF encode_batch | recontrol decode | HF decode |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        o, h = r["recontrol"], r["hf"]
        print(f"| {names[r['model']]} | {o['per_string_MBps']:.1f} MB/s | "
              f"{h['per_string_MBps']:.1f} MB/s | {o['one_text_MBps']:.1f} MB/s | "
              f"{h['one_text_MBps']:.1f} MB/s | {h['encode_batch_MBps_1_thread']:.1f} MB/s | "
              f"{o['decode_Mtok_per_s']:.1f} Mtok/s | {h['decode_Mtok_per_s']:.1f} Mtok/s |")
    print(f"\nwritten {os.path.relpath(path, ROOT)}")


if __name__ == "__main__":
    main()
