#!/usr/bin/env python3
"""Converts an HF checkpoint directory that has only pytorch_model.bin (for example
princeton-nlp/sup-simcse-bert-base-uncased, the paper's coherence model) to model.safetensors in
the same directory, which is what recontrol loads. The .bin is read with
torch.load(weights_only=True): tensors only, no pickled code is run. Shared tensors are cloned;
non-tensor entries are dropped with a note.

Usage: python3 scripts/torch-to-safetensors.py MODEL_DIR    (needs torch and safetensors)
"""
import os
import sys

import torch
from safetensors.torch import save_file


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    d = sys.argv[1]
    src, dst = os.path.join(d, "pytorch_model.bin"), os.path.join(d, "model.safetensors")
    if not os.path.exists(src):
        sys.exit(f"{src} not found")
    if os.path.exists(dst):
        sys.exit(f"{dst} exists already")
    sd = torch.load(src, map_location="cpu", weights_only=True)
    out = {}
    for k, v in sd.items():
        if isinstance(v, torch.Tensor):
            out[k] = v.detach().clone().contiguous()
        else:
            print(f"dropped non-tensor entry {k}", file=sys.stderr)
    save_file(out, dst + ".tmp", metadata={"format": "pt"})
    os.replace(dst + ".tmp", dst)
    print(f"{dst}: {len(out)} tensors")


if __name__ == "__main__":
    main()
