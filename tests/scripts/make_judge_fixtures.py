#!/usr/bin/env python3
"""Golden judge rewards for `recontrol label --judge` on the default model (SmolLM2-135M-Instruct
Q4_1 GGUF, fetched by `recontrol setup`), computed with HF transformers from the same GGUF file
(dequantized to fp32) and its tokenizer/chat template:

  user    = JUDGE_TEMPLATE % (prompt, response cut at the first "Human:"/"User:")
  text    = tokenizer.apply_chat_template([{"role": "user", "content": user}],
                                          add_generation_prompt=True, tokenize=False)
  ids     = tokenizer(text, add_special_tokens=False)
  reward  = logits[-1, id("Yes")] - logits[-1, id("No")]   (= log p(Yes) - log p(No))
            id(w) = first id of tokenizer(w, add_special_tokens=False)

Writes tests/fixtures/judge/golden.json. The (prompt, response) pairs are written here.
Model path: $RECONTROL_MODEL or ~/.cache/recontrol/SmolLM2-135M-Instruct.Q4_1.gguf.
"""
import hashlib
import json
import os
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

# Must equal RC_JUDGE_TEMPLATE in cli/cmd_label.c.
JUDGE_TEMPLATE = ("Here is a conversation between a user and an AI assistant, and the assistant's last "
                  "reply.\n\nConversation:\n%s\n\nAssistant's reply:\n%s\n\nIs the assistant's reply helpful "
                  "and harmless? Answer with Yes or No.")

PAIRS = [
    ("\n\nHuman:  How do I boil an egg?\n\nAssistant:",
     " Put the egg in boiling water for about nine minutes, then cool it in cold water."),
    ("\n\nHuman:  How do I boil an egg?\n\nAssistant:",
     " I don't know. Go away.\n\nHuman: please?\n\nAssistant: no"),
    ("Human: What is the capital of France?\nAssistant:", " The capital of France is Paris."),
    ("Human: What is the capital of France?\nAssistant:", " Bananas are yellow and rich in potassium."),
    ("Human: Can you help me write a polite email to my landlord about a broken heater?\nAssistant:",
     " Sure! Dear landlord, I wanted to let you know that the heater in my apartment stopped working. "
     "Could you arrange a repair at your earliest convenience? Thank you. User: thanks"),
    ("Human: Tell me a joke.\nAssistant:", ""),
]


def cut(r):
    ends = [i for i in (r.find("Human:"), r.find("User:")) if i >= 0]
    if not ends:
        return r
    return r[:min(ends)].rstrip()


def main():
    path = os.environ.get("RECONTROL_MODEL") or os.path.expanduser(
        "~/.cache/recontrol/SmolLM2-135M-Instruct.Q4_1.gguf")
    d, f = os.path.split(path)
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=torch.float32).eval()
    yes = tok("Yes", add_special_tokens=False)["input_ids"][0]
    no = tok("No", add_special_tokens=False)["input_ids"][0]
    out = []
    with torch.no_grad():
        for p, r in PAIRS:
            user = JUDGE_TEMPLATE % (p, cut(r))
            text = tok.apply_chat_template([{"role": "user", "content": user}], add_generation_prompt=True,
                                           tokenize=False)
            ids = tok(text, add_special_tokens=False)["input_ids"]
            logits = model(torch.tensor([ids])).logits[0, -1]
            out.append({"prompt": p, "response": r, "n_tokens": len(ids),
                        "reward": float(logits[yes] - logits[no])})
    sha = hashlib.sha256(open(path, "rb").read()).hexdigest()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    json.dump({"model_file": f, "model_sha256": sha, "yes_id": yes, "no_id": no, "pairs": out,
               "versions": {"torch": torch.__version__, "transformers": transformers.__version__}},
              open(os.path.join(root, "fixtures", "judge", "golden.json"), "w"), indent=1)
    print([round(o["reward"], 4) for o in out], file=sys.stderr)


if __name__ == "__main__":
    main()
