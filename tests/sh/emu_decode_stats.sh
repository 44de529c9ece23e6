#!/usr/bin/env bash
# What the host does to the device per decode step of `recontrol generate --device cuda`, counted
# by the CUDA emulation (RC_EMU_STATS, tests/gpu/emu/emu.h): each setting runs for 4 and for 10 new
# tokens, and (10-token run - 4-token run) / 6 is the cost of one more token (setup, prefill and the
# first steps, the decode graph's capture on the 4th token included, cancel). Fails when the
# steady-state loop regresses: a device allocation or free per token, more than one host wait per
# token, the forward not replayed from its CUDA graph, more launches or copies per token than
# bench/gpu/NOTES.md accounts for, or RE-Control adding more than its one cooperative launch per
# token. Plain and RE-Control, batch 1 and 4, greedy and sampled, and extract (states captured
# every step); RC_DECODE_STATS_OUT=FILE keeps the per-token counts as JSON.
set -euo pipefail
BD="$1"
B="$1/recontrol"
S="$2"
M="$S/tests/fixtures/tiny/mha_hd32_tied"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
command -v g++ >/dev/null || { echo "skipped: no g++ to build the emulated CUDA module"; exit 0; }
MOD=$(bash "$S/tests/gpu/emu/build_module.sh" "$BD/emu-module" | tail -n 1)
[ -f "$MOD" ] || fail "emulated module not built"

# a value network for the tiny model (hidden 64), trained by the CLI on the CPU
. "$S/tests/sh/lib/tiny_value.sh"
V=$(tiny_value_net "$B" "$M" "$T") || { echo "$V"; fail "training the value network"; }

printf '{"ids": [1, 5, 9, 33]}\n{"ids": [7, 3]}\n{"ids": [100, 20, 4, 8, 15]}\n{"ids": [42, 43]}\n' >"$T/x.jsonl"
CTL="--value-model $V --steps 4 --step-size 0.5"
B1="--ids 1,5,9,33"
B4="--ids 1,5,9,33 --ids 7,3 --ids 100,20,4,8,15 --ids 42,43 --batch 4"
SAMP="--temperature 0.9 --top-p 0.9 --top-k 20 --seed 3"
run() { # NAME N_NEW ARGS...
    local name=$1 n=$2
    shift 2
    RC_CUDA_MODULE="$MOD" RC_EMU_STATS="$T/$name-$n.json" "$B" generate --model "$M" \
        --device cuda --dtype f32 --no-stop --max-new-tokens "$n" "$@" >"$T/$name-$n.out" \
        2>"$T/log" || { cat "$T/log"; fail "generate $name ($n tokens)"; }
    [ -s "$T/$name-$n.json" ] || fail "no RC_EMU_STATS file written for $name"
}
N0=4 N1=10
for n in $N0 $N1; do
    run plain-b1 $n $B1
    run control-b1 $n $B1 $CTL
    run plain-b4 $n $B4
    run control-b4 $n $B4 $CTL
    run sampled-b4 $n $B4 $CTL $SAMP
    # stage 1's rollouts: the same loop with every step's states copied to the host (one step late)
    RC_CUDA_MODULE="$MOD" RC_EMU_STATS="$T/extract-b4-$n.json" "$B" extract --model "$M" \
        --data "$T/x.jsonl" --format ids --out "$T/x$n" --max-new-tokens $n --batch 4 --dtype fp32 \
        --device cuda --weight-dtype f32 >"$T/log" 2>&1 || { cat "$T/log"; fail "extract ($n tokens)"; }
    python3 -c 'import json, sys; r = [json.loads(l)["n_tokens"] for l in open(sys.argv[1])]
assert r == [int(sys.argv[2])] * 4, "extract stopped early (EOS): %s" % r' "$T/x$n/responses.jsonl" $n
done

python3 - "$T" "${RC_DECODE_STATS_OUT:-}" $N0 $N1 <<'PY'
import json, sys
T, out, n0, n1 = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
names = ["plain-b1", "control-b1", "plain-b4", "control-b4", "sampled-b4", "extract-b4"]
def per_token(name):
    a = json.load(open("%s/%s-%d.json" % (T, name, n0))); b = json.load(open("%s/%s-%d.json" % (T, name, n1)))
    return {k: (b[k] - a[k]) / (n1 - n0) for k in a if isinstance(a[k], (int, float))}, \
        {k: (b["kernels"].get(k, 0) - a["kernels"].get(k, 0)) / (n1 - n0) for k in set(a["kernels"]) | set(b["kernels"])}
rows = {n: per_token(n) for n in names}
def launches(p):  # work the host hands to the device per token, graph replays as one
    return p["kernel_launches"] + p["cublas_calls"] + p["graph_launches"]
def copies(p):
    return sum(v for k, v in p.items() if k.startswith("memcpy_") and "pageable" not in k) + p["memset_async"] + p["memset_sync"]
keys = ["host_waits", "stream_syncs", "event_syncs", "event_queries", "device_syncs", "malloc", "free", "malloc_host",
        "graph_launches", "graph_nodes_replayed", "graph_captures", "kernel_launches", "coop_launches",
        "cublas_calls", "memcpy_async_h2d", "memcpy_async_d2h", "memcpy_async_d2d", "memcpy_async_pageable_d2h",
        "event_records", "stream_waits", "stream_set_attribute"]
print("per decode step (one token per sequence), (%d-token run - %d-token run) / %d:" % (n1, n0, n1 - n0))
print("%-26s" % "" + "".join("%11s" % n for n in names))
for k in keys + ["launches", "copies"]:
    vals = [launches(rows[n][0]) if k == "launches" else copies(rows[n][0]) if k == "copies" else rows[n][0][k] for n in names]
    print("%-26s" % k + "".join("%11.3g" % v for v in vals))
print("eager kernels per step:")
for n in names:
    ks = {k: v for k, v in rows[n][1].items() if v}
    print("  %-11s %s" % (n, ", ".join("%s %.3g" % (k, v) for k, v in sorted(ks.items()))))
if out:
    json.dump({n: {"per_token": rows[n][0], "kernels_per_token": rows[n][1]} for n in names},
              open(out, "w"), indent=1)
bad = []
def check(cond, msg):
    if not cond: bad.append(msg)
for n in names:
    p = rows[n][0]
    allocs = sum(p[k] for k in ("malloc", "free", "malloc_async", "free_async", "malloc_host", "free_host", "host_register"))
    check(allocs == 0, "%s: %.3g device/pinned allocations or frees per token (want 0)" % (n, allocs))
    check(p["host_waits"] <= 1, "%s: %.3g host waits per token (want <= 1: the sampled tokens' copy)" % (n, p["host_waits"]))
    check(p["memcpy_async_pageable_d2h"] + p["memcpy_async_pageable_h2d"] == 0,
          "%s: async copies from/to pageable host memory per token (they block)" % n)
    check(p["graph_launches"] == 1 and p["graph_captures"] == 0 and p["graph_instantiates"] == 0,
          "%s: the forward is not replayed from one graph per step (%.3g launches, %.3g captures)"
          % (n, p["graph_launches"], p["graph_captures"]))
    check(p["stream_set_attribute"] == 0, "%s: stream attributes set per token" % n)
    # the inputs' copy (plus the sampling parameters' when sampling) and the tokens' copy (plus,
    # capturing, the states' snapshot on the device and its copy to the host)
    cap = n.startswith("extract")
    check(p["memcpy_async_h2d"] <= (2 if n.startswith("sampled") else 1) and p["memcpy_async_d2h"] == 1 + cap
          and p["memcpy_async_d2d"] == cap,
          "%s: %.3g host->device and %.3g device->host copies per token" % (n, p["memcpy_async_h2d"], p["memcpy_async_d2h"]))
    # the graph, the LM head's input conversion, the LM head, argmax (+ the sampler when
    # sampling, + the fused control kernel with RE-Control)
    check(launches(p) <= 4 + (n.startswith(("control", "sampled"))) + n.startswith("sampled"),
          "%s: %.3g launches per token" % (n, launches(p)))
for b in ("b1", "b4"):
    pl, ct = rows["plain-" + b][0], rows["control-" + b][0]
    check(launches(ct) - launches(pl) == 1 and ct["coop_launches"] == 1,
          "%s: RE-Control adds %.3g launches per token (%.3g cooperative), want its one fused launch"
          % (b, launches(ct) - launches(pl), ct["coop_launches"]))
    check(ct["host_waits"] == pl["host_waits"], "%s: RE-Control adds host waits" % b)
if bad:
    print("\n".join("FAIL: " + m for m in bad)); sys.exit(1)
PY
# the counted runs give the tokens the CPU backend gives
"$B" generate --model "$M" --no-stop --max-new-tokens $N1 $B4 $CTL $SAMP >"$T/cpu.out" 2>/dev/null
cmp -s "$T/cpu.out" "$T/sampled-b4-$N1.out" || { diff "$T/cpu.out" "$T/sampled-b4-$N1.out"; fail "tokens differ from the CPU backend"; }
echo "emu_decode_stats: 1 passed, 0 failed"
