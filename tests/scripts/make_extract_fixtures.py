#!/usr/bin/env python3
"""Golden activations for `recontrol extract`: HF transformers greedy generation with
output_hidden_states on the tiny fixture models (tests/fixtures/tiny/, made by
make_tiny_models.py), so tests/sh/extract_golden.sh can compare the shards the C engine writes.

For each model in MODELS writes tests/fixtures/extract/<name>/:
  prompts.jsonl        {"ids": [...]} one prompt a line (the --format ids input)
  expected.safetensors hidden [n_steps, d] F32: hidden_states[-1] (last layer, after the final
                       RMSNorm in HF's Llama) at the position whose logits pick each new token,
                       step 0 = last prompt position; offsets [n_seq+1] I64; tokens [n_steps] I64
  golden.json          {"extra_eos": id, "max_new_tokens": N, "tokens": [[...], ...], versions}
An extra EOS id (a token that greedy decoding of prompt 1 emits at step 3) makes one sequence
stop early, so the test covers "valid up to and including the step that emits EOS".
Everything is fp32 eager attention, one prompt at a time (no padding).
With --default-model: the same for text prompts on the default model (GGUF, needs the file).
"""
import json
import os
import sys

import torch
import transformers
from safetensors.torch import save_file
from transformers import LlamaForCausalLM

MODELS = ["mha_hd32_tied", "gqa_hd64_untied_bf16"]
MAX_NEW = 12


def greedy_states(model, prompt, eos_ids, max_new):
    ids = torch.tensor([prompt])
    out = model.generate(ids, max_new_tokens=max_new, do_sample=False, num_beams=1,
                         eos_token_id=eos_ids, pad_token_id=eos_ids[0],
                         output_hidden_states=True, return_dict_in_generate=True)
    new = out.sequences[0, len(prompt):].tolist()
    states = [step[-1][0, -1, :].float() for step in out.hidden_states]  # last layer, last position
    # HF stops after EOS; generate() may pad nothing here (batch 1). n_states == n_tokens.
    assert len(states) == len(new), (len(states), len(new))
    return new, torch.stack(states)


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for name in MODELS:
        src = os.path.join(root, "fixtures", "tiny", name)
        g = json.load(open(os.path.join(src, "golden.json")))
        model = LlamaForCausalLM.from_pretrained(src, torch_dtype=torch.float32,
                                                 attn_implementation="eager").eval()
        model.generation_config.temperature = None
        model.generation_config.top_p = None
        prompts = [list(p) for p in g["prompts"]] + [[int(x) for x in g["seqs"][-1][:7]]]
        base_eos = [model.config.eos_token_id] if isinstance(model.config.eos_token_id, int) else list(model.config.eos_token_id)
        with torch.no_grad():
            first, _ = greedy_states(model, prompts[1], base_eos, MAX_NEW)
            extra = first[3]
            if extra in first[:3]:
                extra = first[min(i for i in range(len(first)) if first[i] not in first[:i])]
            eos = base_eos + [extra]
            toks, hid, offs = [], [], [0]
            for p in prompts:
                new, st = greedy_states(model, p, eos, MAX_NEW)
                toks.append(new)
                hid.append(st)
                offs.append(offs[-1] + len(new))
        out = os.path.join(root, "fixtures", "extract", name)
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "prompts.jsonl"), "w") as f:
            for p in prompts:
                f.write(json.dumps({"ids": p}) + "\n")
        save_file({"hidden": torch.cat(hid).contiguous(),
                   "offsets": torch.tensor(offs, dtype=torch.int64),
                   "tokens": torch.tensor([t for s in toks for t in s], dtype=torch.int64)},
                  os.path.join(out, "expected.safetensors"))
        json.dump({"model": name, "extra_eos": extra, "max_new_tokens": MAX_NEW, "tokens": toks,
                   "versions": {"torch": torch.__version__, "transformers": transformers.__version__}},
                  open(os.path.join(out, "golden.json"), "w"), indent=1)
        print(f"{name}: {len(prompts)} prompts, lengths {[len(t) for t in toks]}, extra eos {extra}",
              file=sys.stderr)


if __name__ == "__main__" and len(sys.argv) == 1:
    main()


# ---- the default model (SmolLM2-135M-Instruct Q4_1 GGUF), text prompts through its tokenizer ----
DEFAULT_PROMPTS = [
    "Human: How do I keep basil fresh for longer?\nAssistant:",
    "\n\nHuman:  Write one sentence about the sea.\n\nAssistant:",
    "Human: Why is the sky blue?\nAssistant:",
]


def default_model(max_new=10):
    """tests/fixtures/extract/default_model/: prompts.jsonl ({"prompt"}), expected.safetensors,
    golden.json (model sha256). Loaded by transformers from the GGUF (dequantized to fp32)."""
    import hashlib
    from transformers import AutoModelForCausalLM, AutoTokenizer
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.environ.get("RECONTROL_MODEL") or os.path.expanduser(
        "~/.cache/recontrol/SmolLM2-135M-Instruct.Q4_1.gguf")
    d, f = os.path.split(path)
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    eos = model.config.eos_token_id
    eos = [eos] if isinstance(eos, int) else list(eos)
    toks, hid, offs = [], [], [0]
    with torch.no_grad():
        for p in DEFAULT_PROMPTS:
            ids = tok(p)["input_ids"]
            new, st = greedy_states(model, ids, eos, max_new)
            toks.append(new)
            hid.append(st)
            offs.append(offs[-1] + len(new))
    out = os.path.join(root, "fixtures", "extract", "default_model")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "prompts.jsonl"), "w") as fh:
        for p in DEFAULT_PROMPTS:
            fh.write(json.dumps({"prompt": p}) + "\n")
    save_file({"hidden": torch.cat(hid).contiguous(),
               "offsets": torch.tensor(offs, dtype=torch.int64),
               "tokens": torch.tensor([t for s in toks for t in s], dtype=torch.int64)},
              os.path.join(out, "expected.safetensors"))
    sha = hashlib.sha256(open(path, "rb").read()).hexdigest()
    json.dump({"model": f, "model_sha256": sha, "max_new_tokens": max_new, "tokens": toks,
               "responses": [tok.decode(t, skip_special_tokens=True) for t in toks],
               "versions": {"torch": torch.__version__, "transformers": transformers.__version__}},
              open(os.path.join(out, "golden.json"), "w"), indent=1)
    print(f"default model: {[len(t) for t in toks]} tokens", file=sys.stderr)


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "--default-model":
    default_model()
