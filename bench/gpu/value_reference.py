#!/usr/bin/env python3
"""PyTorch side of the value-network benchmarks (issue 12), run on the same card in the same device
call as bench_gpu, on the same shapes:

1. the 30-step RE-Control loop, value MLP d=4096 -> 4096 [-> 4096] -> 1 in fp16, batch 1 and 16:
   (a) the reference's way, torch.autograd on V(x).sum() each step (SGD ascent on x), and
   (b) the closed-form gradient (ReLU masks times the next layer's weights, products by hand)
       captured once as a CUDA graph and replayed; ms per 30 steps (median of replays);
2. value training as the reference code does it: the whole MLP and Adam in bf16, padded batches
   (batch, longest, d) with a validity mask, the reference loss sum_{t<T} (V_t - V_{t+1})^2 +
   (V_0 - r)^2 per sequence averaged over the batch, one Adam step per batch, for one epoch over
   synthetic sequences of 16..80 states (bench_gpu's shapes); states/s (valid states only). The
   data sit on the GPU already (no input pipeline is timed on this side).

Written for this project from the method's description; not the reference's code.
Usage: python3 bench/gpu/value_reference.py --out value_reference.json [--tiny]
"""
import argparse
import json
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="value_reference.json")
    ap.add_argument("--tiny", action="store_true", help="small shapes (a smoke test)")
    args = ap.parse_args()

    import torch
    import torch.nn.functional as F

    res = {}

    def put(k, v):
        res[k] = v
        print(f"{k}: {v}", flush=True)
        with open(args.out, "w") as f:
            json.dump(res, f, indent=1)

    dev = torch.device("cuda")
    put("gpu", torch.cuda.get_device_name(0))
    put("torch", torch.__version__)
    put("date", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    D = 128 if args.tiny else 4096
    torch.manual_seed(0)

    def mlp(layers, dtype):
        dims = [D] + [D] * (layers - 1) + [1]
        mods = []
        for i in range(layers):
            mods.append(torch.nn.Linear(dims[i], dims[i + 1]))
            if i + 1 < layers:
                mods.append(torch.nn.ReLU())
        return torch.nn.Sequential(*mods).to(device=dev, dtype=dtype)

    def median_ms(fn, reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        t = []
        for _ in range(reps):
            s.record()
            fn()
            e.record()
            torch.cuda.synchronize()
            t.append(s.elapsed_time(e))
        t.sort()
        return t[len(t) // 2]

    for layers in (2, 3):
        net = mlp(layers, torch.float16)
        for p in net.parameters():
            p.requires_grad_(False)
        lin = [m for m in net if isinstance(m, torch.nn.Linear)]

        def autograd_steps(x, n=30, lr=0.5):
            for _ in range(n):
                x = x.detach().requires_grad_(True)
                g, = torch.autograd.grad(net(x).sum(), x)
                x = x + lr * g
            return x.detach()

        def closed_form_steps(x, n=30, lr=0.5):
            for _ in range(n):
                if layers == 2:
                    pre = F.linear(x, lin[0].weight, lin[0].bias)
                    g = (pre > 0).to(x.dtype) * lin[1].weight
                else:
                    pre1 = F.linear(x, lin[0].weight, lin[0].bias)
                    a = F.relu(pre1)
                    pre2 = F.linear(a, lin[1].weight, lin[1].bias)
                    g2 = (pre2 > 0).to(x.dtype) * lin[2].weight
                    g = (g2 @ lin[1].weight) * (pre1 > 0).to(x.dtype)
                x = x + lr * (g @ lin[0].weight)
            return x

        for B in (1, 16):
            x0 = torch.randn(B, D, device=dev, dtype=torch.float16)
            autograd_steps(x0)
            put(f"control30_autograd_L{layers}_b{B}_ms", round(median_ms(lambda: autograd_steps(x0), 5), 3))
            st = torch.cuda.Stream()
            st.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(st):
                for _ in range(3):
                    closed_form_steps(x0)
            torch.cuda.current_stream().wait_stream(st)
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                closed_form_steps(x0)
            for _ in range(5):
                g.replay()
            put(f"control30_closedform_graph_L{layers}_b{B}_ms", round(median_ms(g.replay, 50), 4))
        del net
        torch.cuda.empty_cache()

    # ---- value training, the reference's way ----
    n_seq, bs = (24, 8) if args.tiny else (512, 64)
    gen = torch.Generator().manual_seed(12345)
    lens = torch.randint(16, 81, (n_seq,), generator=gen)
    tmax = int(lens.max())
    states = (torch.rand(n_seq, tmax, D, generator=gen) * 4 - 2).to(device=dev, dtype=torch.bfloat16)
    mask = (torch.arange(tmax)[None, :] < lens[:, None]).to(dev)
    rew = (torch.arange(n_seq) % 7 / 7.0 - 0.4).to(device=dev, dtype=torch.bfloat16)
    model = mlp(3, torch.bfloat16)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    tmax_b = [int(lens[i:i + bs].max()) for i in range(0, n_seq, bs)]  # padded to each batch's longest

    def epoch():
        last = None
        for k, i in enumerate(range(0, n_seq, bs)):
            tb = tmax_b[k]
            x, m, r = states[i:i + bs, :tb], mask[i:i + bs, :tb], rew[i:i + bs]
            v = model(x).squeeze(-1)
            pair = (m[:, 1:] & m[:, :-1]).to(v.dtype)
            loss = (((v[:, :-1] - v[:, 1:]) ** 2) * pair).sum(1) + (v[:, 0] - r) ** 2
            loss = loss.mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            last = loss
        return float(last)

    epoch()  # warm-up
    torch.cuda.synchronize()
    best = None
    for _ in range(1 if args.tiny else 3):
        t = time.perf_counter()
        epoch()
        torch.cuda.synchronize()
        dt = time.perf_counter() - t
        best = dt if best is None or dt < best else best
    put("train_states", int(lens.sum()))
    put("train_padded_states", n_seq * tmax)
    put("train_reference_bf16_epoch_s", round(best, 4))
    put("train_reference_bf16_states_per_s", round(int(lens.sum()) / best, 1))
    put("done", True)


if __name__ == "__main__":
    main()
