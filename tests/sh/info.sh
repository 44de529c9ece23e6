#!/usr/bin/env bash
# `recontrol info` on the loader fixtures: text and JSON output, --load, and clean errors.
# Args: <build_dir> <source_dir>.
set -euo pipefail
B="$1"/recontrol
F="$2"/tests/fixtures/loader
fail() { echo "FAIL: $*"; exit 1; }

out=$("$B" info --model "$F/causal_sharded")
grep -q "num_key_value_heads:     2" <<<"$out" || fail "kv heads: $out"
grep -q "parameters:              19808 " <<<"$out" || fail "param count: $out"
grep -q "2 safetensors files, 21 tensors" <<<"$out" || fail "shard summary: $out"

out=$("$B" info --model "$F/rm_ultrarm" --json --load)
grep -q '"head":[[:space:]]*"regression_head"' <<<"$out" || fail "reward head: $out"
grep -q '"weights_loaded":[[:space:]]*true' <<<"$out" || fail "--load: $out"
grep -q '"rms_norm_eps":[[:space:]]*1e-05' <<<"$out" || fail "eps: $out"

"$B" info --help | grep -q "usage: recontrol info" || fail "--help"
# --version names the source commit the binary was built from (or "unknown" outside git)
v=$("$B" --version)
want=$(git -C "$2" rev-parse --short=10 HEAD 2>/dev/null || echo unknown)
grep -Eq "^recontrol [0-9][0-9.]* \(commit $want(-dirty)?, " <<<"$v" || fail "--version: '$v' (tree: $want)"
grep -Eq "CPU kernels (avx512-vnni|avx512|avx2|portable)\)$" <<<"$v" || fail "--version names the CPU kernels: '$v'"
set +e
err=$("$B" info --model "$F/does-not-exist" 2>&1); rc=$?
[ $rc -eq 1 ] || fail "missing model: exit $rc"
grep -q "no such file or directory" <<<"$err" || fail "missing model message: $err"
"$B" info >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || fail "no --model: exit $rc"
echo "info: ok"
