// The HTTP side of `recontrol serve`: libmicrohttpd (one thread per connection) serving the
// OpenAI routes over an engine thread (serve/worker.h): POST /v1/chat/completions and
// /v1/completions (JSON, or server-sent events with "stream": true), GET /v1/models and
// GET /health, with an optional API key, a body size limit, prompt / max_tokens limits, a bounded
// queue (429 + Retry-After), a per-request timeout and cancellation when the client goes away.
#pragma once
#include <stddef.h>

#include "serve/api.h"
#include "serve/worker.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const char *host;          // address to listen on (IPv4 dotted; default 127.0.0.1)
    int port;                  // 0: any free port (rc_server_port tells which)
    const char *api_key;       // NULL: no key required
    const char *model_name;    // the served model's name (/v1/models, "model" in responses)
    size_t max_body;           // request body bytes
    int max_prompt_tokens;     // after tokenizing
    int max_len;               // positions per sequence (prompt + new tokens)
    int timeout_s;             // whole request (queue wait + generation)
    int idle_timeout_s;        // a connection that sends nothing for this long is closed
    int max_connections;       //
    int quiet;                 // no per-request log line
    rc_api_limits limits;      // parsing (chat template, value networks, max_tokens)
    rc_worker *worker;         // not owned
    const rc_tokenizer *tok;   // not owned
    int vocab_size;            // of the model
    int end_of_turn;           // chat template's end-of-turn id (a stop id for chat), or -1
} rc_server_opts;

typedef struct rc_server rc_server;

// Binds and starts serving (connection threads run in the background). NULL + error.
rc_server *rc_server_start(const rc_server_opts *o);
int rc_server_port(const rc_server *s);
// Stops accepting, ends open connections and frees the server (the worker stays).
void rc_server_stop(rc_server *s);

#ifdef __cplusplus
}
#endif
