// Subcommands of the `recontrol` binary. Each lives in its own cli/cmd_<name>.c and is declared
// weak here so that main() lists only the ones that are built.
#pragma once

typedef int (*rc_cmd_fn)(int argc, char **argv);

#define RC_COMMANDS(X)                                                                             \
    X(generate, "generate text (plain or RE-Control) for prompts or a JSONL file")                \
    X(chat, "interactive chat with the model's chat template, streaming")                         \
    X(serve, "OpenAI-compatible HTTP server, continuous batching, RE-Control per request")        \
    X(logits, "float32 logits (or rewards) of one forward over token ids, as .npy")               \
    X(tokenize, "encode text to token ids, or --decode ids to text")                               \
    X(extract, "stage 1: greedy rollouts and post-norm hidden states as safetensors shards")      \
    X(label, "stage 2: reward labels for (prompt, response) pairs")                                \
    X(train, "stage 3: train the value network on captured states and rewards")                    \
    X(eval, "stage 5: reward, diversity and length of generations; side-by-side tables")           \
    X(judge, "pairwise win rate of two runs with the reference's GPT-4 judge protocol")            \
    X(pipeline, "run all stages from a recipe file")                                               \
    X(demo, "the RE-Control demo on the default model (all five stages, minutes on a CPU)")        \
    X(info, "print a model's config and weight summary")                                           \
    X(setup, "fetch and verify the default model into the cache")

#define RC_DECLARE(name, help) int cmd_##name(int argc, char **argv) __attribute__((weak));
RC_COMMANDS(RC_DECLARE)
#undef RC_DECLARE
