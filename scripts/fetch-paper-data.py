#!/usr/bin/env python3
"""Fetches the RE-Control paper's data and writes it in recontrol's dataset formats, checking the
record counts the reference saw. Not run by the tests (it needs the network); standard library only.

  data/hh-rlhf/train.jsonl.gz  160,800 records  {"chosen", "rejected"}   (--format hh)
  data/hh-rlhf/test.jsonl.gz     8,552 records
      Anthropic/hh-rlhf as `datasets.load_dataset("Anthropic/hh-rlhf")` gives it (the reference's
      call): the four preference subsets harmless-base, helpful-base, helpful-online and
      helpful-rejection-sampled, concatenated in that order (red-team-attempts is not part of it).
      The published gzip files are concatenated byte for byte (a multi-member gzip).
  data/shp/train.jsonl         348,718 records  {"history", "preferred"}  (--format shp)
      stanfordnlp/SHP's train split, the 18 subreddit folders in alphabetical order, one record
      per row as the reference uses them (a post appears once per comment pair); "preferred" is
      human_ref_A when labels == 1, else human_ref_B.
  data/shp/test.jsonl            1,000 records  {"history", "preferred"}
      The reference's fixed test prompts (dataset/test_dataset_shp.json of Lingkai-Kong/RE-Control)
      with its preferred answers (dataset/dataset_prefer.json, the same order), the ground truth
      its GPT-4 comparison used.

Usage: python3 scripts/fetch-paper-data.py [--out data] [--only hh|shp|shp-test] [--reference-repo DIR]
  --reference-repo DIR  read the SHP test files from a local checkout of Lingkai-Kong/RE-Control
                        (git clone) instead of downloading them; --only shp-test writes only them
"""
import argparse
import gzip
import io
import json
import os
import sys
import urllib.request

HF = "https://huggingface.co/datasets"
GH = "https://raw.githubusercontent.com/Lingkai-Kong/RE-Control/main"
HH_SUBSETS = ["harmless-base", "helpful-base", "helpful-online", "helpful-rejection-sampled"]
HH_COUNTS = {"train": 160800, "test": 8552}
SHP_DOMAINS = ["askacademia", "askanthropology", "askbaking", "askcarguys", "askculinary", "askdocs",
               "askengineers", "askhistorians", "askhr", "askphilosophy", "askphysics", "askscience",
               "asksciencefiction", "asksocialscience", "askvet", "changemyview", "explainlikeimfive",
               "legaladvice"]
SHP_TRAIN = 348718
SHP_TEST = 1000


def get(url):
    print(f"  fetching {url}", file=sys.stderr)
    req = urllib.request.Request(url, headers={"User-Agent": "recontrol-fetch-paper-data"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return r.read()


def write_atomic(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def check(name, n, want):
    if n != want:
        sys.exit(f"{name}: {n} records, expected {want}: the source changed; not written")
    print(f"{name}: {n} records (as expected)")


def hh(out):
    for split, want in HH_COUNTS.items():
        parts, n = [], 0
        for sub in HH_SUBSETS:
            blob = get(f"{HF}/Anthropic/hh-rlhf/resolve/main/{sub}/{split}.jsonl.gz")
            for line in gzip.decompress(blob).decode("utf-8").splitlines():
                if line.strip():
                    rec = json.loads(line)
                    if "chosen" not in rec:
                        sys.exit(f"{sub}/{split}: a record without \"chosen\"")
                    n += 1
            parts.append(blob)
        check(f"hh-rlhf {split}", n, want)
        write_atomic(os.path.join(out, "hh-rlhf", f"{split}.jsonl.gz"), b"".join(parts))


def shp_test(out, repo):
    def read(rel):
        if repo:
            with open(os.path.join(repo, rel), "rb") as f:
                return f.read()
        return get(f"{GH}/{rel}")
    tests = [json.loads(l) for l in read("dataset/test_dataset_shp.json").decode("utf-8").splitlines() if l.strip()]
    prefer = json.loads(read("dataset/dataset_prefer.json").decode("utf-8"))
    check("shp test prompts", len(tests), SHP_TEST)
    check("shp test preferred answers", len(prefer), SHP_TEST)
    lines = [json.dumps({"history": t["history"], "preferred": p["prefer"], "post_id": t.get("post_id")},
                        ensure_ascii=False) for t, p in zip(tests, prefer)]
    write_atomic(os.path.join(out, "shp", "test.jsonl"), ("\n".join(lines) + "\n").encode("utf-8"))


def shp(out, repo):
    buf, n = io.StringIO(), 0
    for dom in SHP_DOMAINS:
        text = get(f"{HF}/stanfordnlp/SHP/resolve/main/{dom}/train.json").decode("utf-8")
        for line in text.splitlines():
            if not line.strip():
                continue
            r = json.loads(line)
            pref = r["human_ref_A"] if int(r["labels"]) == 1 else r["human_ref_B"]
            buf.write(json.dumps({"history": r["history"], "preferred": pref}, ensure_ascii=False) + "\n")
            n += 1
    check("shp train", n, SHP_TRAIN)
    write_atomic(os.path.join(out, "shp", "train.jsonl"), buf.getvalue().encode("utf-8"))
    shp_test(out, repo)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="data")
    ap.add_argument("--only", choices=["hh", "shp", "shp-test"])
    ap.add_argument("--reference-repo", default=None,
                    help="local checkout of Lingkai-Kong/RE-Control for the SHP test files")
    a = ap.parse_args()
    if a.only in (None, "hh"):
        hh(a.out)
    if a.only in (None, "shp"):
        shp(a.out, a.reference_repo)
    if a.only == "shp-test":
        shp_test(a.out, a.reference_repo)


if __name__ == "__main__":
    main()
