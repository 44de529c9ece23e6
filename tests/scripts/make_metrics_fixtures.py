#!/usr/bin/env python3
"""Runs the RE-Control reference's own metrics.py (as its `__main__`, unchanged) on fixture texts
and keeps its output, for tests/test_eval_reference.c to compare with `recontrol eval --cut
metrics --coherence-model ...`.

The reference's file is read from a checkout of the public repository Lingkai-Kong/RE-Control
(--reference DIR); nothing of it is copied here. Two substitutions, both outside its code:
  * simcse.SimCSE(name) loads the BERT fixture given by --bert instead of downloading
    princeton-nlp/sup-simcse-bert-base-uncased (same class, same pooling rule, same similarity);
  * nltk.download is a no-op, and nltk.word_tokenize answers from tests/fixtures/nltk/
    word_tokens.jsonl (tokens computed by nltk.word_tokenize itself by make_nltk_fixtures.py),
    failing on any text not there: every cut response below is one of those texts.

Writes tests/fixtures/metrics/<name>/responses.jsonl (our run-directory format: prompt and the
response alone) and tests/fixtures/metrics/<name>/reference_eval.json (metrics.py's
evaluations/<run>.json). Usage:
  python3 tests/scripts/make_metrics_fixtures.py --reference RE-Control [--bert DIR] [--name N]
"""
import argparse
import json
import os
import random
import runpy
import sys
import tempfile
import types

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "fixtures")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reference", required=True, help="checkout of Lingkai-Kong/RE-Control")
    ap.add_argument("--bert", default=os.path.join(FIX, "bert", "tiny"))
    ap.add_argument("--name", default="tiny")
    args = ap.parse_args()
    gold = {}
    with open(os.path.join(FIX, "nltk", "word_tokens.jsonl"), encoding="utf-8") as f:
        for line in f:
            o = json.loads(line)
            gold[o["text"]] = o["tokens"]
    texts = [t for t in gold if t.strip()]
    rng = random.Random(14)
    rng.shuffle(texts)
    prompts = ["Human: What do you think about this?\n\nAssistant:",
               "USER: Tell me something. ASSISTANT:",
               "User: Explain it to me.\nAssistant:",
               "Human: Short question\nAssistant:"]
    # (response text after the prompt, cut result must be a golden text or "")
    suffixes = ["", "###USER: and another turn", "\n\nUSER: next question", "###USER:x\n\nUSER:y",
                "\n\nHuman: not cut by metrics.py", " trailing space  "]
    gens, ours = [], []
    for i in range(40):
        p = prompts[i % len(prompts)]
        body = texts[i]
        suf = suffixes[i % len(suffixes)]
        if suf in ("\n\nHuman: not cut by metrics.py", " trailing space  "):
            suf = ""  # the cut must leave a golden text: keep these only where body is golden alone
        resp = body + suf
        gens.append({"prompt": p, "response": p + resp})
        ours.append(resp)
    # empty responses: metrics.py replaces them with " "
    for p, resp in ((prompts[0], ""), (prompts[1], "###USER: only a new turn")):
        gens.append({"prompt": p, "response": p + resp})
        ours.append(resp)
    gold[" "] = []

    def word_tokenize(text, *a, **k):
        if text not in gold:
            raise KeyError("no nltk golden tokens for %r" % text)
        return list(gold[text])

    import nltk
    nltk.download = lambda *a, **k: True
    nltk.word_tokenize = word_tokenize
    import simcse
    real = simcse.SimCSE
    bert = os.path.abspath(args.bert)
    shim = types.ModuleType("simcse")
    import numpy as np

    class Shim(real):
        def __init__(self, name, *a, **k):
            super().__init__(bert, *a, device="cpu", **k)

        def similarity(self, *a, **k):  # float32 -> float64: metrics.py's json.dump needs it
            return np.asarray(super().similarity(*a, **k), dtype=np.float64)

    shim.SimCSE = Shim
    sys.modules["simcse"] = shim

    ref = os.path.join(os.path.abspath(args.reference), "metrics.py")
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(os.path.join(tmp, "response"))
        with open(os.path.join(tmp, "response", "fixture.json"), "w") as f:
            json.dump(gens, f)
        cwd = os.getcwd()
        os.chdir(tmp)
        argv = sys.argv
        sys.argv = [ref, "--run_name", "fixture"]
        try:
            runpy.run_path(ref, run_name="__main__")
        finally:
            sys.argv = argv
            os.chdir(cwd)
        with open(os.path.join(tmp, "evaluations", "fixture.json")) as f:
            result = json.load(f)
    out = os.path.join(FIX, "metrics", args.name)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "responses.jsonl"), "w", encoding="utf-8") as f:
        for i, (g, r) in enumerate(zip(gens, ours)):
            f.write(json.dumps({"index": i, "item": i, "prompt": g["prompt"], "response": r,
                                "n_tokens": 1, "finish": "length"}, ensure_ascii=False) + "\n")
    result["bert"] = os.path.basename(bert.rstrip("/"))
    with open(os.path.join(out, "reference_eval.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=False, indent=1)
    print("wrote %s: %d generations, diversity %.6f, coherence %.6f" % (
        out, len(gens), result["diversity"], result["coherence"]))


if __name__ == "__main__":
    main()
