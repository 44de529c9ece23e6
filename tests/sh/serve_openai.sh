#!/usr/bin/env bash
# `recontrol serve`: --help, then the official openai client against the server on loopback
# (tests/serve/test_openai.py: texts equal to `recontrol generate`, errors, queue, disconnect,
# timeout). Args: <build_dir> <source_dir>.
set -euo pipefail
"$1/recontrol" serve --help | grep -q -- "--value-model NAME=FILE" || { echo "FAIL: serve --help"; exit 1; }
exec timeout 300 python3 "$2/tests/serve/test_openai.py" "$1" "$2"
