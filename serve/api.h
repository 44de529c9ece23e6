// The OpenAI API's request and response bodies as recontrol serves them: a request JSON
// (/v1/chat/completions or /v1/completions) checked field by field into an rc_api_req, and the
// response objects (completion, stream chunk, error, model list) built as JSON text.
// No I/O here: the HTTP side (serve/http.c) and the engine thread (serve/worker.c) call these.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "tokenizer/chat.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { RC_API_CHAT = 0, RC_API_COMPLETION = 1 };
#define RC_API_MAX_STOP 4

// What the parser needs to know about the server.
typedef struct {
    int max_tokens_limit;          // largest max_tokens accepted
    int max_prompt_chars;          // longest rendered prompt, in bytes (before tokenizing)
    const rc_chat_spec *chat;      // NULL: the model has no chat template (chat requests refused)
    const char *const *value_names; // names of the value networks (--value-model NAME=FILE)
    int n_value;                   //
    float default_step_size;       // used when "recontrol" omits step_size
    int default_steps;             // ... and steps
    int max_steps;                 // largest "steps" accepted
} rc_api_limits;

typedef struct {
    int kind;            // RC_API_CHAT / RC_API_COMPLETION
    char *prompt;        // text to encode (rendered chat, or the completion prompt); NULL with ids
    int add_special;     // encode with the tokenizer's BOS (completions) or not (chat: as HF
                         // apply_chat_template, the template writes what it needs)
    int *ids;            // completion prompt given as token ids
    int n_ids;           //
    int max_tokens;      // 0: not given (the server chooses)
    float temperature;   // default 1 (OpenAI's)
    float top_p;         // default 1
    int top_k;           // extension; default 0 (off)
    uint64_t seed;       //
    int has_seed;        //
    char *stop[RC_API_MAX_STOP];
    int n_stop;          //
    int stream;          //
    int include_usage;   // stream_options.include_usage
    int ignore_eos;      // extension (as vLLM / llama.cpp): generate max_tokens, past EOS
    int control;         // index into value_names, or -1
    float step_size;     //
    int steps;           //
    char model[128];     // as given (echoed back); "" when absent
} rc_api_req;

// An error as the API reports it: HTTP status and the OpenAI error object's fields.
typedef struct {
    int status;         // 400, 401, 404, 405, 413, 429, 500, 503, 504
    char type[48];      // "invalid_request_error", "authentication_error", ...
    char param[48];     // the offending field ("" when none)
    char code[48];      // "" or e.g. "context_length_exceeded"
    char message[512];  //
} rc_api_error;

// Fills e and returns -1 (so `return rc_api_fail(...)` reads naturally).
int rc_api_fail(rc_api_error *e, int status, const char *type, const char *param,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));

// Parses and checks a request body (len bytes, not necessarily NUL-terminated). Unknown fields
// are ignored; known fields of the wrong type or out of range, unsupported options (n != 1,
// logprobs, echo...), an unknown value model or a chat request without a chat template give -1
// and the error. 0 on success (free with rc_api_req_free).
int rc_api_parse(const char *body, size_t len, int kind, const rc_api_limits *lim, rc_api_req *r,
                 rc_api_error *e);
void rc_api_req_free(rc_api_req *r);

// Response bodies (malloc'd JSON text, NULL when out of memory). finish: "stop" / "length".
char *rc_api_error_json(const rc_api_error *e);
char *rc_api_completion_json(int kind, const char *id, long created, const char *model,
                             const char *text, size_t text_len, const char *finish,
                             int prompt_tokens, int completion_tokens, int cached_tokens);
// One stream chunk. text may be NULL (no content: the opening chunk of a chat carries the role,
// the closing one the finish reason). usage >= 0 adds "usage" with those counts and empty choices
// (the include_usage chunk). cached_tokens: usage.prompt_tokens_details.cached_tokens (prompt
// tokens whose KV was reused from an earlier request).
char *rc_api_chunk_json(int kind, const char *id, long created, const char *model, int first,
                        const char *text, size_t text_len, const char *finish, int prompt_tokens,
                        int completion_tokens, int cached_tokens, int usage);
char *rc_api_models_json(const char *model, long created, const char *const *value_names,
                         int n_value);

// How many bytes at the end of text[0, len) could still grow into one of the stop strings (the
// longest suffix that is a proper prefix of one of them): text that must be held back while
// streaming.
size_t rc_api_stop_holdback(const char *text, size_t len, char *const *stop, int n_stop);
// The first occurrence of any stop string that ends at or after byte `from` (earlier matches
// were checked before): its start offset, or -1.
long rc_api_stop_find(const char *text, size_t len, size_t from, char *const *stop, int n_stop);

// Appends n bytes to a growing buffer (*buf of *cap bytes holding *len, kept NUL-terminated).
// 0 / -1 (out of memory; the buffer is unchanged).
int rc_text_append(char **buf, size_t *len, size_t *cap, const char *s, size_t n);

#ifdef __cplusplus
}
#endif
