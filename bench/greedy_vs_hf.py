#!/usr/bin/env python3
"""Greedy continuations of recontrol against HF transformers on the same GGUF, prompt by prompt.

Reads the JSON lines `recontrol generate --json` writes (prompt_ids, ids), lets transformers
continue each prompt_ids greedily for as many tokens as recontrol produced (EOS not suppressed,
not stopping early: an EOS recontrol stopped at must be HF's token there too) and reports how many
continuations are identical and, for the others, where they first differ. Exit status 1 when any
differs. Needs torch, transformers and gguf (not CI: a manual oracle for kernel changes).

usage: greedy_vs_hf.py [--model FILE.gguf] [--threads N] [--json OUT] RUN.jsonl [RUN.jsonl ...]

Example (24 SHP prompts with the chat template, 64 new tokens, one sequence and 4 at a time):
  recontrol generate --jsonl P.jsonl --chat --max-new-tokens 64 --batch 1 --json > b1.jsonl
  recontrol generate --jsonl P.jsonl --chat --max-new-tokens 64 --batch 4 --json > b4.jsonl
  python3 bench/greedy_vs_hf.py b1.jsonl b4.jsonl
"""
import argparse
import json
import os
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="output of recontrol generate --json")
    ap.add_argument("--model", default=os.path.expanduser("~/.cache/recontrol/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="write the per-run results here")
    a = ap.parse_args()
    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(a.threads)
    d, f = os.path.split(os.path.abspath(a.model))
    m = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32).eval()
    report, bad = [], 0
    for path in a.runs:
        same, total, diverged = 0, 0, []
        with open(path) as fh:
            for line in fh:
                if not line.strip():
                    continue
                r = json.loads(line)
                prompt, want = r["prompt_ids"], r["ids"]
                with torch.inference_mode():
                    out = m.generate(torch.tensor([prompt]), max_new_tokens=len(want), do_sample=False,
                                     eos_token_id=None, pad_token_id=0)
                got = out[0, len(prompt):].tolist()
                total += 1
                if got == want:
                    same += 1
                    continue
                k = next((i for i, (x, y) in enumerate(zip(got, want)) if x != y), min(len(got), len(want)))
                diverged.append({"index": r.get("index"), "first_difference": k, "length": len(want)})
        bad += total - same
        report.append({"run": path, "identical": same, "prompts": total, "diverged": diverged})
        print(f"{path}: {same}/{total} continuations identical to transformers'"
              + (f"; first differences: {diverged}" if diverged else ""))
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"model": os.path.basename(a.model), "runs": report}, fh, indent=1)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
