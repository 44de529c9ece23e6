#!/usr/bin/env python3
"""Value-network files between the RE-Control reference and recontrol.

The reference saves `torch.save(value_model.state_dict())` (.pth): nn.Linear layers named fc1, fc2,
fc3 for its 3-layer training class, and fc1, fc3 for the 2-layer class its inference code and its
published checkpoints (value_model_checkpoint/*.pth) use; weights may be bfloat16 (its training
casts the module). recontrol reads and writes safetensors with consecutive names fc1 .. fcL
(fcK.weight [out, in], fcK.bias [out]), fp32.

  --from-pth IN.pth --out OUT.safetensors   reference -> recontrol (layers renumbered in order,
                                            fp32). Loaded with torch.load(weights_only=True): no
                                            pickled code is ever run.
  --to-pth IN.safetensors --out OUT.pth     recontrol -> reference: a 2-layer net is written as
                                            fc1, fc3 (what inference_intervention.py loads), a
                                            3-layer net as fc1, fc2, fc3 (train_value_model.py);
                                            --dtype bf16 to match the reference's saved dtype.
  --self-test                               round trip through both directions and both reference
                                            classes (needs torch).
Needs torch and safetensors.
"""
import argparse
import re
import sys


def fc_layers(sd):
    """[(index, weight, bias)] of the fcK layers of a state dict, in K order."""
    idx = {}
    for k in sd:
        m = re.fullmatch(r"(?:.*\.)?fc(\d+)\.(weight|bias)", k)
        if m:
            idx.setdefault(int(m.group(1)), {})[m.group(2)] = sd[k]
    if not idx:
        raise SystemExit("no fcK.weight / fcK.bias tensors found: not a value network")
    out = []
    for k in sorted(idx):
        if "weight" not in idx[k] or "bias" not in idx[k]:
            raise SystemExit(f"fc{k} lacks its weight or bias")
        out.append((k, idx[k]["weight"], idx[k]["bias"]))
    for (_, w, _), (_, w2, _) in zip(out, out[1:]):
        if w2.shape[1] != w.shape[0]:
            raise SystemExit(f"layer widths do not chain: {tuple(w.shape)} then {tuple(w2.shape)}")
    if out[-1][1].shape[0] != 1:
        raise SystemExit("the last layer must have one output (a value)")
    return out


def from_pth(src, dst):
    import torch
    from safetensors.torch import save_file
    sd = torch.load(src, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    layers = fc_layers(sd)
    out = {}
    for i, (_, w, b) in enumerate(layers):
        out[f"fc{i + 1}.weight"] = w.float().contiguous()
        out[f"fc{i + 1}.bias"] = b.float().contiguous()
    save_file(out, dst, metadata={"format": "recontrol-value-v1", "source": "reference .pth"})
    dims = [layers[0][1].shape[1]] + [w.shape[0] for _, w, _ in layers]
    print(f"{src} -> {dst}: {' -> '.join(map(str, dims))} "
          f"(reference names {', '.join('fc%d' % k for k, _, _ in layers)})")


def to_pth(src, dst, dtype):
    import torch
    from safetensors.torch import load_file
    sd = load_file(src)
    layers = fc_layers(sd)
    names = {1: ["fc3"], 2: ["fc1", "fc3"], 3: ["fc1", "fc2", "fc3"]}.get(len(layers))
    if names is None:
        raise SystemExit(f"{len(layers)} layers: the reference's classes have 2 or 3")
    dt = torch.bfloat16 if dtype == "bf16" else torch.float32
    out = {}
    for n, (_, w, b) in zip(names, layers):
        out[n + ".weight"] = w.to(dt).contiguous()
        out[n + ".bias"] = b.to(dt).contiguous()
    torch.save(out, dst)
    print(f"{src} -> {dst}: reference names {', '.join(names)} ({dtype})")


def self_test():
    import os
    import tempfile

    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class Inference(nn.Module):  # the shape of the reference's inference-time class
        def __init__(self, d, h):
            super().__init__()
            self.fc1, self.fc3 = nn.Linear(d, h), nn.Linear(h, 1)

        def forward(self, x):
            return self.fc3(F.relu(self.fc1(x)))

    class Train(nn.Module):  # the shape of its training class
        def __init__(self, d, h):
            super().__init__()
            self.fc1, self.fc2, self.fc3 = nn.Linear(d, h), nn.Linear(h, h), nn.Linear(h, 1)

        def forward(self, x):
            return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))

    torch.manual_seed(0)
    x = torch.randn(5, 12)
    with tempfile.TemporaryDirectory() as t:
        for cls in (Inference, Train):
            m = cls(12, 16)
            p = os.path.join(t, "ref.pth")
            torch.save(m.state_dict(), p)
            st = os.path.join(t, "ours.safetensors")
            from_pth(p, st)
            back = os.path.join(t, "back.pth")
            to_pth(st, back, "f32")
            m2 = cls(12, 16)
            m2.load_state_dict(torch.load(back, weights_only=True))  # strict: same names
            assert torch.equal(m(x), m2(x)), cls.__name__
    print("self-test passed")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--from-pth")
    g.add_argument("--to-pth")
    g.add_argument("--self-test", action="store_true")
    ap.add_argument("--out")
    ap.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    a = ap.parse_args()
    if a.self_test:
        return self_test()
    if not a.out:
        sys.exit("--out is required")
    if a.from_pth:
        from_pth(a.from_pth, a.out)
    else:
        to_pth(a.to_pth, a.out, a.dtype)


if __name__ == "__main__":
    main()
