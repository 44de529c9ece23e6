#!/usr/bin/env python3
"""Golden fixtures for the value network, the Bellman loss, Adam training and the control step
(tests/test_value.c, tests/test_value_train.c, tests/test_control.c), all computed by PyTorch
autograd in fp32 (bf16 cases under torch.autocast on the CPU). Re-runnable: seeds are fixed.

Writes tests/fixtures/value/:
  <name>.safetensors          PyTorch state dict of a random MLP (nn.Linear init), F32
  <name>_case.safetensors     x [n_rows, d], offsets [n_seq+1] I64, reward [n_seq],
                              v [n_rows] (forward), dx [n_rows, d] (grad of sum V w.r.t. x),
                              loss_paper / loss_ref [1], gp.<param> / gr.<param> (Bellman
                              gradients, paper / reference semantics),
                              v_bf16, loss_bf16, gb.<param> (autocast bf16, paper semantics),
                              ctl_x_<k> [n_rows, d] (x after n SGD-ascent steps, alpha/n in
                              ctl_params [K, 2])
  run/acts-00000.safetensors  a ragged dataset in the run-dir format (F32 shard) ...
  run/acts-00001.safetensors  ... and a BF16 shard
  run/rewards.jsonl           {"index": i, "reward": r}
  train_init.safetensors      the initial MLP of the training run
  train_golden.safetensors    order [n_steps, batch] I64 (sequence ids of every step, -1 = none), lr [1] F64,
                              loss_paper / loss_ref [n_steps], final_paper.<param> /
                              final_ref.<param>: parameters after the last Adam step

Usage: python3 tests/scripts/make_value_fixtures.py [out_dir]  (default tests/fixtures/value)
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file


class Value(nn.Module):
    """The reference ValueFunction generalised to any depth: fc1..fcL, ReLU between."""

    def __init__(self, d, hidden):
        super().__init__()
        dims = [d] + list(hidden) + [1]
        for i in range(len(dims) - 1):
            setattr(self, f"fc{i + 1}", nn.Linear(dims[i], dims[i + 1]))
        self.n = len(dims) - 1

    def forward(self, x):
        for i in range(self.n):
            x = getattr(self, f"fc{i + 1}")(x)
            if i + 1 < self.n:
                x = F.relu(x)
        return x


def bellman(v, offsets, r, reference):
    """Paper: sum_{t<T} (V_t - sg V_{t+1})^2 + (V_T - r)^2; reference: no sg, reward at step 0.
    Summed over sequences, divided by their number. v: [n_rows]."""
    total = v.new_zeros(())
    for s in range(len(offsets) - 1):
        a, e = int(offsets[s]), int(offsets[s + 1])
        cur = v[a:e - 1]
        nxt = v[a + 1:e] if reference else v[a + 1:e].detach()
        total = total + ((cur - nxt) ** 2).sum()
        anchor = a if reference else e - 1
        total = total + (v[anchor] - r[s]) ** 2
    return total / (len(offsets) - 1)


def ragged(gen, lens, d, scale=1.0):
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    x = torch.randn(int(offsets[-1]), d, generator=gen) * scale
    return x, torch.from_numpy(offsets)


def mlp_case(out, name, d, hidden, seed):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    m = Value(d, hidden)
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, os.path.join(out, f"{name}.safetensors"))
    lens = [1, 3, 7, 4, 2, 5]
    x, offsets = ragged(gen, lens, d)
    r = torch.randn(len(lens), generator=gen)
    t = {"x": x, "offsets": offsets, "reward": r}

    xg = x.clone().requires_grad_(True)
    v = m(xg).squeeze(-1)
    (dx,) = torch.autograd.grad(v.sum(), xg)
    t["v"] = v.detach()
    t["dx"] = dx
    for tag, ref in (("p", False), ("r", True)):
        m.zero_grad()
        loss = bellman(m(x).squeeze(-1), offsets, r, ref)
        loss.backward()
        t["loss_paper" if not ref else "loss_ref"] = loss.detach().reshape(1)
        for k, p in m.named_parameters():
            t[f"g{tag}.{k}"] = p.grad.clone()

    # bf16: autocast around the MLP, loss in fp32 on the bf16 outputs (paper semantics).
    m.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        vb = m(x).squeeze(-1)
    assert vb.dtype == torch.bfloat16
    loss = bellman(vb.float(), offsets, r, False)
    loss.backward()
    t["v_bf16"] = vb.detach().float()
    t["loss_bf16"] = loss.detach().reshape(1)
    for k, p in m.named_parameters():
        t[f"gb.{k}"] = p.grad.clone()

    # Control: x_{k+1} = x_k + alpha * grad V(x_k), autograd on the input, fp32.
    settings = [(0.5, 30), (0.1, 5), (1.0, 50), (0.05, 1)]
    t["ctl_params"] = torch.tensor(settings, dtype=torch.float32)
    for k, (alpha, n) in enumerate(settings):
        xc = x.clone()
        for _ in range(n):
            xc.requires_grad_(True)
            (g,) = torch.autograd.grad(m(xc).sum(), xc)
            xc = (xc + alpha * g).detach()
        t[f"ctl_x_{k}"] = xc
    save_file({k: v.contiguous() for k, v in t.items()}, os.path.join(out, f"{name}_case.safetensors"))


def train_case(out):
    """A short Adam run on a ragged dataset in the run-dir format, fixed init / order / batches."""
    d, hidden, n_seq, batch, steps, lr = 16, [32, 24], 22, 6, 30, 1e-2
    gen = torch.Generator().manual_seed(7)
    lens = torch.randint(1, 10, (n_seq,), generator=gen).tolist()
    x, offsets = ragged(gen, lens, d)
    # Rewards that depend on the states, so the value function has something to learn.
    wr = torch.randn(d, generator=gen)
    r = torch.stack([x[int(offsets[s + 1]) - 1] @ wr for s in range(n_seq)]) * 0.5
    rdir = os.path.join(out, "run")
    os.makedirs(rdir, exist_ok=True)
    cut = 12  # shard 0: sequences 0..11 (F32), shard 1: 12.. (BF16)
    h0 = x[:int(offsets[cut])]
    h1 = x[int(offsets[cut]):].to(torch.bfloat16)
    save_file({"hidden": h0.contiguous(), "offsets": offsets[:cut + 1].clone()},
              os.path.join(rdir, "acts-00000.safetensors"))
    save_file({"hidden": h1.contiguous(), "offsets": (offsets[cut:] - offsets[cut]).clone()},
              os.path.join(rdir, "acts-00001.safetensors"))
    x = torch.cat([h0, h1.float()])  # the values the C reader sees
    with open(os.path.join(rdir, "rewards.jsonl"), "w") as f:
        for i in reversed(range(n_seq)):  # any order is allowed
            f.write(json.dumps({"index": i, "reward": float(r[i])}) + "\n")

    torch.manual_seed(11)
    init = Value(d, hidden)
    save_file({k: v.contiguous() for k, v in init.state_dict().items()},
              os.path.join(out, "train_init.safetensors"))
    # Batches: a seeded permutation per epoch, last partial batch kept (DataLoader drop_last=False).
    order, g2 = [], np.random.default_rng(3)
    while len(order) < steps:
        perm = g2.permutation(n_seq)
        for i in range(0, n_seq, batch):
            order.append(perm[i:i + batch].tolist())
    order = order[:steps]
    gold = {"order": torch.tensor([o + [-1] * (batch - len(o)) for o in order], dtype=torch.int64),
            "lr": torch.tensor([lr], dtype=torch.float64)}
    for tag, ref in (("paper", False), ("ref", True)):
        m = Value(d, hidden)
        m.load_state_dict(init.state_dict())
        opt = torch.optim.Adam(m.parameters(), lr=lr)
        losses = []
        for ids in order:
            rows = torch.cat([x[int(offsets[s]):int(offsets[s + 1])] for s in ids])
            off = torch.tensor(np.concatenate([[0], np.cumsum([lens[s] for s in ids])]))
            opt.zero_grad()
            loss = bellman(m(rows).squeeze(-1), off, r[ids], ref)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        gold[f"loss_{tag}"] = torch.tensor(losses, dtype=torch.float32)
        for k, p in m.named_parameters():
            gold[f"final_{tag}.{k}"] = p.detach().clone()
    save_file({k: v.contiguous() for k, v in gold.items()}, os.path.join(out, "train_golden.safetensors"))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "fixtures", "value")
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    mlp_case(out, "mlp3", 24, [32, 16], 1)  # d -> h -> h -> 1, the paper's HH-RLHF depth
    mlp_case(out, "mlp2", 20, [40], 2)      # d -> h -> 1, the paper's SHP depth
    train_case(out)
    with open(os.path.join(out, "versions.json"), "w") as f:
        json.dump({"torch": torch.__version__, "numpy": np.__version__}, f)
        f.write("\n")


if __name__ == "__main__":
    main()
