#!/usr/bin/env python3
"""Runs the RE-Control reference's own gpt4_eval.py (as its `__main__`, unchanged) on fixture
runs and keeps what it did, for tests/test_judge_protocol.c to compare with `recontrol judge`.

The reference's file is read from a checkout of the public repository Lingkai-Kong/RE-Control
(--reference DIR); nothing of it is copied here. Before it runs: random.seed(SEED) (it draws with
the global random module: random.sample of 100 pairs, then random.randint(0, 1) per pair), and a
stand-in `openai` module whose ChatCompletion.create records the system and user prompts it gets
and answers with a reply chosen from the user prompt's SHA-256 among well-formed, tied, fractional
and malformed first lines (the malformed ones exercise the reference's fallback).

Writes tests/fixtures/judge_protocol/: red/responses.jsonl and blue/responses.jsonl (our run
format: prompt and the response after it), replay.jsonl ({"user", "reply"} for every request),
system_prompt.txt, reference_result.json (gpt-4-evaluations/red_blue.json) and pyrandom.json
(Python's own draws for a few seeds, for the RNG unit test).
Usage: python3 tests/scripts/make_judge_protocol_fixtures.py --reference RE-Control
"""
import argparse
import hashlib
import json
import os
import random
import runpy
import sys
import tempfile
import types

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "judge_protocol")
SEED = 14
REPLIES = ["7 8\nAssistant 2 is more detailed.", "8 8\nBoth are fine.", "9 3\nThe first is better.",
           "7.5 6\nHalf points.", "Score: 7 and 8\nnot the asked format", " 8 9\nleading space",
           "8 9 10\nthree numbers", "6 7", "10 2\r\nwindows line end", "1_0 5\nunderscore digits",
           "nan 5\nnot a number", "3 3.0\nequal as floats"]
TOPICS = ["bread", "the moon", "taxes", "a cat", "python lists", "rain", "chess", "coffee",
          "sleep", "music", "running", "a bicycle", "tea", "the sea", "snow"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reference", required=True, help="checkout of Lingkai-Kong/RE-Control")
    args = ap.parse_args()
    rng = random.Random(7)
    red, blue, ours_red, ours_blue = [], [], [], []
    for i in range(130):
        t = TOPICS[i % len(TOPICS)]
        prompt = f"Human:  Tell me about {t} ({i}).\n\nAssistant:"
        r = f" {t.capitalize()} is interesting, item {i}." + rng.choice(["", "###USER: more", "\n\nUSER: next", ""])
        b = rng.choice([f" I do not know about {t}.", "", f" {t} {i}!\n\nUSER: x", f" Sure: {t}."])
        red.append({"prompt": prompt, "response": prompt + r})
        blue.append({"prompt": prompt, "response": prompt + b})
        ours_red.append({"index": i, "item": i, "prompt": prompt, "response": r, "n_tokens": 1, "finish": "length"})
        ours_blue.append({"index": i, "item": i, "prompt": prompt, "response": b, "n_tokens": 1, "finish": "length"})

    seen = {"system": set(), "replay": []}

    def create(engine=None, messages=None, temperature=None, max_tokens=None, **kw):
        assert temperature == 0 and max_tokens == 2048
        seen["system"].add(messages[0]["content"])
        user = messages[1]["content"]
        h = int(hashlib.sha256(user.encode("utf-8")).hexdigest(), 16)
        reply = REPLIES[h % len(REPLIES)]
        seen["replay"].append({"user": user, "reply": reply})
        return {"choices": [{"message": {"content": reply}}]}

    openai = types.ModuleType("openai")
    openai.ChatCompletion = types.SimpleNamespace(create=create)
    sys.modules["openai"] = openai
    ref = os.path.join(os.path.abspath(args.reference), "gpt4_eval.py")
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(os.path.join(tmp, "response"))
        for name, data in (("red", red), ("blue", blue)):
            with open(os.path.join(tmp, "response", name + ".json"), "w") as f:
                json.dump(data, f)
        cwd, argv = os.getcwd(), sys.argv
        os.chdir(tmp)
        sys.argv = [ref, "--run_name_red", "red", "--run_name_blue", "blue"]
        random.seed(SEED)
        try:
            runpy.run_path(ref, run_name="__main__")
        finally:
            sys.argv = argv
            os.chdir(cwd)
        with open(os.path.join(tmp, "gpt-4-evaluations", "red_blue.json")) as f:
            result = json.load(f)
    os.makedirs(os.path.join(OUT, "red"), exist_ok=True)
    os.makedirs(os.path.join(OUT, "blue"), exist_ok=True)
    for name, rows in (("red", ours_red), ("blue", ours_blue)):
        with open(os.path.join(OUT, name, "responses.jsonl"), "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
    with open(os.path.join(OUT, "replay.jsonl"), "w") as f:
        for r in seen["replay"]:
            f.write(json.dumps(r) + "\n")
    assert len(seen["system"]) == 1
    with open(os.path.join(OUT, "system_prompt.txt"), "w") as f:
        f.write(seen["system"].pop())
    result["seed"] = SEED
    # NaN scores are not JSON: keep them as strings
    for e in result["evaluations"]:
        for k in ("red_score", "blue_score"):
            if e[k] != e[k]:
                e[k] = "nan"
    with open(os.path.join(OUT, "reference_result.json"), "w") as f:
        json.dump(result, f, indent=1)
    draws = []
    for seed, n, k in ((14, 500, 10), (3, 5000, 10), (2**40 + 5, 100, 100), (0, 130, 100), (99, 7, 7)):
        r = random.Random(seed)
        s = r.sample(range(n), k)
        draws.append({"seed": seed, "n": n, "k": k, "sample": s,
                      "randint01": [r.randint(0, 1) for _ in range(20)],
                      "getrandbits32": [r.getrandbits(32) for _ in range(3)]})
    with open(os.path.join(OUT, "pyrandom.json"), "w") as f:
        json.dump(draws, f)
    print("wrote %s: win %d tie %d lose %d over %d pairs" % (OUT, result["win"], result["tie"],
                                                             result["lose"], len(result["evaluations"])))


if __name__ == "__main__":
    main()
