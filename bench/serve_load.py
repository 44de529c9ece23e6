"""Load benchmark of `recontrol serve` (and, when given, llama.cpp's llama-server on the same model
file): requests per second, output tokens per second, time to first token and inter-token latency
percentiles for 1, 8 and 32 concurrent streaming clients, with a Python asyncio client (standard
library only: HTTP/1.1 with chunked transfer decoding, server-sent events).

usage: python3 bench/serve_load.py [--recontrol BUILD/recontrol] [--model FILE.gguf]
           [--llama-server BIN] [--concurrency 1,8,32] [--max-tokens 64] [--rounds N] [--out FILE.json]
Writes JSON (every figure) and prints a Markdown table.
"""
import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time

PROMPTS = [
    "Explain why the sky is blue in two sentences.",
    "Write a short poem about a lighthouse.",
    "What are three good habits for a programmer?",
    "Give me a recipe idea with rice and beans.",
    "Summarize the plot of a detective story you invent.",
    "How does a bicycle stay upright?",
    "List some facts about the moon.",
    "What should I pack for a weekend hike?",
]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


async def one_request(port, body):
    """Streams one chat completion; returns (t_first, [token times], t_end, n_chunks, error)."""
    t0 = time.perf_counter()
    r, w = await asyncio.open_connection("127.0.0.1", port)
    data = json.dumps(body).encode()
    w.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nAuthorization: Bearer bench\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(data) + data)
    await w.drain()
    status = (await r.readline()).decode()
    chunked = False
    while True:
        h = (await r.readline()).decode().strip().lower()
        if not h:
            break
        if h.startswith("transfer-encoding") and "chunked" in h:
            chunked = True
    if " 200 " not in status:
        rest = await r.read()
        w.close()
        return None, [], time.perf_counter() - t0, 0, status.strip() + " " + rest[:200].decode("replace")
    times, buf = [], b""

    async def body_parts():
        if not chunked:
            while True:
                b = await r.read(65536)
                if not b:
                    return
                yield b
        while True:
            size = int((await r.readline()).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                return
            yield await r.readexactly(size)
            await r.readline()

    async for part in body_parts():
        now = time.perf_counter() - t0
        buf += part
        while b"\n\n" in buf:
            ev, buf = buf.split(b"\n\n", 1)
            for line in ev.split(b"\n"):
                if not line.startswith(b"data:"):
                    continue
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    continue
                try:
                    obj = json.loads(payload)
                except json.JSONDecodeError:
                    continue
                for ch in obj.get("choices", []):
                    if (ch.get("delta") or {}).get("content"):
                        times.append(now)
    w.close()
    return (times[0] if times else None), times, time.perf_counter() - t0, len(times), None


def pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


async def run_level(port, conc, n_req, max_tokens, model):
    queue = list(range(n_req))
    results = []

    async def client(cid):
        while queue:
            i = queue.pop()
            body = {"model": model, "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
                    "max_tokens": max_tokens, "temperature": 0.7, "top_p": 0.9, "seed": i,
                    "stream": True, "ignore_eos": True}
            results.append(await one_request(port, body))

    t0 = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(conc)))
    wall = time.perf_counter() - t0
    ok = [x for x in results if x[4] is None]
    ttft = [x[0] * 1000 for x in ok if x[0] is not None]
    itl = [(b - a) * 1000 for x in ok for a, b in zip(x[1], x[1][1:])]
    toks = sum(x[3] for x in ok)
    return {
        "concurrency": conc, "requests": n_req, "ok": len(ok),
        "errors": [x[4] for x in results if x[4]][:3], "wall_s": round(wall, 3),
        "requests_per_s": round(len(ok) / wall, 3), "output_chunks_per_s": round(toks / wall, 1),
        "ttft_ms": {p: round(pct(ttft, p), 1) if ttft else None for p in (50, 90, 99)},
        "itl_ms": {p: round(pct(itl, p), 2) if itl else None for p in (50, 90, 99)},
    }


def start(cmd, port, log):
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    t0 = time.time()
    while time.time() - t0 < 300:
        if p.poll() is not None:
            raise SystemExit("server exited: %s" % " ".join(cmd))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            # llama-server answers /health with 503 while loading
            import urllib.request
            with urllib.request.urlopen("http://127.0.0.1:%d/health" % port, timeout=2) as r:
                if r.status == 200:
                    return p
        except Exception:
            time.sleep(0.5)
    p.kill()
    raise SystemExit("server did not come up: %s" % " ".join(cmd))


def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--recontrol", default="build/recontrol")
    ap.add_argument("--model", default=os.path.expanduser(
        "~/.cache/recontrol/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--llama-server", default=None, help="llama.cpp's llama-server binary")
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--requests", default="8,32,64", help="requests per concurrency level")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=1, help="interleaved rounds (median reported)")
    ap.add_argument("--out", default="bench/results/serve_load.json")
    a = ap.parse_args()
    levels = [int(x) for x in a.concurrency.split(",")]
    counts = [int(x) for x in a.requests.split(",")]
    slots = max(levels)
    servers = [("recontrol", lambda port: [a.recontrol, "serve", "--model", a.model, "--port", str(port),
                                           "--parallel", str(slots), "--ctx", "512", "--quiet"] +
                (["--threads", str(a.threads)] if a.threads else []))]
    if a.llama_server:
        servers.append(("llama.cpp", lambda port: [a.llama_server, "-m", a.model, "--port", str(port),
                                                   "--host", "127.0.0.1", "-np", str(slots),
                                                   "-c", str(512 * slots), "--log-disable"] +
                        (["-t", str(a.threads)] if a.threads else [])))
    report = {"model": os.path.basename(a.model), "max_tokens": a.max_tokens, "cpu": platform.processor()
              or platform.machine(), "cores": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "load_avg_start": os.getloadavg(), "rounds": a.rounds, "servers": {}}
    # Every server is started first and stays up; the levels then run server after server with the
    # order rotating (level by level, round by round), so a load change on a shared machine hits
    # each server alike. An idle server holds memory but no CPU. Per level: median over rounds.
    procs, ports = {}, {}
    try:
        for name, cmd in servers:
            ports[name] = free_port()
            log = open("/tmp/serve_load_%s.log" % name.replace(".", ""), "w")
            procs[name] = start(cmd(ports[name]), ports[name], log)
            asyncio.run(run_level(ports[name], 1, 1, 8, "model"))  # warm-up
        names = [n for n, _ in servers]
        runs = {n: {c: [] for c in levels} for n in names}
        k = 0
        for rnd in range(a.rounds):
            for conc, n in zip(levels, counts):
                order = names[k % len(names):] + names[:k % len(names)]
                k += 1
                for name in order:
                    load = os.getloadavg()[0]
                    r = asyncio.run(run_level(ports[name], conc, n, a.max_tokens, "model"))
                    r["load_avg_1min_before"] = round(load, 2)
                    r["round"] = rnd
                    print("%s c=%d round %d: %s" % (name, conc, rnd, json.dumps(r)), file=sys.stderr)
                    runs[name][conc].append(r)
        for name in names:
            res = []
            for conc in levels:
                rs = sorted(runs[name][conc], key=lambda x: x["output_chunks_per_s"])
                med = dict(rs[len(rs) // 2])
                med["all_rounds"] = runs[name][conc]
                res.append(med)
            report["servers"][name] = res
    finally:
        for p in procs.values():
            stop(p)
    report["load_avg_end"] = os.getloadavg()
    if "llama.cpp" in report["servers"]:
        report["ratios_recontrol_over_llamacpp_tok_per_s"] = {
            r["concurrency"]: round(r["output_chunks_per_s"] / l["output_chunks_per_s"], 3)
            for r, l in zip(report["servers"]["recontrol"], report["servers"]["llama.cpp"])
            if l["output_chunks_per_s"]}
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(report, f, indent=1)
    print("| server | clients | requests | req/s | tok/s | TTFT p50 / p90 / p99 ms | ITL p50 / p90 / p99 ms |")
    print("|---|---|---|---|---|---|---|")
    for name, res in report["servers"].items():
        for r in res:
            t, i = r["ttft_ms"], r["itl_ms"]
            print("| %s | %d | %d/%d | %.2f | %.1f | %s / %s / %s | %s / %s / %s |" % (
                name, r["concurrency"], r["ok"], r["requests"], r["requests_per_s"],
                r["output_chunks_per_s"], t[50], t[90], t[99], i[50], i[90], i[99]))
    if "llama.cpp" in report["servers"]:
        print("\n| clients | tok/s recontrol / llama.cpp | TTFT p50 llama.cpp / recontrol | ITL p50 llama.cpp / recontrol |")
        print("|---|---|---|---|")
        for r, l in zip(report["servers"]["recontrol"], report["servers"]["llama.cpp"]):
            def ratio(x, y):
                return "%.2fx" % (x / y) if x and y else "n/a"
            print("| %d | %s | %s | %s |" % (r["concurrency"], ratio(r["output_chunks_per_s"], l["output_chunks_per_s"]),
                                          ratio(l["ttft_ms"][50], r["ttft_ms"][50]), ratio(l["itl_ms"][50], r["itl_ms"][50])))


if __name__ == "__main__":
    main()
