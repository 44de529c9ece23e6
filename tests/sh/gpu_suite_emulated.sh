#!/usr/bin/env bash
# The GPU suite (bench/gpu/run_gpu_suite.sh) rehearsed against the CPU emulation of CUDA: builds
# the emulated runner, runs the suite on three small kernel tests (the BERT encoder's among them) and checks its results (steps that
# need a GPU say "skipped: no GPU", summary.json/summary.md written), then cuts a step by its time
# limit and checks it is reported as a timeout with its last output. Keeps the emulated runner and
# the suite from rotting on machines without a GPU.
# Usage: gpu_suite_emulated.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
B=$1
SRC=$2
cd "$SRC"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
RC_EMU_BUILD_ONLY=1 bash tests/gpu/emu/run_emulated.sh "$B" > "$T/build.log" 2>&1 || { cat "$T/build.log"; exit 1; }

fail() { echo "FAIL: $*"; cat "$T"/out*/gpu_suite/summary.md 2>/dev/null; exit 1; }

OUT="$T/out1" RC_SUITE_STEPS="preflight selftest kernel_tests memcheck cli hf" \
    RC_SUITE_KERNEL_FILTER="rmsnorm,argmax,encoder" RC_T_KERNEL_TESTS=800 RC_DEADLINE=850 \
    bash bench/gpu/run_gpu_suite.sh --emulated "$B" > "$T/suite1.log" 2>&1 || { cat "$T/suite1.log"; fail "suite exit $?"; }
S="$T/out1/gpu_suite"
python3 - "$S/summary.json" <<'PY' || fail "summary of the first run"
import json, sys
s = json.load(open(sys.argv[1]))
st = {x["step"]: x for x in s["steps"]}
assert s["verdict"] == "passed", s["verdict"]
assert st["preflight"]["status"] == "passed", st["preflight"]
k = st["kernel_tests"]
assert k["status"] == "passed" and k["tests_passed"] > 0 and k["tests_failed"] == 0, k
for name in ("selftest", "memcheck", "cli", "hf"):
    assert st[name]["status"] == "skipped" and "no GPU" in st[name]["note"], st[name]
print("ok: emulated suite:", k["tests_passed"], "kernel checks passed,", s["counts"])
PY
grep -q '| kernel_tests | passed |' "$S/summary.md" || fail "summary.md lacks the kernel_tests row"

# a step cut by its limit: reported as a timeout with what it printed last, and the exit status says so
if OUT="$T/out2" RC_SUITE_STEPS="engine_tests" RC_T_ENGINE_TESTS=2 \
    bash bench/gpu/run_gpu_suite.sh --emulated "$B" > "$T/suite2.log" 2>&1; then
    fail "a timed-out step must fail the suite"
fi
python3 - "$T/out2/gpu_suite/summary.json" <<'PY' || fail "summary of the cut run"
import json, sys
s = json.load(open(sys.argv[1]))
e = s["steps"][0]
assert e["step"] == "engine_tests" and e["status"] == "timeout", e
assert s["verdict"].startswith("failed"), s["verdict"]
print("ok: a step cut after", e["limit_s"], "s is reported:", e["status"], "/", e.get("last_line"))
PY
