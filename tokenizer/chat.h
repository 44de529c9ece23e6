// Prompt formats: Vicuna v1.1 (FastChat: "<system> USER: ... ASSISTANT: ...</s>"), ChatML
// (SmolLM2, Qwen), Llama-3 headers, HH-RLHF ("\n\nHuman: ...\n\nAssistant:") and raw text;
// recognised from a model's jinja chat_template or chosen by name, rendered exactly as
// transformers' apply_chat_template renders those templates. Also the paper's prompt
// preparation for the HH-RLHF and SHP datasets.
#pragma once
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    RC_CHAT_VICUNA_V11 = 0,
    RC_CHAT_CHATML = 1,
    RC_CHAT_LLAMA3 = 2,
    RC_CHAT_HH_RLHF = 3,
    RC_CHAT_RAW = 4,
} rc_chat_format;

typedef struct {
    rc_chat_format format;
    // System message used when the conversation has none (ChatML templates such as SmolLM2's
    // insert one; Vicuna's is FastChat's). Empty when the template inserts none.
    char default_system[1024];
    char bos[64]; // text the template puts first (Llama-3's bos_token "<|begin_of_text|>")
} rc_chat_spec;

typedef struct {
    const char *role; // "system", "user" or "assistant"
    const char *content;
} rc_chat_msg;

// Recognises a jinja chat_template (GGUF tokenizer.chat_template / tokenizer_config.json). 0, or
// -1 with an error naming the formats that are recognised and how to choose one by name.
int rc_chat_spec_from_template(const char *tmpl, rc_chat_spec *out);
// Names: "vicuna" (or "vicuna_v1.1"), "chatml", "llama3", "hh" (or "hh_rlhf"), "raw". 0 / -1.
int rc_chat_spec_from_name(const char *name, rc_chat_spec *out);
const char *rc_chat_format_name(rc_chat_format f);

// The prompt text for msgs (malloc'd, NUL-terminated). add_generation_prompt appends the opening
// of the assistant's turn. HF's apply_chat_template(tokenize=True) equals encoding this with
// add_special = 0 (Llama-3's BOS is in the text). `recontrol chat` adds the tokenizer's BOS when
// the text does not start with it (Vicuna was trained with a BOS, as FastChat adds it).
// NULL + error on a bad role.
char *rc_chat_render(const rc_chat_spec *spec, const rc_chat_msg *msgs, int n,
                     int add_generation_prompt);
// The string that ends an assistant turn in this format ("<|im_end|>", "<|eot_id|>", "</s>"), or
// NULL (HH and raw end at EOS or at the next "Human:").
const char *rc_chat_end_of_turn(const rc_chat_spec *spec);

// HH-RLHF: from the `chosen` text, "Human:" -> "Human: ", cut after the last "Assistant:".
// malloc'd, or NULL + error when there is no "Assistant:".
char *rc_hh_prompt(const char *chosen);
// SHP: "Human: " + history + "\nAssistant:". malloc'd.
char *rc_shp_prompt(const char *history);
// The same with the reference's per-model turn prefix (its `begin_word`): "Human: " for Vicuna,
// "User: " for Llama-3 and Falcon; HH's "Human:" becomes turn, SHP starts with it. NULL turn:
// "Human: ".
char *rc_hh_prompt_turn(const char *chosen, const char *turn);
char *rc_shp_prompt_turn(const char *history, const char *turn);

#ifdef __cplusplus
}
#endif
