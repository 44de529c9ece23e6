// `recontrol generate`: batched generation from prompts given as text (--prompt, tokenized with
// the model's tokenizer) or token ids (--ids), both repeatable, or a JSONL file of
// {"prompt": "..."} / {"ids": [...]}, with greedy / temperature / top-k / top-p sampling and an
// explicit seed. Output: one line per prompt, in prompt order (text, ids, or JSON).
// Under a launcher (base/dist.h) rank r generates the r-th of `world` even, consecutive parts of
// the prompt list (generator indices stay global, so the samples are a one-process run's) and
// rank 0 prints every part in order.
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "base/args.h"
#include "base/lines.h"
#include "base/rundir_lock.h"
#include "base/utf8.h"
#include "engine/control.h"
#include "base/progress.h"
#include "base/safetensors.h"
#include "pipeline/codec.h"
#include "engine/backend.h"
#include "base/common.h"
#include "base/default_model.h"
#include "base/dist.h"
#include "engine/generate.h"
#include "tokenizer/chat.h"
#include "tokenizer/tokenizer.h"

static void generate_usage(FILE *f) {
    fprintf(f,
            "usage: recontrol generate [--model PATH] (--prompt TEXT | --ids 1,2,3 | --jsonl FILE)"
            "... [options]\n\n"
            "Generates a continuation for every prompt, batching up to --batch sequences\n"
            "(continuous batching), on the CPU or with --device cuda on the GPU.\n\n"
            "  --model PATH          HF model directory or .gguf file (default: the default\n"
            "                        model, see `recontrol setup`)\n"
            "  --chat                wrap text prompts in the model's chat template (one user\n"
            "                        turn + the assistant opening); its turn end stops like EOS\n"
            "  --value-model FILE    RE-Control: before the LM head, move each step's post-norm\n"
            "                        state by gradient ascent on this value network\n"
            "                        (safetensors fc1.weight, ...; from `recontrol train`)\n"
            "  --step-size A         ascent step size alpha (default 0.5)\n"
            "  --steps N             ascent steps per token (default 30; 0 = plain generation)\n"
            "  --prompt TEXT         a text prompt, encoded with the model's tokenizer (BOS added\n"
            "                        as the tokenizer config says; no chat template) (repeatable)\n"
            "  --ids LIST            a prompt as comma-separated token ids, used as is (repeatable)\n"
            "  --jsonl FILE          prompts, one JSON object per line: {\"prompt\": \"text\"} or\n"
            "                        {\"ids\": [1, 2, 3]}\n"
            "  --max-new-tokens N    new tokens per prompt (default 128)\n"
            "  --temperature T       0 = greedy (default 0)\n"
            "  --top-k K             keep the K most likely tokens (default 0 = off)\n"
            "  --top-p P             nucleus sampling mass (default 1 = off)\n"
            "  --seed S              sampling seed (default 0); each prompt gets its own stream\n"
            "                        derived from S and its index, so --batch does not change it\n"
            "  --batch B             sequences decoded together (default 8)\n"
            "  --no-stop             do not stop at the model's EOS ids\n"
            "  --json                print one JSON object per prompt: {\"index\", \"prompt_ids\",\n"
            "                        \"ids\", \"finish\": \"eos\"|\"length\", \"text\" (when a\n"
            "                        tokenizer is loaded)}\n"
            "  --text                decode outputs to text even when all prompts are ids\n"
            "                        (plain output is then the text, one JSON string per line)\n"
            "  --out FILE            write the output there instead of stdout\n"
            "  --threads N           CPU threads (default: all cores)\n"
            "  --device D            cpu (default) or cuda (needs a CUDA build and a GPU)\n"
            "  --dtype T             --device cuda weight type: f16 (default), bf16 or f32\n"
            "  -h, --help            this text\n\n"
            "Plain output: the new ids separated by spaces, or, with a tokenizer loaded, the new\n"
            "text as a JSON string (escapes keep one prompt per line).\n");
}

typedef struct {
    int **p;
    int *len;
    char **text; // text prompts waiting for the tokenizer (NULL for id prompts)
    int n, cap;
} prompt_list;

static int add_prompt(prompt_list *pl, int *ids, int n, const char *text) {
    if (pl->n == pl->cap) {
        int cap = pl->cap ? pl->cap * 2 : 16;
        int **np = realloc(pl->p, sizeof(int *) * cap);
        if (!np) return rc_fail("out of memory (prompts)");
        pl->p = np;
        int *nl = realloc(pl->len, sizeof(int) * cap);
        if (!nl) return rc_fail("out of memory (prompts)");
        pl->len = nl;
        char **nt = realloc(pl->text, sizeof(char *) * cap);
        if (!nt) return rc_fail("out of memory (prompts)");
        pl->text = nt;
        pl->cap = cap;
    }
    pl->text[pl->n] = NULL;
    if (text && !(pl->text[pl->n] = strdup(text))) return rc_fail("out of memory (prompts)");
    pl->p[pl->n] = ids;
    pl->len[pl->n++] = n;
    return 0;
}

static int add_id_prompt(const char *s, prompt_list *pl) {
    int *v, k;
    if (rc_parse_id_list("--ids", s, &v, &k)) return -1;
    if (add_prompt(pl, v, k, NULL)) return free(v), -1;
    return 0;
}

static int read_jsonl(const char *path, prompt_list *pl) {
    rc_lines *in = rc_lines_open(path);
    if (!in) return -1;
    int line_no = 0, rc = 0, got;
    const char *line;
    size_t len;
    while (!rc && (got = rc_lines_next(in, &line, &len)) == 1) {
        line_no++;
        long nul = rc_find_nul(line, len), esc = rc_json_find_nul_escape(line, len);
        if (nul >= 0 || esc >= 0) { // cJSON would stop at the NUL and run a different prompt
            rc = rc_fail("%s:%d: a %s at byte %ld (a prompt cannot hold a NUL character)", path,
                         line_no, nul >= 0 ? "NUL byte" : "\\u0000 escape", (nul >= 0 ? nul : esc) + 1);
            break;
        }
        while (*line == ' ' || *line == '\t' || *line == '\r') line++;
        if (!*line) continue;
        cJSON *j = rc_json_parse(line, path);
        if (!j) {
            rc = rc_fail("%s:%d: not valid JSON", path, line_no);
            break;
        }
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(j, "ids");
        const cJSON *txt = cJSON_GetObjectItemCaseSensitive(j, "prompt");
        if (cJSON_IsString(txt) && !ids) {
            rc = add_prompt(pl, NULL, 0, txt->valuestring);
        } else if (!cJSON_IsArray(ids)) {
            rc = rc_fail("%s:%d: expected {\"prompt\": \"text\"} or {\"ids\": [...]}", path, line_no);
        } else {
            int n = cJSON_GetArraySize(ids);
            int *v = n > 0 ? rc_malloc(sizeof(int) * n, "prompt ids") : NULL;
            if (n == 0) rc = rc_fail("%s:%d: empty \"ids\"", path, line_no);
            else if (!v) rc = -1;
            for (int i = 0; !rc && i < n; i++) {
                const cJSON *x = cJSON_GetArrayItem(ids, i);
                if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble > INT_MAX ||
                    x->valuedouble != (double)(int)x->valuedouble)
                    rc = rc_fail("%s:%d: ids[%d] is not a non-negative integer", path, line_no, i);
                else v[i] = (int)x->valuedouble;
            }
            if (!rc) rc = add_prompt(pl, v, n, NULL);
            if (rc) free(v);
        }
        cJSON_Delete(j);
    }
    if (!rc && got < 0) rc = -1;
    rc_lines_close(in);
    if (!rc && pl->n == 0) rc = rc_fail("%s: no prompts", path);
    return rc;
}

// Ranks must be started with the same command line: one message when they are not.
static int agree_args(int argc, char **argv) {
    size_t len = 1;
    for (int i = 0; i < argc; i++) len += strlen(argv[i]) + 1;
    char *t = rc_malloc(len, "command line");
    if (!t) return -1;
    size_t off = 0;
    for (int i = 0; i < argc; i++) {
        size_t k = strlen(argv[i]);
        if (i) t[off++] = ' ';
        memcpy(t + off, argv[i], k);
        off += k;
    }
    t[off] = 0;
    int rc = rc_dist_agree("generate command line", t);
    free(t);
    return rc;
}

static void print_ids(FILE *f, const int *ids, int n, const char *sep) {
    for (int i = 0; i < n; i++) fprintf(f, "%s%d", i ? sep : "", ids[i]);
}

int cmd_generate(int argc, char **argv) {
    enum { O_MAXNEW = 1000, O_TEMP, O_TOPK, O_TOPP, O_SEED, O_BATCH, O_NOSTOP, O_JSON, O_THREADS, O_TEXT, O_CHAT, O_VALUE, O_ALPHA, O_STEPS, O_DEVICE, O_DTYPE };
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"ids", required_argument, 0, 'i'},
                                         {"prompt", required_argument, 0, 'p'},
                                         {"text", no_argument, 0, O_TEXT},
                                         {"jsonl", required_argument, 0, 'j'},
                                         {"out", required_argument, 0, 'o'},
                                         {"max-new-tokens", required_argument, 0, O_MAXNEW},
                                         {"temperature", required_argument, 0, O_TEMP},
                                         {"top-k", required_argument, 0, O_TOPK},
                                         {"top-p", required_argument, 0, O_TOPP},
                                         {"seed", required_argument, 0, O_SEED},
                                         {"batch", required_argument, 0, O_BATCH},
                                         {"no-stop", no_argument, 0, O_NOSTOP},
                                         {"json", no_argument, 0, O_JSON},
                                         {"threads", required_argument, 0, O_THREADS},
                                         {"chat", no_argument, 0, O_CHAT},
                                         {"value-model", required_argument, 0, O_VALUE},
                                         {"step-size", required_argument, 0, O_ALPHA},
                                         {"steps", required_argument, 0, O_STEPS},
                                         {"device", required_argument, 0, O_DEVICE},
                                         {"dtype", required_argument, 0, O_DTYPE},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *model_path = NULL, *jsonl = NULL, *out_path = NULL;
    rc_gen_params gp = {.max_new_tokens = 128, .stop_at_eos = 1,
                        .sample = {.temperature = 0, .top_k = 0, .top_p = 1, .seed = 0}};
    int batch = 8, json = 0, threads = 0, want_text = 0, c, rc = 1, chat = 0, steps = 30;
    float alpha = 0.5f;
    rc_device device = RC_DEVICE_CPU;
    rc_wtype dtype = RC_WT_F16;
    const char *value_path = NULL;
    char default_path[1024];
    rc_value_mlp vm;
    memset(&vm, 0, sizeof vm);
    rc_backend *be = NULL;
    rc_tokenizer *tok = NULL;
    prompt_list pl = {0};
    rc_model m;
    memset(&m, 0, sizeof m);
    rc_gen_output *outs = NULL;
    FILE *of = stdout, *ms = NULL;
    char *mbuf = NULL, *all = NULL;
    size_t msz = 0, n_all = 0;
    const int rank = rc_dist_rank(), world = rc_dist_size();
    int lo = 0, mn = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hm:i:j:o:p:", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'm': model_path = optarg; break;
        case 'i':
            if (add_id_prompt(optarg, &pl)) goto fail;
            break;
        case 'p':
            if (add_prompt(&pl, NULL, 0, optarg)) goto fail;
            break;
        case 'j': jsonl = optarg; break;
        case 'o': out_path = optarg; break;
        case O_MAXNEW: bad = rc_parse_i32("--max-new-tokens", optarg, 1, RC_MAX_NEW_TOKENS, &gp.max_new_tokens); break;
        case O_TEMP: bad = rc_parse_realf("--temperature", optarg, 0, RC_MAX_TEMPERATURE, 0, &gp.sample.temperature); break;
        case O_TOPK: bad = rc_parse_i32("--top-k", optarg, 0, 1 << 24, &gp.sample.top_k); break;
        case O_TOPP: bad = rc_parse_realf("--top-p", optarg, 0, 1, RC_RANGE_OPEN_MIN, &gp.sample.top_p); break;
        case O_SEED: bad = rc_parse_u64("--seed", optarg, &gp.sample.seed); break;
        case O_BATCH: bad = rc_parse_i32("--batch", optarg, 1, 4096, &batch); break;
        case O_THREADS: bad = rc_parse_i32("--threads", optarg, 0, 4096, &threads); break;
        case O_NOSTOP: gp.stop_at_eos = 0; break;
        case O_JSON: json = 1; break;
        case O_TEXT: want_text = 1; break;
        case O_CHAT: chat = 1; break;
        case O_VALUE: value_path = optarg; break;
        case O_ALPHA: bad = rc_parse_realf("--step-size", optarg, 0, RC_CONTROL_MAX_STEP_SIZE, 0, &alpha); break;
        case O_STEPS: bad = rc_parse_i32("--steps", optarg, 0, RC_CONTROL_MAX_STEPS, &steps); break;
        case O_DEVICE:
        case O_DTYPE:
            if (c == O_DEVICE ? rc_device_parse(optarg, &device) : rc_wtype_parse(optarg, &dtype)) {
                fprintf(stderr, "recontrol generate: %s\n", rc_last_error());
                rc = 2;
                goto out;
            }
            break;
        case 'h': generate_usage(stdout); return 0;
        default: generate_usage(stderr); return 2;
        }
        if (bad) {
            fprintf(stderr, "recontrol generate: %s\n", rc_last_error());
            rc = 2;
            goto out;
        }
    }
    if (optind != argc || (!jsonl && pl.n == 0) || (jsonl && pl.n > 0)) {
        fprintf(stderr, "recontrol generate: prompts (--prompt / --ids, or --jsonl) are required\n\n");
        generate_usage(stderr);
        rc = 2;
        goto out;
    }
    // Paths before any work: a bad --out must not surface after the generation ran.
    if (rc_device_check(device)) goto fail;
    if (out_path && rc_check_output_file("--out", out_path)) goto fail;
    if (value_path && rc_check_regular_file(value_path, "a value model (.safetensors)")) goto fail;
    if (!model_path) {
        if (rc_default_model_require(default_path, sizeof default_path)) goto fail;
        model_path = default_path;
    }
    if (jsonl && read_jsonl(jsonl, &pl)) goto fail;
    for (int i = 0; i < pl.n; i++)
        if (pl.text[i]) want_text = 1;
    if (chat && !want_text) {
        rc_fail("--chat needs text prompts (--prompt, or {\"prompt\": ...} lines)");
        goto fail;
    }
    int eot_id = -1;
    if (want_text) {
        if (!(tok = rc_tokenizer_load(model_path))) {
            rc_fail_ctx("loading the tokenizer of %s (needed for text prompts / --text)", model_path);
            goto fail;
        }
        rc_chat_spec spec;
        if (chat) {
            const char *tpl = rc_tokenizer_chat_template(tok);
            if (!tpl) {
                rc_fail("%s has no chat template: drop --chat", model_path);
                goto fail;
            }
            if (rc_chat_spec_from_template(tpl, &spec)) goto fail;
            const char *eot = rc_chat_end_of_turn(&spec);
            eot_id = eot ? rc_tokenizer_token_id(tok, eot) : -1;
        }
        for (int i = 0; i < pl.n; i++) {
            if (!pl.text[i]) continue;
            char *txt = pl.text[i];
            if (chat) {
                rc_chat_msg msg = {"user", pl.text[i]};
                if (!(txt = rc_chat_render(&spec, &msg, 1, 1))) {
                    rc_fail_ctx("prompt %d: rendering the chat template", i);
                    goto fail;
                }
            }
            int erc = rc_tokenizer_encode(tok, txt, strlen(txt), !chat, &pl.p[i], &pl.len[i]);
            if (txt != pl.text[i]) free(txt);
            if (erc) {
                rc_fail_ctx("prompt %d", i);
                goto fail;
            }
        }
    }
    for (int i = 0; i < pl.n; i++)
        if (pl.len[i] < 1) {
            rc_fail("prompt %d encodes to no tokens", i);
            goto fail;
        }
    if (world > 1 && agree_args(argc, argv)) goto fail;
    lo = (int)((int64_t)pl.n * rank / world);
    mn = (int)((int64_t)pl.n * (rank + 1) / world) - lo; // this rank's prompts: [lo, lo + mn)
    gp.index0 = (uint64_t)lo;
    if (rc_model_load(model_path, &m)) goto fail;
    if (eot_id >= 0 && m.cfg.n_eos < RC_MAX_EOS) {
        int known = 0;
        for (int i = 0; i < m.cfg.n_eos; i++) known |= m.cfg.eos_token_ids[i] == eot_id;
        if (!known) m.cfg.eos_token_ids[m.cfg.n_eos++] = eot_id;
    }
    int max_prompt = 0;
    for (int i = 0; i < pl.n; i++) {
        if (pl.len[i] > max_prompt) max_prompt = pl.len[i];
        if (rank == 0 && (long)pl.len[i] + gp.max_new_tokens > m.cfg.max_position_embeddings)
            fprintf(stderr, "recontrol generate: warning: prompt %d has %d tokens; with --max-new-tokens "
                            "%d it runs past the model's context of %d positions\n",
                    i, pl.len[i], gp.max_new_tokens, m.cfg.max_position_embeddings);
    }
    int slots = batch < mn ? batch : mn > 0 ? mn : 1;
    rc_backend_opts bo = {.device = device, .wtype = dtype, .n_slots = slots,
                          .max_len = max_prompt + gp.max_new_tokens, .max_tokens = 256,
                          .n_threads = threads, .gpu = rc_dist()->local_rank};
    if (rc_backend_open(&be, &m, &bo)) goto fail;
    gp.control = -1;
    if (value_path) {
        if (rc_value_load(&vm, value_path)) goto fail;
        if ((gp.control = rc_backend_control_add(be, &vm)) < 0) {
            rc_fail_ctx("%s", value_path);
            goto fail;
        }
        gp.alpha = alpha;
        gp.steps = steps;
    }
    outs = rc_calloc((size_t)(mn ? mn : 1), sizeof *outs, "outputs");
    if (!outs) goto fail;
    double t0 = rc_time_s();
    if (rc_generate(be, mn, (const int *const *)pl.p + lo, pl.len + lo, &gp, NULL, outs)) goto fail;
    // This rank's lines, then every rank's in rank order on rank 0.
    if (!(ms = open_memstream(&mbuf, &msz))) {
        rc_fail("out of memory (output)");
        goto fail;
    }
    int64_t total = 0;
    for (int j = 0; j < mn; j++) {
        const int i = lo + j;
        const rc_gen_output *g = &outs[j];
        total += g->n_tokens;
        const char *fin = g->finish == RC_FINISH_EOS ? "eos" : "length";
        char *text = NULL;
        if (tok && !(text = rc_tokenizer_decode(tok, g->tokens, g->n_tokens, 1))) {
            rc_fail_ctx("decoding output %d", i);
            goto fail;
        }
        if (json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "index", i);
            cJSON_AddItemToObject(o, "prompt_ids", cJSON_CreateIntArray(pl.p[i], pl.len[i]));
            cJSON_AddItemToObject(o, "ids", cJSON_CreateIntArray(g->tokens, g->n_tokens));
            cJSON_AddStringToObject(o, "finish", fin);
            if (text) cJSON_AddStringToObject(o, "text", text);
            char *line = rc_json_print(o, 0); // valid UTF-8 even when a token ends mid-character
            fprintf(ms, "%s\n", line ? line : "{}");
            free(line);
            cJSON_Delete(o);
        } else if (text) {
            cJSON *str = cJSON_CreateString(text);
            char *line = rc_json_print(str, 0);
            fprintf(ms, "%s\n", line ? line : "\"\"");
            free(line);
            cJSON_Delete(str);
        } else {
            print_ids(ms, g->tokens, g->n_tokens, " ");
            fprintf(ms, "\n");
        }
        free(text);
    }
    if (fclose(ms) != 0) {
        ms = NULL;
        rc_fail("out of memory (output)");
        goto fail;
    }
    ms = NULL;
    if (rc_dist_gather(mbuf, msz, 0, &all, &n_all) || rc_dist_sum_i64(&total, 1)) goto fail;
    double dt = rc_time_s() - t0; // (every rank is done once the gather returns)
    if (rank == 0) {
        if (out_path) { // (checked before the work; this can still fail, never with a NULL kept)
            FILE *f = fopen(out_path, "w");
            if (!f) {
                rc_fail("cannot write %s: %s", out_path, strerror(errno));
                goto fail;
            }
            of = f;
        }
        int werr = fwrite(all, 1, n_all, of) != n_all;
        if (of != stdout) werr |= fclose(of) != 0;
        of = stdout;
        if (werr) {
            rc_fail("cannot write %s", out_path ? out_path : "the output");
            goto fail;
        }
        fprintf(stderr, "recontrol generate: %d prompts, %lld new tokens in %.2f s (%.1f tok/s)%s%s\n", pl.n,
                (long long)total, dt, dt > 0 ? total / dt : 0.0, value_path ? ", RE-Control on" : "",
                world > 1 ? " over all ranks" : "");
    }
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "recontrol generate: error: %s\n", rc_last_error());
    rc = 1;
out:
    if (of && of != stdout) fclose(of);
    if (ms) fclose(ms);
    free(mbuf);
    free(all);
    if (outs) rc_gen_output_free(outs, mn);
    free(outs);
    for (int i = 0; i < pl.n; i++) free(pl.p[i]), free(pl.text[i]);
    free(pl.p);
    free(pl.text);
    rc_tokenizer_free(tok);
    free(pl.len);
    rc_backend_close(be);
    rc_value_free(&vm);
    rc_model_free(&m);
    return rc;
}
