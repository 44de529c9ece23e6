// `recontrol chat`: an interactive conversation with the model's chat template (recognised from
// the tokenizer's chat_template, or chosen with --chat-format), streaming the reply as it is
// generated. Each turn re-renders the whole conversation and generates until the template's
// end-of-turn token (<|im_end|>, <|eot_id|>, </s>), the model's EOS, or --max-new-tokens.
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "base/args.h"
#include "base/common.h"
#include "engine/control.h"
#include "base/default_model.h"
#include "engine/generate.h"
#include "engine/model.h"
#include "tokenizer/chat.h"
#include "tokenizer/tokenizer.h"
#include "engine/backend.h"

static void chat_usage(FILE *f) {
    fprintf(f,
            "usage: recontrol chat [--model PATH] [options]\n\n"
            "Chats with a model in its chat template, streaming the replies. Type a message and\n"
            "press Enter; /reset starts over, /exit (or end of input) quits.\n\n"
            "  -m, --model PATH        HF model directory or .gguf (default: the default model)\n"
            "  --chat-format NAME      vicuna, chatml, llama3, hh or raw (default: recognised\n"
            "                          from the model's chat_template)\n"
            "  --system TEXT           system message (default: the template's own, if any)\n"
            "  -p, --prompt TEXT       a user turn to send without reading standard input\n"
            "                          (repeatable: one turn each, then exit)\n"
            "  --max-new-tokens N      per reply (default 256)\n"
            "  --max-len N             context length in tokens (default 2048)\n"
            "  --temperature T         0 = greedy (default 0.7)\n"
            "  --top-p P               nucleus sampling (default 0.9)\n"
            "  --top-k K               0 = off (default 0)\n"
            "  --seed N                sampling seed (default 0)\n"
            "  --threads N             CPU threads (default: all)\n"
            "  --value-model FILE      RE-Control: edit each step's post-norm state by gradient\n"
            "                          ascent on this value network (from `recontrol train`)\n"
            "  --step-size A           ascent step size (default 0.5)\n"
            "  --steps N               ascent steps per token (default 30)\n"
            "  --device D              cpu (default) or cuda (needs a CUDA build and a GPU)\n"
            "  --dtype T               --device cuda weight type: f16 (default), bf16 or f32\n"
            "  -h, --help              this text\n");
}

typedef struct {
    const rc_tokenizer *tok;
    rc_detok *detok;
    int eot; // end-of-turn id, -1 when none
    int ended;
} stream_state;

static int on_token(void *ud, int seq, int token) {
    stream_state *s = ud;
    if (token == s->eot) {
        s->ended = 1;
        return 1; // the turn is over (RC_FINISH_STOP); the turn end is not printed
    }
    size_t len;
    const char *p = rc_detok_feed(s->detok, token, &len);
    if (!p) return -1;
    fwrite(p, 1, len, stdout);
    fflush(stdout);
    return 0;
}

typedef struct {
    rc_chat_msg *m;
    int n, cap;
} conv;

static int conv_add(conv *c, const char *role, const char *content) {
    if (c->n == c->cap) {
        int nc = c->cap ? c->cap * 2 : 16;
        rc_chat_msg *nm = realloc(c->m, sizeof *nm * (size_t)nc);
        if (!nm) return rc_fail("out of memory");
        c->m = nm;
        c->cap = nc;
    }
    char *copy = strdup(content);
    if (!copy) return rc_fail("out of memory");
    c->m[c->n++] = (rc_chat_msg){role, copy};
    return 0;
}

static void conv_reset(conv *c, int keep) {
    for (int i = keep; i < c->n; i++) free((char *)c->m[i].content);
    c->n = keep;
}

// One assistant turn for the conversation so far: render, encode, generate (streaming), and
// append the reply. 0 / -1.
static int chat_turn(rc_backend *e, const rc_tokenizer *tok, const rc_chat_spec *spec,
                     const rc_gen_params *gp, conv *cv, int eot) {
    char *prompt = rc_chat_render(spec, cv->m, cv->n, 1);
    if (!prompt) return -1;
    // The BOS is added by the tokenizer unless the template already wrote it.
    int bos = rc_tokenizer_bos(tok);
    const char *bos_s = bos >= 0 ? rc_tokenizer_piece(tok, bos) : NULL;
    int add_special = !(bos_s && *bos_s && !strncmp(prompt, bos_s, strlen(bos_s)));
    int *ids = NULL, n = 0, rc = -1;
    rc_gen_output out = {0};
    stream_state st = {tok, rc_detok_new(tok, 1), eot, 0};
    if (!st.detok || rc_tokenizer_encode(tok, prompt, strlen(prompt), add_special, &ids, &n))
        goto done;
    if (n + gp->max_new_tokens > e->max_len) {
        rc_fail("the conversation is %d tokens; with --max-new-tokens %d it exceeds --max-len %d "
                "(type /reset to start over)",
                n, gp->max_new_tokens, e->max_len);
        goto done;
    }
    rc_gen_hooks hooks = {.on_token = on_token, .ud = &st};
    const int *pp = ids;
    if (rc_generate(e, 1, &pp, &n, gp, &hooks, &out)) goto done;
    size_t len;
    const char *tail = rc_detok_flush(st.detok, &len);
    if (tail) fwrite(tail, 1, len, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    int keep = out.n_tokens;
    if (keep && out.tokens[keep - 1] == eot) keep--;
    char *reply = rc_tokenizer_decode(tok, out.tokens, keep, 1);
    if (!reply) goto done;
    rc = conv_add(cv, "assistant", reply);
    free(reply);
done:
    rc_gen_output_free(&out, 1);
    rc_detok_free(st.detok);
    free(ids);
    free(prompt);
    return rc;
}

int cmd_chat(int argc, char **argv) {
    enum { O_FMT = 256, O_SYS, O_MAXNEW, O_MAXLEN, O_TEMP, O_TOPP, O_TOPK, O_SEED, O_THREADS, O_VALUE, O_ALPHA, O_STEPS, O_DEVICE, O_DTYPE };
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},      {"chat-format", required_argument, 0, O_FMT},
        {"system", required_argument, 0, O_SYS},   {"prompt", required_argument, 0, 'p'},
        {"max-new-tokens", required_argument, 0, O_MAXNEW},
        {"max-len", required_argument, 0, O_MAXLEN}, {"temperature", required_argument, 0, O_TEMP},
        {"top-p", required_argument, 0, O_TOPP},   {"top-k", required_argument, 0, O_TOPK},
        {"seed", required_argument, 0, O_SEED},    {"threads", required_argument, 0, O_THREADS},
        {"value-model", required_argument, 0, O_VALUE},
        {"step-size", required_argument, 0, O_ALPHA}, {"steps", required_argument, 0, O_STEPS},
        {"device", required_argument, 0, O_DEVICE}, {"dtype", required_argument, 0, O_DTYPE},
        {"help", no_argument, 0, 'h'},             {0, 0, 0, 0}};
    const char *model_path = NULL, *fmt = NULL, *system = NULL;
    const char *prompts[64];
    int n_prompts = 0, max_len = 2048, threads = 0, c, rc = 1, steps = 30;
    float alpha = 0.5f;
    const char *value_path = NULL;
    rc_device device = RC_DEVICE_CPU;
    rc_wtype dtype = RC_WT_F16;
    rc_value_mlp vm;
    memset(&vm, 0, sizeof vm);
    rc_gen_params gp = {.max_new_tokens = 256, .stop_at_eos = 1,
                        .sample = {.temperature = 0.7f, .top_k = 0, .top_p = 0.9f, .seed = 0}};
    optind = 1;
    while ((c = getopt_long(argc, argv, "hm:p:", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'm': model_path = optarg; break;
        case 'p':
            if (n_prompts == 64) {
                fprintf(stderr, "recontrol chat: at most 64 --prompt turns\n");
                return 2;
            }
            prompts[n_prompts++] = optarg;
            break;
        case O_FMT: fmt = optarg; break;
        case O_SYS: system = optarg; break;
        case O_MAXNEW: bad = rc_parse_i32("--max-new-tokens", optarg, 1, RC_MAX_NEW_TOKENS, &gp.max_new_tokens); break;
        case O_MAXLEN: bad = rc_parse_i32("--max-len", optarg, 2, RC_MAX_NEW_TOKENS, &max_len); break;
        case O_TEMP: bad = rc_parse_realf("--temperature", optarg, 0, RC_MAX_TEMPERATURE, 0, &gp.sample.temperature); break;
        case O_TOPP: bad = rc_parse_realf("--top-p", optarg, 0, 1, RC_RANGE_OPEN_MIN, &gp.sample.top_p); break;
        case O_TOPK: bad = rc_parse_i32("--top-k", optarg, 0, 1 << 24, &gp.sample.top_k); break;
        case O_SEED: bad = rc_parse_u64("--seed", optarg, &gp.sample.seed); break;
        case O_THREADS: bad = rc_parse_i32("--threads", optarg, 0, 4096, &threads); break;
        case O_VALUE: value_path = optarg; break;
        case O_ALPHA: bad = rc_parse_realf("--step-size", optarg, 0, RC_CONTROL_MAX_STEP_SIZE, 0, &alpha); break;
        case O_STEPS: bad = rc_parse_i32("--steps", optarg, 0, RC_CONTROL_MAX_STEPS, &steps); break;
        case O_DEVICE:
        case O_DTYPE:
            if (c == O_DEVICE ? rc_device_parse(optarg, &device) : rc_wtype_parse(optarg, &dtype)) {
                fprintf(stderr, "recontrol chat: %s\n", rc_last_error());
                return 2;
            }
            break;
        case 'h': chat_usage(stdout); return 0;
        default: chat_usage(stderr); return 2;
        }
        if (bad) {
            fprintf(stderr, "recontrol chat: %s\n", rc_last_error());
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "recontrol chat: unexpected argument '%s'\n\n", argv[optind]);
        chat_usage(stderr);
        return 2;
    }
    if (value_path && rc_check_regular_file(value_path, "a value model (.safetensors)")) {
        fprintf(stderr, "recontrol chat: %s\n", rc_last_error());
        return 2;
    }
    char defpath[4096];
    if (!model_path) {
        if (rc_default_model_require(defpath, sizeof defpath)) {
            fprintf(stderr, "recontrol chat: %s\n", rc_last_error());
            return 1;
        }
        model_path = defpath;
    }
    rc_tokenizer *tok = NULL;
    rc_model m;
    memset(&m, 0, sizeof m);
    rc_backend *e = NULL;
    conv cv = {0};
    rc_chat_spec spec;
    char *line = NULL;
    size_t cap = 0;
    if (!(tok = rc_tokenizer_load(model_path))) goto fail;
    if (fmt ? rc_chat_spec_from_name(fmt, &spec)
            : rc_chat_spec_from_template(rc_tokenizer_chat_template(tok), &spec)) {
        if (!fmt) rc_fail_ctx("%s: choosing the chat format (--chat-format NAME overrides)", model_path);
        goto fail;
    }
    const char *eot_s = rc_chat_end_of_turn(&spec);
    int eot = eot_s ? rc_tokenizer_token_id(tok, eot_s) : -1;
    if (rc_device_check(device) || rc_model_load(model_path, &m)) goto fail;
    rc_backend_opts bo = {.device = device, .wtype = dtype, .n_slots = 1, .max_len = max_len,
                          .max_tokens = 256, .n_threads = threads};
    if (rc_backend_open(&e, &m, &bo)) goto fail;
    gp.control = -1;
    if (value_path) {
        if (steps < 0 || !(alpha >= 0)) {
            rc_fail("need --steps >= 0 and --step-size >= 0");
            goto fail;
        }
        if (rc_value_load(&vm, value_path) || (gp.control = rc_backend_control_add(e, &vm)) < 0) {
            rc_fail_ctx("%s", value_path);
            goto fail;
        }
        gp.alpha = alpha;
        gp.steps = steps;
    }
    if (system && conv_add(&cv, "system", system)) goto fail;
    int keep = cv.n, interactive = n_prompts == 0;
    if (interactive && isatty(0))
        fprintf(stderr, "recontrol chat: %s, format %s; /reset to start over, /exit to quit\n",
                model_path, rc_chat_format_name(spec.format));
    for (int turn = 0;; turn++) {
        const char *msg;
        if (!interactive) {
            if (turn >= n_prompts) break;
            msg = prompts[turn];
            printf("> %s\n", msg);
        } else {
            if (isatty(0)) fputs("> ", stderr);
            ssize_t k = getline(&line, &cap, stdin);
            if (k < 0) break;
            while (k > 0 && (line[k - 1] == '\n' || line[k - 1] == '\r')) line[--k] = 0;
            if (!strcmp(line, "/exit") || !strcmp(line, "/quit")) break;
            if (!strcmp(line, "/reset")) {
                conv_reset(&cv, keep);
                continue;
            }
            if (!k) continue;
            msg = line;
        }
        if (conv_add(&cv, "user", msg)) goto fail;
        if (chat_turn(e, tok, &spec, &gp, &cv, eot)) {
            fprintf(stderr, "\nrecontrol chat: %s\n", rc_last_error());
            cv.n--; // drop the unanswered turn
            free((char *)cv.m[cv.n].content);
            if (!interactive) goto out;
        }
    }
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "recontrol chat: %s\n", rc_last_error());
out:
    free(line);
    conv_reset(&cv, 0);
    free(cv.m);
    rc_backend_close(e);
    rc_value_free(&vm);
    rc_model_free(&m);
    rc_tokenizer_free(tok);
    return rc;
}
