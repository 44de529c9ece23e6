# Sourced by shell tests: tiny_value_net BIN MODEL DIR trains a value network for MODEL with the
# CLI itself on the CPU (extract greedy rollouts of three prompts -> fixed rewards -> train) and
# prints its path, DIR/v.safetensors. Fails (non-zero, the log on stdout) when a stage fails.
tiny_value_net() {
    local b=$1 m=$2 d=$3
    printf '{"ids": [1, 5, 9, 33]}\n{"ids": [7, 3]}\n{"ids": [100, 20, 4, 8, 15]}\n' >"$d/vp.jsonl"
    "$b" extract --model "$m" --data "$d/vp.jsonl" --format ids --out "$d/vrun" --max-new-tokens 8 \
        --batch 2 --dtype fp32 2>"$d/vlog" || { cat "$d/vlog"; echo "FAIL: extract"; return 1; }
    printf '{"index": 0, "reward": 1.0}\n{"index": 1, "reward": -1.0}\n{"index": 2, "reward": 0.5}\n' \
        >"$d/vrun/rewards.jsonl"
    "$b" train --data "$d/vrun" --out "$d/v.safetensors" --hidden 8 --epochs 3 --batch-size 2 \
        --lr 1e-2 --val-frac 0 --quiet 2>"$d/vlog" || { cat "$d/vlog"; echo "FAIL: train"; return 1; }
    [ -s "$d/v.safetensors" ] || { echo "FAIL: no value model written"; return 1; }
    echo "$d/v.safetensors"
}
