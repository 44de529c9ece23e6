// The pipeline's stages as library functions: `recontrol extract`, `label` and `pipeline` parse
// their arguments into these option structs and call them; the pipeline runner calls them
// directly. Each stage opens its backend (engine/backend.h) on the device the options name.
#pragma once
#include "engine/backend.h"
#include "engine/model.h"

#ifdef __cplusplus
extern "C" {
#endif

// Stage 1: rollouts + post-norm hidden states of every step (layout in eval/rundir.h).
typedef struct {
    const char *model;       // HF dir / .gguf; NULL: the default model
    const char *data;        // JSONL(.gz) prompts
    const char *format;      // hh | shp | plain | ids
    const char *out;         // run directory
    const char *dtype;       // stored state precision: fp32 | fp16 | bf16
    const char *value_model; // RE-Control rollouts (NULL: plain)
    const char *turn_prefix; // HH/SHP turn prefix, the reference's begin_word (NULL: "Human: ")
    long max_new, batch, max_prompt, limit, shard_size, steps, threads;
    double step_size;
    int chat, no_acts, overwrite;
    int extra_eos[RC_MAX_EOS];
    int n_extra_eos;
    rc_device device;
    rc_wtype wtype;
} rc_extract_opts;

void rc_extract_opts_default(rc_extract_opts *o);
int rc_extract_run(const rc_extract_opts *o);

// Stage 2: one reward per (prompt, response) of a run directory -> DIR/rewards.jsonl.
typedef struct {
    const char *run;   // run directory
    const char *rm;    // reward model (score / regression_head), or
    const char *judge; // causal LM judge ("default": the default model)
    int reward_text;   // RC_RTEXT_* (eval/reward_text.h): what a reward model reads
    long batch, threads;
    int overwrite;
    rc_device device;
    rc_wtype wtype;
} rc_label_opts;

void rc_label_opts_default(rc_label_opts *o);
// The judge's question (printf format: %s the prompt, %s the cut response).
const char *rc_label_judge_template(void);
int rc_label_run(const rc_label_opts *o);

// All stages from a recipe file (recipes/*.json); out_override replaces its "out". The device
// comes from the recipe's "device" key unless device_override >= 0. 0 / -1.
int rc_pipeline_run(const char *recipe_path, const char *out_override, int device_override,
                    int wtype_override);

#ifdef __cplusplus
}
#endif
