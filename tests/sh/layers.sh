#!/usr/bin/env bash
# The layers of the build (CMakeLists.txt) as a rule on includes: a file may include headers of
# its own folder and of the layers below it, never above. Fails naming each offending line.
#   base < kernels < engine < train, eval < pipeline < serve < cli;  tokenizer < eval, pipeline,
#   serve, cli
set -euo pipefail
S="$2"
cd "$S"
declare -A allowed=(
    [base]="base"
    [kernels]="base kernels"
    [engine]="base kernels engine"
    [tokenizer]="base tokenizer"
    [train]="base kernels engine train"
    [eval]="base kernels engine tokenizer eval"
    [pipeline]="base kernels engine tokenizer train eval pipeline"
    [serve]="base kernels engine tokenizer train eval pipeline serve"
    [cli]="base kernels engine tokenizer train eval pipeline serve cli"
)
bad=0
checked=0
for layer in "${!allowed[@]}"; do
    [ -d "$layer" ] || continue
    while IFS= read -r hit; do
        file=${hit%%:*}
        inc=$(sed -E 's/.*#include "([^"]+)".*/\1/' <<<"$hit")
        top=${inc%%/*}
        [ "$top" = "$inc" ] && continue # a local header without a folder
        ok=0
        for a in ${allowed[$layer]}; do [ "$top" = "$a" ] && ok=1; done
        if [ $ok = 0 ]; then
            echo "layer violation: $hit ($layer may include: ${allowed[$layer]})"
            bad=$((bad + 1))
        fi
        checked=$((checked + 1))
    done < <(grep -rnE '^\s*#\s*include "' "$layer" --include='*.c' --include='*.h' --include='*.cc' --include='*.cu' --include='*.cuh' || true)
done
[ $checked -gt 100 ] || { echo "layers: only $checked includes found; is $S the source tree?"; exit 1; }
[ $bad = 0 ] || { echo "layers: $bad violations"; exit 1; }
echo "layers: $checked includes checked, none goes up a layer"
