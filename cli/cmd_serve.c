// `recontrol serve`: an OpenAI-compatible HTTP server (chat and text completions, streaming,
// models, health) over one engine thread that batches all requests continuously, with
// RE-Control per request through value networks loaded at start (--value-model NAME=FILE).
#define _GNU_SOURCE
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/args.h"
#include "base/common.h"
#include "base/default_model.h"
#include "cli/commands.h"
#include "engine/backend.h"
#include "engine/model.h"
#include "engine/value_mlp.h"
#include "serve/server.h"
#include "serve/worker.h"
#include "tokenizer/chat.h"
#include "tokenizer/tokenizer.h"

#define MAX_VALUES 16

static void serve_usage(FILE *f) {
    fprintf(f,
            "usage: recontrol serve [--model PATH] [options]\n\n"
            "Serves the model over HTTP with OpenAI's API: POST /v1/chat/completions and\n"
            "/v1/completions (\"stream\": true for server-sent events), GET /v1/models and\n"
            "GET /health. All requests share one continuously batched engine. RE-Control per\n"
            "request: add \"recontrol\": {\"value_model\": NAME, \"step_size\": A, \"steps\": N}\n"
            "to the body (NAME from --value-model). Stop with Ctrl-C.\n\n"
            "  -m, --model PATH        HF model directory or .gguf (default: the default model)\n"
            "  --model-name NAME       the name clients see (default: the file or folder name)\n"
            "  --host ADDR             IPv4 address to listen on (default 127.0.0.1; 0.0.0.0 for\n"
            "                          all interfaces: then set an API key)\n"
            "  --port N                (default 8080; 0 = any free port, printed at start)\n"
            "  --api-key KEY           require \"Authorization: Bearer KEY\" (default: the\n"
            "                          RECONTROL_API_KEY environment variable; none if unset)\n"
            "  --value-model NAME=FILE a value network for RE-Control (safetensors from\n"
            "                          `recontrol train`); repeatable, up to %d\n"
            "  --step-size A           RE-Control step size when a request gives none (0.5)\n"
            "  --steps N               ascent steps when a request gives none (30)\n"
            "  --max-steps N           largest \"steps\" a request may ask for (200)\n"
            "  --chat-format NAME      vicuna, chatml, llama3, hh or raw (default: recognised\n"
            "                          from the model's chat_template)\n"
            "  --parallel N            sequences decoded together (KV slots; default 8)\n"
            "  --ctx N                 positions per sequence, prompt + reply (default: the\n"
            "                          model's maximum, at most 2048)\n"
            "  --batch-tokens N        tokens per forward; longer prefills are chunked so they\n"
            "                          do not stall the running requests (default 256)\n"
            "  --max-tokens N          largest max_tokens accepted (default: --ctx)\n"
            "  --max-prompt-tokens N   longest prompt accepted (default: --ctx - 1)\n"
            "  --max-body BYTES        largest request body (default 1048576)\n"
            "  --max-queue N           requests waiting or running at most; more get 429 with\n"
            "                          Retry-After (default 64)\n"
            "  --timeout S             a request (queue + generation) ends after S seconds with\n"
            "                          a 504 error (default 600)\n"
            "  --idle-timeout S        close a connection idle for S seconds (default 30)\n"
            "  --device D              cpu (default) or cuda\n"
            "  --dtype T               cuda weight type: f16 (default), bf16 or f32\n"
            "  --threads N             CPU threads (default: all)\n"
            "  --no-prompt-cache       prefill every prompt in full (default: a request goes to\n"
            "                          the free KV slot already holding the longest prefix of\n"
            "                          its prompt, e.g. the system prompt or the earlier turns\n"
            "                          of a conversation, and only the rest is prefilled;\n"
            "                          usage.prompt_tokens_details.cached_tokens says how many)\n"
            "  --quiet                 no log line per request\n"
            "  -h, --help              this text\n",
            MAX_VALUES);
}

// The last path component without a trailing slash or a .gguf extension.
static void model_name_of(const char *path, char *out, size_t cap) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%.4095s", path);
    size_t n = strlen(tmp);
    while (n > 1 && tmp[n - 1] == '/') tmp[--n] = 0;
    const char *base = strrchr(tmp, '/');
    base = base ? base + 1 : tmp;
    snprintf(out, cap, "%.200s", base);
    size_t bl = strlen(out);
    if (bl > 5 && !strcmp(out + bl - 5, ".gguf")) out[bl - 5] = 0;
}

int cmd_serve(int argc, char **argv) {
    enum {
        O_NAME = 256, O_HOST, O_PORT, O_KEY, O_VALUE, O_ALPHA, O_STEPS, O_MAXSTEPS, O_FMT, O_PAR,
        O_CTX, O_BT, O_MAXTOK, O_MAXPROMPT, O_BODY, O_QUEUE, O_TIMEOUT, O_IDLE, O_DEVICE, O_DTYPE,
        O_THREADS, O_QUIET, O_NOCACHE
    };
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},       {"model-name", required_argument, 0, O_NAME},
        {"host", required_argument, 0, O_HOST},     {"port", required_argument, 0, O_PORT},
        {"api-key", required_argument, 0, O_KEY},   {"value-model", required_argument, 0, O_VALUE},
        {"step-size", required_argument, 0, O_ALPHA}, {"steps", required_argument, 0, O_STEPS},
        {"max-steps", required_argument, 0, O_MAXSTEPS}, {"chat-format", required_argument, 0, O_FMT},
        {"parallel", required_argument, 0, O_PAR},  {"ctx", required_argument, 0, O_CTX},
        {"batch-tokens", required_argument, 0, O_BT}, {"max-tokens", required_argument, 0, O_MAXTOK},
        {"max-prompt-tokens", required_argument, 0, O_MAXPROMPT},
        {"max-body", required_argument, 0, O_BODY}, {"max-queue", required_argument, 0, O_QUEUE},
        {"timeout", required_argument, 0, O_TIMEOUT}, {"idle-timeout", required_argument, 0, O_IDLE},
        {"device", required_argument, 0, O_DEVICE}, {"dtype", required_argument, 0, O_DTYPE},
        {"threads", required_argument, 0, O_THREADS}, {"quiet", no_argument, 0, O_QUIET},
        {"no-prompt-cache", no_argument, 0, O_NOCACHE},
        {"help", no_argument, 0, 'h'},              {0, 0, 0, 0}};
    const char *model_path = NULL, *model_name = NULL, *fmt = NULL, *api_key = NULL;
    const char *value_names[MAX_VALUES], *value_files[MAX_VALUES];
    int n_values = 0;
    long port = 8080, steps = 30, max_steps = 200, parallel = 8, ctx = 0, batch_tokens = 256;
    long max_tokens = 0, max_prompt = 0, max_body = 1 << 20, max_queue = 64, timeout = 600;
    long idle = 30, threads = 0;
    float alpha = 0.5f;
    int quiet = 0, prompt_cache = 1, c;
    rc_server_opts so;
    memset(&so, 0, sizeof so);
    so.host = "127.0.0.1";
    rc_backend_opts bo;
    memset(&bo, 0, sizeof bo);
    bo.device = RC_DEVICE_CPU;
    bo.wtype = RC_WT_F16;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hm:", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'm': model_path = optarg; break;
        case O_NAME: model_name = optarg; break;
        case O_HOST: so.host = optarg; break;
        case O_PORT: bad = rc_parse_int("--port", optarg, 0, 65535, &port); break;
        case O_KEY: api_key = optarg; break;
        case O_VALUE: {
            char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg || !eq[1]) {
                bad = rc_fail("--value-model: expected NAME=FILE, got \"%s\"", optarg);
            } else if (n_values == MAX_VALUES) {
                bad = rc_fail("at most %d --value-model", MAX_VALUES);
            } else {
                *eq = 0;
                for (int i = 0; i < n_values; i++)
                    if (!strcmp(value_names[i], optarg))
                        bad = rc_fail("--value-model: the name \"%s\" is given twice", optarg);
                value_names[n_values] = optarg;
                value_files[n_values++] = eq + 1;
            }
            break;
        }
        // the server's own limits (a request's steps are capped by --max-steps; requests time out)
        case O_ALPHA: bad = rc_parse_realf("--step-size", optarg, 0, 1e4, 0, &alpha); break;
        case O_STEPS: bad = rc_parse_int("--steps", optarg, 0, 100000, &steps); break;
        case O_MAXSTEPS: bad = rc_parse_int("--max-steps", optarg, 0, 100000, &max_steps); break;
        case O_FMT: fmt = optarg; break;
        case O_PAR: bad = rc_parse_int("--parallel", optarg, 1, 4096, &parallel); break;
        case O_CTX: bad = rc_parse_int("--ctx", optarg, 2, 1 << 20, &ctx); break;
        case O_BT: bad = rc_parse_int("--batch-tokens", optarg, 1, 1 << 16, &batch_tokens); break;
        case O_MAXTOK: bad = rc_parse_int("--max-tokens", optarg, 1, 1 << 20, &max_tokens); break;
        case O_MAXPROMPT: bad = rc_parse_int("--max-prompt-tokens", optarg, 1, 1 << 20, &max_prompt); break;
        case O_BODY: bad = rc_parse_int("--max-body", optarg, 256, 1L << 30, &max_body); break;
        case O_QUEUE: bad = rc_parse_int("--max-queue", optarg, 1, 100000, &max_queue); break;
        case O_TIMEOUT: bad = rc_parse_int("--timeout", optarg, 1, 1L << 30, &timeout); break;
        case O_IDLE: bad = rc_parse_int("--idle-timeout", optarg, 1, 1L << 30, &idle); break;
        case O_THREADS: bad = rc_parse_int("--threads", optarg, 0, 4096, &threads); break;
        case O_DEVICE: bad = rc_device_parse(optarg, &bo.device); break;
        case O_DTYPE: bad = rc_wtype_parse(optarg, &bo.wtype); break;
        case O_QUIET: quiet = 1; break;
        case O_NOCACHE: prompt_cache = 0; break;
        case 'h': serve_usage(stdout); return 0;
        default: serve_usage(stderr); return 2;
        }
        if (bad) {
            fprintf(stderr, "recontrol serve: %s\n", rc_last_error());
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "recontrol serve: unexpected argument \"%s\"\n\n", argv[optind]);
        serve_usage(stderr);
        return 2;
    }
    if (steps > max_steps) {
        fprintf(stderr, "recontrol serve: --steps %ld is above --max-steps %ld\n", steps, max_steps);
        return 2;
    }
    if (!api_key) api_key = getenv("RECONTROL_API_KEY");

    int rc = 1, n_loaded = 0;
    char defpath[4096], name_buf[256];
    rc_model m;
    memset(&m, 0, sizeof m);
    rc_tokenizer *tok = NULL;
    rc_value_mlp values[MAX_VALUES];
    memset(values, 0, sizeof values);
    rc_worker *w = NULL;
    rc_server *srv = NULL;
    rc_chat_spec spec;
    int have_chat = 0;
    if (bo.device != RC_DEVICE_CPU && rc_device_check(bo.device)) goto fail;
    if (!model_path) {
        if (rc_default_model_require(defpath, sizeof defpath)) goto fail;
        model_path = defpath;
    }
    if (!model_name) {
        model_name_of(model_path, name_buf, sizeof name_buf);
        model_name = name_buf;
    }
    if (!(tok = rc_tokenizer_load(model_path))) {
        rc_fail_ctx("%s: the server needs the model's tokenizer", model_path);
        goto fail;
    }
    if (fmt) {
        if (rc_chat_spec_from_name(fmt, &spec)) goto fail;
        have_chat = 1;
    } else if (rc_tokenizer_chat_template(tok)) {
        if (rc_chat_spec_from_template(rc_tokenizer_chat_template(tok), &spec)) {
            rc_fail_ctx("%s: choosing the chat format (--chat-format NAME overrides)", model_path);
            goto fail;
        }
        have_chat = 1;
    }
    if (rc_model_load(model_path, &m)) goto fail;
    for (; n_loaded < n_values; n_loaded++) {
        if (rc_value_load(&values[n_loaded], value_files[n_loaded])) {
            rc_fail_ctx("--value-model %s", value_names[n_loaded]);
            goto fail;
        }
        if (values[n_loaded].dims[0] != m.cfg.hidden_size) {
            rc_fail("--value-model %s=%s: the value network takes %d-dim states; the model's "
                    "hidden size is %d",
                    value_names[n_loaded], value_files[n_loaded], values[n_loaded].dims[0],
                    m.cfg.hidden_size);
            n_loaded++;
            goto fail;
        }
    }
    if (!ctx) ctx = m.cfg.max_position_embeddings > 0 && m.cfg.max_position_embeddings < 2048
                        ? m.cfg.max_position_embeddings
                        : 2048;
    if (!max_tokens || max_tokens > ctx - 1) max_tokens = ctx - 1;
    if (!max_prompt || max_prompt > ctx - 1) max_prompt = ctx - 1;
    bo.n_slots = (int)parallel;
    bo.max_len = (int)ctx;
    bo.max_tokens = (int)batch_tokens;
    bo.n_threads = (int)threads;

    // Signals: handled by sigwait in this thread only (every thread started below inherits the mask).
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    rc_worker_opts wo = {.model = &m, .backend = bo, .tok = tok, .values = values,
                         .n_values = n_values, .max_queue = (int)max_queue,
                         .prefix_reuse = prompt_cache};
    if (!(w = rc_worker_start(&wo))) goto fail;
    int eot = -1;
    const char *eot_s = have_chat ? rc_chat_end_of_turn(&spec) : NULL;
    if (eot_s) eot = rc_tokenizer_token_id(tok, eot_s);
    so.port = (int)port;
    so.api_key = api_key && *api_key ? api_key : NULL;
    so.model_name = model_name;
    so.max_body = (size_t)max_body;
    so.max_prompt_tokens = (int)max_prompt;
    so.max_len = (int)ctx;
    so.timeout_s = (int)timeout;
    so.idle_timeout_s = (int)idle;
    so.max_connections = (int)max_queue + 64;
    so.quiet = quiet;
    so.limits.max_tokens_limit = (int)max_tokens;
    so.limits.max_prompt_chars = (int)(max_prompt * 64 < INT_MAX ? max_prompt * 64 : INT_MAX);
    so.limits.chat = have_chat ? &spec : NULL;
    so.limits.value_names = value_names;
    so.limits.n_value = n_values;
    so.limits.default_step_size = alpha;
    so.limits.default_steps = (int)steps;
    so.limits.max_steps = (int)max_steps;
    so.worker = w;
    so.tok = tok;
    so.vocab_size = m.cfg.vocab_size;
    so.end_of_turn = eot;
    if (!(srv = rc_server_start(&so))) goto fail;

    printf("recontrol serve: http://%s:%d/v1  model %s (%s), device %s, %ld slots x %ld positions, "
           "chat format %s, prompt cache %s, value networks: ",
           so.host, rc_server_port(srv), model_name, model_path, rc_device_name(bo.device), parallel,
           ctx, have_chat ? rc_chat_format_name(spec.format) : "none (completions only)",
           prompt_cache ? "on" : "off");
    if (!n_values) printf("none");
    for (int i = 0; i < n_values; i++) {
        const rc_value_mlp *v = &values[i];
        printf("%s%s=%s (%d", i ? ", " : "", value_names[i], value_files[i], v->dims[0]);
        for (int l = 1; l <= v->n_layers; l++) printf("->%d", v->dims[l]);
        printf(")");
    }
    printf("%s\n", so.api_key ? "; API key required" : "");
    fflush(stdout);

    int sig = 0;
    sigwait(&sigs, &sig);
    fprintf(stderr, "recontrol serve: %s, stopping\n", sig == SIGINT ? "interrupted" : "terminated");
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "recontrol serve: error: %s\n", rc_last_error());
out:
    rc_server_stop(srv);
    rc_worker_stop(w);
    for (int i = 0; i < n_loaded; i++) rc_value_free(&values[i]);
    rc_model_free(&m);
    rc_tokenizer_free(tok);
    return rc;
}
