// A LLaMA-family model in memory: its config (HF config.json names) and its weights in their
// stored type. Loaded from an HF directory (config.json + safetensors, single or sharded) or a
// GGUF file (mapped, quantized blocks used in place); the CPU path computes in fp32.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "kernels/cpu/qmatmul.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RC_MAX_EOS 8

typedef enum {
    RC_ARCH_CAUSAL_LM = 0, // LlamaForCausalLM: backbone + LM head
    RC_ARCH_REWARD = 1,    // backbone + linear head on the last token (score / regression_head)
} rc_arch;

typedef struct {
    rc_arch arch;
    int hidden_size;             // d
    int intermediate_size;       // FFN width
    int num_hidden_layers;       //
    int num_attention_heads;     //
    int num_key_value_heads;     // GQA when < num_attention_heads
    int head_dim;                // hidden_size / num_attention_heads unless config says
    int vocab_size;              //
    int max_position_embeddings; //
    float rms_norm_eps;          //
    float rope_theta;            //
    // rope_scaling {"rope_type": "llama3"} (Llama-3.1): 0 when absent. Other types are refused.
    int rope_llama3;
    float rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int rope_original_max_position_embeddings;
    int tie_word_embeddings;     // lm_head shares embed_tokens
    int bos_token_id;            // -1 when unknown
    int eos_token_ids[RC_MAX_EOS];
    int n_eos;
    int pad_token_id; // -1 when unknown
    int num_labels;   // reward head rows (1 for reward models)
    char head_name[32]; // reward head tensor prefix: "score" or "regression_head"
    char source[1024];  // where the model came from (directory or .gguf path)
} rc_config;

// Weight matrices stay in the type they are stored in (rc_qmat, kernels/cpu/qmatmul.h: GGML
// block quantizations from a GGUF file, pointing into its mapping; F32/F16/BF16 from an HF
// directory, copied as stored). Only the RMSNorm vectors are fp32. For an fp32 copy of any rows
// (e.g. to upload to a GPU) use rc_qmat_rows_f32, which also undoes GGUF's Q/K row order.
typedef struct {
    float *attn_norm; // (hidden_size)
    rc_qmat wq;       // (num_attention_heads*head_dim, hidden_size)  HF row layout (out, in)
    rc_qmat wk;       // (num_key_value_heads*head_dim, hidden_size)
    rc_qmat wv;       // (num_key_value_heads*head_dim, hidden_size)
    rc_qmat wo;       // (hidden_size, num_attention_heads*head_dim)
    float *mlp_norm;  // (hidden_size)
    rc_qmat w_gate;   // (intermediate_size, hidden_size)
    rc_qmat w_up;     // (intermediate_size, hidden_size)
    rc_qmat w_down;   // (hidden_size, intermediate_size)
} rc_layer_weights;

typedef struct {
    rc_qmat *embed_tokens;    // (vocab_size, hidden_size)
    rc_layer_weights *layers; // (num_hidden_layers)
    float *norm;              // (hidden_size) final RMSNorm
    rc_qmat *lm_head;         // (vocab_size, hidden_size); == embed_tokens when tied; NULL for reward
    rc_qmat *score;           // (num_labels, hidden_size) reward head; NULL for causal LMs
    rc_qmat *heads;           // storage behind embed_tokens / lm_head / score (3 entries)
} rc_weights;

typedef struct {
    rc_config cfg;
    rc_weights w;
    void *arena;         // one allocation holding the weights not read from a mapped file
    size_t arena_bytes;  // its size
    size_t weight_bytes; // bytes of all weights as held (the LM head counted once when tied)
    // Optional tokenizer/chat metadata carried by the file (GGUF); NULL for HF dirs.
    void *gguf; // rc_gguf* kept open when loaded from GGUF (its mapping holds the weights)
} rc_model;

// Parses an HF config.json text into cfg (validates ranges, refuses unsupported rope_scaling
// and unknown architectures with a clear message). 0 / -1 with rc_last_error().
int rc_config_parse_json(const char *json_text, rc_config *cfg);

// RoPE inverse frequencies (head_dim/2 values), rope_theta and llama3 rope_scaling applied.
void rc_rope_inv_freq(const rc_config *cfg, float *inv_freq);

// Shapes of well-known checkpoints for benchmarks with random weights (no download): "vicuna-7b"
// (LLaMA-2-7B shape: 32 layers, d 4096, 32 heads MHA, FFN 11008, vocab 32000, untied). 0 / -1.
int rc_config_preset(const char *name, rc_config *cfg);

// Number of fp32 values all weights of cfg take (used to size the arena and check memory).
size_t rc_config_weight_floats(const rc_config *cfg);

// Loads a model: path is an HF directory (config.json + model.safetensors or sharded with
// model.safetensors.index.json) or a .gguf file. 0 / -1 with rc_last_error().
int rc_model_load(const char *path, rc_model *m);
int rc_model_load_hf(const char *dir, rc_model *m);
int rc_model_load_gguf(const char *path, rc_model *m);
void rc_model_free(rc_model *m);

// Allocates the arena for m->cfg with every matrix in fp32 (RC_GGML_F32) and points every weight
// into it (values undefined): models built in memory (benchmarks, tests).
int rc_model_alloc(rc_model *m);
// The same with each matrix in the type type_of(ctx, HF tensor name) returns (F32, F16 or BF16).
int rc_model_alloc_typed(rc_model *m, uint32_t (*type_of)(void *ctx, const char *name), void *ctx);

// Parameter count (for reporting) and bytes one decode step must read in fp32.
size_t rc_model_param_count(const rc_config *cfg);

#ifdef __cplusplus
}
#endif
