#!/usr/bin/env bash
# `recontrol chat` on the default model (SmolLM2, ChatML template from its GGUF): two greedy
# turns with --prompt, and the same through standard input with /reset. Skips (exit 0, saying
# so) when the default model has not been downloaded. Args: <build_dir> <source_dir>.
set -euo pipefail
B="$1/recontrol"
fail() { echo "FAIL: $*"; exit 1; }
"$B" chat --help | grep -q -- "--chat-format" || fail "--help"
if err=$("$B" chat --chat-format alpaca --model "$2/tests/fixtures/tok/smol" -p x 2>&1); then
    fail "unknown format accepted"
fi
echo "$err" | grep -q "known: vicuna, chatml, llama3, hh, raw" || fail "format message: $err"
MODEL="${RECONTROL_MODEL:-${XDG_CACHE_HOME:-$HOME/.cache}/recontrol/SmolLM2-135M-Instruct.Q4_1.gguf}"
if [ ! -f "$MODEL" ]; then
    echo "skipped: default model not downloaded (run recontrol setup)"
    exit 0
fi
out=$("$B" chat --model "$MODEL" --temperature 0 --max-new-tokens 24 \
    -p "What is the capital of France?" -p "And of Germany?")
echo "$out"
echo "$out" | grep -q "Paris" || fail "first turn"
echo "$out" | grep -q "Berlin" || fail "second turn (the conversation is carried over)"
echo "$out" | grep -q "im_end" && fail "end-of-turn token printed"
out=$(printf 'What is the capital of France?\n/reset\nWhat is the capital of Germany?\n' |
    "$B" chat --model "$MODEL" --temperature 0 --max-new-tokens 24)
echo "$out" | grep -q "Paris" || fail "stdin turn 1"
echo "$out" | grep -q "Berlin" || fail "stdin turn 2 (after /reset)"
# RE-Control in chat: a value network of the wrong width is refused with both widths named (the
# edit hook itself is the one generate uses, checked in generate_control.sh).
if err=$("$B" chat --model "$MODEL" -p x --value-model "$2/tests/fixtures/value/mlp2.safetensors" 2>&1); then
    fail "a 20-wide value model was accepted for SmolLM2 (576)"
fi
echo "$err" | grep -q "20-dim" && echo "$err" | grep -q "576" || fail "width message: $err"
echo "1 passed, 0 failed"
