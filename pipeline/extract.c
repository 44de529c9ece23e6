// Stage 1 as a library function (pipeline/stages.h): greedy rollouts for a prompt dataset and
// the post-norm final hidden state of every valid decode step, written as ragged safetensors
// shards plus responses JSONL (layout in eval/rundir.h), on either backend. Step t = 0 is the
// state at the last prompt position; steps run up to and including the one that emits EOS, so a
// sequence has n_tokens states. Crash-safe and resumable: each shard is written acts-first, then
// responses (the commit point), both atomically; a rerun with the same settings continues after
// the last commit. With a value model the rollouts are RE-Control generations.
// Over the ranks of a job (base/dist.h): the prompts that fit are cut into shards of
// --shard-size sequences in dataset order, shard k holds sequences [k*S, k*S + n) and is run by
// rank k % world; rank 0 writes the manifest and, after every rank is done, the combined
// responses. The plan does not depend on the number of ranks, so a run resumes (missing shards
// only) with any number of ranks.
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/common.h"
#include "base/rundir_lock.h"
#include "engine/control.h"
#include "base/default_model.h"
#include "base/dist.h"
#include "base/progress.h"
#include "base/safetensors.h"
#include "engine/backend.h"
#include "engine/generate.h"
#include "eval/rundir.h"
#include "pipeline/codec.h"
#include "pipeline/dataset.h"
#include "pipeline/stages.h"
#include "tokenizer/chat.h"
#include "tokenizer/tokenizer.h"

// ---- capture of states into per-sequence buffers -----------------------------------------

typedef struct {
    int d;
    rc_dtype dt;
    size_t esz;
    int store;         // 0 with --no-acts
    int n;             // sequences in this chunk
    unsigned char **buf; // (n) each (cap[i], d) in dt
    int *len, *cap;    // (n)
    rc_progress *prog;
    int *ntok;               // (n) tokens emitted so far per sequence (progress only)
    int max_new;             //
    const rc_config *cfg;    // EOS ids
    int chunk_done;          // sequences of this chunk finished
} capture_ctx;

static int capture_fn(void *ud, int n, const float *hidden, const int *seq, const int *step) {
    capture_ctx *c = ud;
    if (!c->store) return 0;
    for (int r = 0; r < n; r++) {
        int q = seq[r];
        if (q < 0 || q >= c->n) return rc_fail("capture: sequence %d outside the chunk", q);
        if (step[r] != c->len[q])
            return rc_fail("capture: sequence %d step %d arrived after %d states", q, step[r], c->len[q]);
        if (c->len[q] == c->cap[q]) {
            int nc = c->cap[q] ? c->cap[q] * 2 : 16;
            unsigned char *nb = realloc(c->buf[q], (size_t)nc * (size_t)c->d * c->esz);
            if (!nb) return rc_fail("out of memory storing hidden states");
            c->buf[q] = nb;
            c->cap[q] = nc;
        }
        const float *src = hidden + (size_t)r * c->d;
        unsigned char *dst = c->buf[q] + (size_t)c->len[q] * c->d * c->esz;
        if (c->dt == RC_DT_F32) {
            memcpy(dst, src, sizeof(float) * (size_t)c->d);
        } else {
            uint16_t *h = (uint16_t *)dst;
            for (int i = 0; i < c->d; i++)
                h[i] = c->dt == RC_DT_F16 ? rc_f32_to_f16(src[i]) : rc_f32_to_bf16(src[i]);
        }
        c->len[q]++;
    }
    return 0;
}

static int token_fn(void *ud, int seq, int token) {
    capture_ctx *c = ud;
    c->prog->tokens++;
    if (seq >= 0 && seq < c->n) {
        int fin = ++c->ntok[seq] >= c->max_new;
        for (int i = 0; i < c->cfg->n_eos && !fin; i++) fin = c->cfg->eos_token_ids[i] == token;
        if (fin) {
            c->prog->done++; // a finished sequence counts for the ETA as soon as it ends
            c->chunk_done++;
        }
    }
    rc_progress_tick(c->prog, 0);
    return 0;
}

// ---- run manifest --------------------------------------------------------------------------

static cJSON *settings_json(const rc_extract_opts *o, const char *model_path) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "model", model_path);
    cJSON_AddStringToObject(j, "data", o->data);
    cJSON_AddStringToObject(j, "data_format", o->format);
    if (o->turn_prefix) cJSON_AddStringToObject(j, "turn_prefix", o->turn_prefix);
    cJSON_AddBoolToObject(j, "chat", o->chat);
    cJSON_AddNumberToObject(j, "max_new_tokens", (double)o->max_new);
    cJSON_AddNumberToObject(j, "max_prompt_tokens", (double)o->max_prompt);
    cJSON_AddStringToObject(j, "dtype", o->dtype);
    cJSON_AddNumberToObject(j, "shard_size", (double)o->shard_size);
    cJSON_AddNumberToObject(j, "limit", (double)o->limit);
    cJSON_AddBoolToObject(j, "acts", !o->no_acts);
    cJSON_AddStringToObject(j, "value_model", o->value_model ? o->value_model : "");
    cJSON_AddNumberToObject(j, "step_size", o->value_model ? o->step_size : 0);
    cJSON_AddNumberToObject(j, "steps", o->value_model ? (double)o->steps : 0);
    // the numbers depend on where they are computed: a resume must use the same engine
    char eng[32];
    cJSON_AddStringToObject(j, "engine", rc_engine_name(o->device, o->wtype, eng, sizeof eng));
    cJSON *eos = cJSON_AddArrayToObject(j, "extra_eos_ids");
    for (int i = 0; i < o->n_extra_eos; i++) cJSON_AddItemToArray(eos, cJSON_CreateNumber(o->extra_eos[i]));
    return j;
}

static int write_json_atomic(const char *path, const cJSON *j) {
    char *s = cJSON_Print(j);
    if (!s) return rc_fail("out of memory serialising %s", path);
    size_t n = strlen(s);
    char *t = realloc(s, n + 2);
    if (!t) {
        free(s);
        return rc_fail("out of memory");
    }
    t[n] = '\n';
    t[n + 1] = 0;
    int rc = rc_write_file_atomic(path, t, n + 1);
    free(t);
    return rc;
}

// Compares the settings of an existing run with ours; fails naming the first difference.
static int check_resume(const char *manifest, const cJSON *ours) {
    size_t len;
    char *txt = rc_read_file(manifest, &len);
    if (!txt) return -1;
    cJSON *old = cJSON_Parse(txt);
    free(txt);
    if (!old) return rc_fail("%s is not valid JSON (use --overwrite to start again)", manifest);
    const cJSON *os = cJSON_GetObjectItemCaseSensitive(old, "settings");
    int rc = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, ours) {
        const cJSON *v = os ? cJSON_GetObjectItemCaseSensitive(os, it->string) : NULL;
        if (!v || !cJSON_Compare(v, it, 1)) {
            char *a = v ? cJSON_PrintUnformatted(v) : NULL, *b = cJSON_PrintUnformatted(it);
            rc = rc_fail("%s: the run in this directory used %s = %s, this call asks for %s; resume "
                         "needs the same settings (or use --overwrite, or another --out)",
                         manifest, it->string, a ? a : "(absent)", b ? b : "?");
            free(a);
            free(b);
            break;
        }
    }
    cJSON_Delete(old);
    return rc;
}

static int mkdir_p(const char *path) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp) return rc_fail("path too long");
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(tmp, 0755);
            *p = '/';
        }
    if (mkdir(tmp, 0755) != 0 && !rc_is_dir(tmp))
        return rc_fail("cannot create directory %s: %s", path, strerror(errno));
    return 0;
}

// Removes shard files from k on (stale files past the last commit, or everything).
static void remove_shards_from(const char *dir, int k) {
    char p[4096];
    for (int misses = 0; misses < 2; k++) {
        int any = 0;
        rc_run_acts_path(p, sizeof p, dir, k);
        if (rc_file_exists(p)) any = 1, unlink(p);
        rc_run_resp_path(p, sizeof p, dir, k);
        if (rc_file_exists(p)) any = 1, unlink(p);
        misses = any ? 0 : misses + 1;
    }
}

// Concatenates the shard responses into DIR/responses.jsonl (atomically).
static int write_combined(const char *dir, int n_shards) {
    size_t cap = 1 << 16, len = 0;
    char *all = rc_malloc(cap, "responses"), path[4096];
    if (!all) return -1;
    for (int k = 0; k < n_shards; k++) {
        rc_run_resp_path(path, sizeof path, dir, k);
        size_t n;
        char *b = rc_read_file(path, &n);
        if (!b) {
            free(all);
            return -1;
        }
        if (len + n + 1 > cap) {
            while (len + n + 1 > cap) cap *= 2;
            char *na = realloc(all, cap);
            if (!na) {
                free(b);
                free(all);
                return rc_fail("out of memory joining responses");
            }
            all = na;
        }
        memcpy(all + len, b, n);
        len += n;
        free(b);
    }
    rc_path_join(path, sizeof path, dir, "responses.jsonl");
    int rc = rc_write_file_atomic(path, all, len);
    free(all);
    return rc;
}

// The prompt ids of one dataset item as the model sees them (rendered in the chat format with
// --chat). *ids malloc'd. 0 / -1 naming file:line.
static int encode_item(const rc_extract_opts *o, rc_ds_format fmt, rc_codec *codec, const rc_chat_spec *chat,
                       const rc_ds_item *di, int **ids, int *nid) {
    *ids = NULL;
    *nid = 0;
    if (fmt == RC_DS_IDS) {
        if (!(*ids = rc_malloc(sizeof(int) * (size_t)di->n_ids, "ids"))) return -1;
        memcpy(*ids, di->ids, sizeof(int) * (size_t)di->n_ids);
        *nid = di->n_ids;
        return 0;
    }
    if (chat) {
        rc_chat_msg msg = {"user", di->prompt};
        char *txt = rc_chat_render(chat, &msg, 1, 1);
        int e = txt ? rc_tokenizer_encode(codec->tok, txt, strlen(txt), 0, ids, nid) : -1;
        free(txt);
        if (e) return rc_fail_ctx("%s:%ld: rendering and tokenizing the chat prompt", o->data, di->line);
        return 0;
    }
    if (rc_codec_encode(codec, di->prompt, ids, nid))
        return rc_fail_ctx("%s:%ld: tokenizing the prompt", o->data, di->line);
    return 0;
}

// Rank 0, before any rank writes: creates the directory (emptied with --overwrite), checks the
// settings of a run to resume against ours and marks the manifest running. 0 / -1.
static int prepare_dir(const rc_extract_opts *o, const cJSON *settings, const char *manifest_path,
                       cJSON **manifest) {
    char path[4096];
    if (mkdir_p(o->out)) return -1;
    if (o->overwrite) {
        remove_shards_from(o->out, 0);
        // outputs of later stages describe the old responses: drop them too
        const char *later[] = {"responses.jsonl", "rewards.jsonl", "label.json", "eval.json", "eval.md"};
        rc_run_remove_partial_rewards(o->out);
        for (size_t i = 0; i < sizeof later / sizeof later[0]; i++) {
            rc_path_join(path, sizeof path, o->out, later[i]);
            unlink(path);
        }
        unlink(manifest_path);
    }
    if (rc_file_exists(manifest_path)) {
        if (check_resume(manifest_path, settings)) return -1;
    } else if (rc_run_count_shards(o->out) > 0) {
        return rc_fail("%s holds responses-*.jsonl but no extract.json: not a run this command can resume "
                       "(use --overwrite or another --out)",
                       o->out);
    }
    *manifest = cJSON_CreateObject();
    cJSON_AddStringToObject(*manifest, "format", "recontrol-extract-v1");
    cJSON_AddStringToObject(*manifest, "status", "running");
    cJSON_AddItemToObject(*manifest, "settings", cJSON_Duplicate(settings, 1));
    return write_json_atomic(manifest_path, *manifest);
}

// Rank 0, once every shard is committed: the combined responses and the manifest's totals.
static int finish_run(const rc_extract_opts *o, cJSON *manifest, const char *manifest_path, int n_shards,
                      const rc_dataset *ds, int n_kept, int d) {
    if (write_combined(o->out, n_shards)) return -1;
    cJSON_ReplaceItemInObject(manifest, "status", cJSON_CreateString("complete"));
    cJSON_AddNumberToObject(manifest, "n_records", ds->n);
    cJSON_AddNumberToObject(manifest, "n_bad_lines", (double)ds->n_bad);
    cJSON_AddNumberToObject(manifest, "n_sequences", n_kept);
    cJSON_AddNumberToObject(manifest, "n_skipped_long", ds->n - n_kept);
    cJSON_AddNumberToObject(manifest, "n_shards", n_shards);
    cJSON_AddNumberToObject(manifest, "hidden_size", d);
    return write_json_atomic(manifest_path, manifest);
}

// Every option in its range before anything is loaded or written (the CLI parser checks the same
// ranges; this covers library callers such as the pipeline's recipes).
static int check_opts(const rc_extract_opts *o) {
    if (!o->data) return rc_fail("no dataset given (--data)");
    if (!o->out) return rc_fail("no run directory given (--out)");
    if (strcmp(o->dtype, "fp32") && strcmp(o->dtype, "fp16") && strcmp(o->dtype, "bf16"))
        return rc_fail("--dtype must be fp32, fp16 or bf16, got '%s'", o->dtype);
    if (o->max_new < 1 || o->max_new > RC_MAX_NEW_TOKENS)
        return rc_fail("--max-new-tokens expects an integer in [1, %d], got %ld", RC_MAX_NEW_TOKENS,
                       o->max_new);
    if (o->max_prompt < 1 || o->max_prompt > RC_MAX_NEW_TOKENS)
        return rc_fail("--max-prompt-tokens expects an integer in [1, %d], got %ld", RC_MAX_NEW_TOKENS,
                       o->max_prompt);
    if (o->batch < 1 || o->batch > 4096)
        return rc_fail("--batch expects an integer in [1, 4096], got %ld", o->batch);
    if (o->shard_size < 1 || o->shard_size > (1 << 24))
        return rc_fail("--shard-size expects an integer in [1, %d], got %ld", 1 << 24, o->shard_size);
    if (o->threads < 0 || o->threads > 4096)
        return rc_fail("--threads expects an integer in [0, 4096], got %ld", o->threads);
    if (o->limit < 0) return rc_fail("--limit expects a non-negative integer, got %ld", o->limit);
    if (o->value_model && rc_check_regular_file(o->value_model, "a value model (.safetensors)"))
        return -1;
    return rc_control_check_params(o->step_size, o->steps);
}

void rc_extract_opts_default(rc_extract_opts *o) {
    memset(o, 0, sizeof *o);
    o->format = "hh";
    o->dtype = "bf16";
    o->max_new = 128;
    o->batch = 32;
    o->max_prompt = 512;
    o->shard_size = 256;
    o->steps = 30;
    o->step_size = 0.5;
    o->device = RC_DEVICE_CPU;
    o->wtype = RC_WT_F16;
}

int rc_extract_run(const rc_extract_opts *o) {
    int rc = -1;
    rc_dataset ds = {0};
    rc_model m = {0};
    int model_loaded = 0, value_ok = 0, locked = 0;
    rc_backend *be = NULL;
    rc_codec codec = {0};
    rc_value_mlp vm = {0};
    cJSON *settings = NULL, *manifest = NULL;
    int **pids = NULL;
    int *plen = NULL, *pitem = NULL;
    rc_gen_output *gout = NULL;
    capture_ctx cap = {0};
    char path[4096];
    int *plan = NULL, *mine = NULL, prog_on = 0;

    char default_path[4096];
    const char *model_path = o->model;
    if (!model_path) {
        if (rc_default_model_require(default_path, sizeof default_path)) goto done;
        model_path = default_path;
    }
    rc_ds_format fmt;
    if (rc_ds_format_parse(o->format, &fmt)) goto done;
    if (fmt == RC_DS_IDS && o->chat) {
        rc_fail("--chat needs text prompts; --format ids gives token ids");
        goto done;
    }

    if (check_opts(o) || rc_check_output_dir("run directory", o->out)) goto done;
    const int rank = rc_dist_rank(), world = rc_dist_size();

    // Data.
    if (rc_dataset_load_turn(o->data, fmt, o->limit, o->turn_prefix, &ds, rank == 0 ? stderr : NULL)) goto done;

    // Model, tokenizer, optional control.
    if (rc_model_load(model_path, &m)) goto done;
    model_loaded = 1;
    if (fmt == RC_DS_IDS) rc_dataset_check_ids(&ds, o->data, m.cfg.vocab_size, rank == 0 ? stderr : NULL);
    for (int i = 0; i < o->n_extra_eos; i++)
        if (m.cfg.n_eos < RC_MAX_EOS) m.cfg.eos_token_ids[m.cfg.n_eos++] = o->extra_eos[i];
    if (rc_codec_open(&codec, model_path, &m, fmt == RC_DS_IDS)) goto done;
    rc_chat_spec chat;
    if (o->chat) {
        const char *tpl = rc_tokenizer_chat_template(codec.tok);
        if (!tpl) {
            rc_fail("%s has no chat template: drop --chat (the prompt is then used as plain text)", model_path);
            goto done;
        }
        if (rc_chat_spec_from_template(tpl, &chat)) goto done;
        // The turn end ("<|im_end|>", "<|eot_id|>") stops a sequence like EOS.
        const char *eot = rc_chat_end_of_turn(&chat);
        int eot_id = eot ? rc_tokenizer_token_id(codec.tok, eot) : -1;
        int known = 0;
        for (int i = 0; i < m.cfg.n_eos; i++) known |= m.cfg.eos_token_ids[i] == eot_id;
        if (eot_id >= 0 && !known && m.cfg.n_eos < RC_MAX_EOS) m.cfg.eos_token_ids[m.cfg.n_eos++] = eot_id;
        fprintf(stderr, "[extract] chat format %s (turn end id %d)\n", rc_chat_format_name(chat.format), eot_id);
    }
    if (o->value_model) {
        if (rc_value_load(&vm, o->value_model)) goto done;
        value_ok = 1;
    }
    if (rank == 0) fprintf(stderr, "[extract] %s: %d prompts read, %ld lines skipped\n", o->data, ds.n, ds.n_bad);
    // The plan (see the top of this file). Every rank reads the same records; each tokenizes
    // every world-th one and the lengths are shared (summed with zeros: exact).
    {
        char txt[160];
        snprintf(txt, sizeof txt, "%s: %d records, %ld bad lines", o->data, ds.n, ds.n_bad);
        if (rc_dist_agree("prompts read", txt)) goto done;
    }
    const int S = (int)o->shard_size;
    plan = rc_malloc(sizeof(int) * (size_t)(ds.n ? ds.n : 1) + 1, "shard plan");
    int64_t *plen_all = rc_calloc((size_t)(ds.n ? ds.n : 1), sizeof(int64_t), "prompt lengths");
    if (!plan || !plen_all) {
        free(plen_all);
        goto done;
    }
    for (int i = rank; i < ds.n; i += world) {
        int *ids = NULL, nid = 0;
        if (encode_item(o, fmt, &codec, o->chat ? &chat : NULL, &ds.items[i], &ids, &nid)) {
            free(plen_all);
            goto done;
        }
        free(ids);
        plen_all[i] = nid;
    }
    if (rc_dist_sum_i64(plen_all, (size_t)ds.n)) {
        free(plen_all);
        goto done;
    }
    int n_kept = 0;
    for (int i = 0; i < ds.n; i++) {
        if (plen_all[i] > o->max_prompt) {
            if (rank == 0)
                fprintf(stderr, "%s:%ld: prompt has %lld tokens, over --max-prompt-tokens %ld; skipped\n",
                        o->data, ds.items[i].line, (long long)plen_all[i], o->max_prompt);
            continue;
        }
        if (rank == 0 && plen_all[i] + o->max_new > m.cfg.max_position_embeddings)
            fprintf(stderr, "%s:%ld: warning: prompt of %lld tokens + --max-new-tokens %ld runs past the "
                            "model's context of %d positions\n",
                    o->data, ds.items[i].line, (long long)plen_all[i], o->max_new, m.cfg.max_position_embeddings);
        plan[n_kept++] = i;
    }
    free(plen_all);
    const int n_shards = (n_kept + S - 1) / S;
    int max_len = (int)(o->max_prompt + o->max_new);
    int max_tokens = (int)(o->batch + (o->max_prompt < 512 ? o->max_prompt : 512));
    rc_backend_opts bo = {.device = o->device, .wtype = o->wtype, .n_slots = (int)o->batch,
                          .max_len = max_len, .max_tokens = max_tokens, .n_threads = (int)o->threads,
                          .gpu = rc_dist()->local_rank};
    if (rc_backend_open(&be, &m, &bo)) goto done;
    int control = -1;
    if (value_ok && (control = rc_backend_control_add(be, &vm)) < 0) {
        rc_fail_ctx("%s", o->value_model);
        goto done;
    }


    // Everything is validated and loaded: only now is the run directory touched. Settings: the
    // same on every rank; rank 0 locks and prepares the directory while the others wait.
    settings = settings_json(o, model_path);
    {
        char *txt = cJSON_PrintUnformatted(settings);
        int e = txt ? rc_dist_agree("extract settings", txt) : rc_fail("out of memory");
        free(txt);
        if (e) goto done;
    }
    char manifest_path[4096];
    rc_path_join(manifest_path, sizeof manifest_path, o->out, "extract.json");
    int setup = 0;
    if (rank == 0) { // the job is one writer: its rank 0 holds the lock
        setup = rc_dir_lock(o->out, "extract");
        if (!setup) {
            locked = 1;
            rc_clean_stale_tmp(o->out, stderr); // no rank has written yet
            setup = prepare_dir(o, settings, manifest_path, &manifest);
        }
    }
    if (rc_dist_all_ok(setup == 0, "preparing the run directory")) goto done;

    if (rank == 0) remove_shards_from(o->out, n_shards); // files of an older, longer plan
    if (rc_dist_barrier()) goto done;
    // Committed shards are kept; this rank runs its own among the others.
    int n_committed = 0, n_mine = 0;
    int64_t job_todo = 0;
    mine = rc_malloc(sizeof(int) * (size_t)(n_shards ? n_shards : 1), "shard list");
    if (!mine) goto done;
    for (int k = 0; k < n_shards; k++) {
        rc_run_resp_path(path, sizeof path, o->out, k);
        if (rc_file_exists(path)) {
            n_committed++;
            continue;
        }
        job_todo += k + 1 < n_shards ? S : n_kept - (int64_t)k * S;
        if (k % world == rank) mine[n_mine++] = k;
    }
    // Every rank has looked at the directory before any writes to it: otherwise a quick rank's
    // first new shard can be counted as committed by a slower one (the shards each rank runs do
    // not depend on it, but the job's remaining work and the resume line would be wrong).
    if (rc_dist_barrier()) goto done;
    if (rank == 0 && n_committed > 0)
        fprintf(stderr, "[extract] resuming %s: %d of %d shards committed; %lld sequences left for %d rank%s\n",
                o->out, n_committed, n_shards, (long long)job_todo, world, world > 1 ? "s" : "");

    const int d = m.cfg.hidden_size;
    rc_dtype dt = !strcmp(o->dtype, "fp32") ? RC_DT_F32 : !strcmp(o->dtype, "fp16") ? RC_DT_F16 : RC_DT_BF16;
    pids = rc_calloc((size_t)S, sizeof *pids, "prompt ids");
    plen = rc_calloc((size_t)S, sizeof *plen, "prompt lengths");
    pitem = rc_calloc((size_t)S, sizeof *pitem, "prompt items");
    gout = rc_calloc((size_t)S, sizeof *gout, "outputs");
    cap.buf = rc_calloc((size_t)S, sizeof *cap.buf, "state buffers");
    cap.len = rc_calloc((size_t)S, sizeof *cap.len, "state lengths");
    cap.cap = rc_calloc((size_t)S, sizeof *cap.cap, "state capacities");
    cap.ntok = rc_calloc((size_t)S, sizeof *cap.ntok, "token counts");
    if (!pids || !plen || !pitem || !gout || !cap.buf || !cap.len || !cap.cap || !cap.ntok) goto done;
    cap.max_new = (int)o->max_new;
    cap.cfg = &m.cfg;
    cap.d = d;
    cap.dt = dt;
    cap.esz = rc_dtype_size(dt);
    cap.store = !o->no_acts;

    rc_gen_params gp = {0};
    gp.max_new_tokens = (int)o->max_new;
    gp.stop_at_eos = 1;
    gp.sample.temperature = 0;
    gp.sample.top_p = 1;
    gp.control = control;
    gp.alpha = (float)o->step_size;
    gp.steps = control >= 0 ? (int)o->steps : 0;
    rc_gen_hooks hooks = {.capture = capture_fn, .on_token = token_fn, .ud = &cap};
    rc_progress prog;
    if (rc_progress_init_job(&prog, "extract", job_todo)) goto done;
    prog_on = 1;
    cap.prog = &prog;
    const char *abort_env = getenv("RC_EXTRACT_ABORT_AFTER_SHARDS"); // test hook: simulate a kill
    const char *abort_rank = getenv("RC_EXTRACT_ABORT_RANK");        // (only on this rank)
    long abort_after = abort_env && (!abort_rank || atoi(abort_rank) == rank) ? atol(abort_env) : -1;
    int shards_this_run = 0;

    for (int mi = 0; mi < n_mine; mi++) {
        const int k = mine[mi];
        const int64_t next_seq = (int64_t)k * S;
        int n = (int)(n_kept - next_seq < S ? n_kept - next_seq : S);
        for (int i = 0; i < n; i++) {
            pitem[i] = plan[next_seq + i];
            if (encode_item(o, fmt, &codec, o->chat ? &chat : NULL, &ds.items[pitem[i]], &pids[i], &plen[i]))
                goto done;
        }
        // item_end: one past the last item, or the dataset's end for the last (short) shard
        int64_t it = n < S ? ds.n : pitem[n - 1] + 1;
        cap.n = n;
        cap.chunk_done = 0;
        for (int i = 0; i < n; i++) cap.len[i] = cap.ntok[i] = 0;
        if (rc_generate(be, n, (const int *const *)pids, plen, &gp, &hooks, gout)) {
            rc_fail_ctx("generating shard %d", k);
            rc_gen_output_free(gout, n);
            goto done;
        }
        // Shard arrays.
        int64_t n_steps = 0;
        for (int i = 0; i < n; i++) {
            if (cap.store && cap.len[i] != gout[i].n_tokens) {
                rc_fail("internal: sequence %d has %d states for %d tokens", i, cap.len[i], gout[i].n_tokens);
                goto done;
            }
            n_steps += gout[i].n_tokens;
        }
        if (cap.store) {
            unsigned char *hid = rc_malloc((size_t)n_steps * d * cap.esz + 1, "shard states");
            int64_t *off = rc_malloc(sizeof(int64_t) * (size_t)(n + 1), "shard offsets");
            if (!hid || !off) {
                free(hid);
                free(off);
                goto done;
            }
            off[0] = 0;
            for (int i = 0; i < n; i++) {
                memcpy(hid + (size_t)off[i] * d * cap.esz, cap.buf[i], (size_t)cap.len[i] * d * cap.esz);
                off[i + 1] = off[i] + cap.len[i];
            }
            char s_first[32], s_n[32], s_ib[32], s_ie[32];
            snprintf(s_first, sizeof s_first, "%lld", (long long)next_seq);
            snprintf(s_n, sizeof s_n, "%d", n);
            snprintf(s_ib, sizeof s_ib, "%d", pitem[0]);
            snprintf(s_ie, sizeof s_ie, "%lld", (long long)it);
            const char *meta[] = {"format", "recontrol-acts-v1", "first_seq", s_first, "n_seq", s_n,
                                  "item_begin", s_ib, "item_end", s_ie, "dtype", o->dtype, NULL};
            rc_st_entry ent[2] = {{"hidden", dt, 2, {n_steps, d}, hid}, {"offsets", RC_DT_I64, 1, {n + 1}, off}};
            rc_run_acts_path(path, sizeof path, o->out, k);
            int wr = rc_st_write(path, ent, 2, meta);
            free(hid);
            free(off);
            if (wr) goto done;
        }
        // Responses (the commit point).
        size_t rcap = 1 << 16, rlen = 0;
        char *rbuf = rc_malloc(rcap, "responses");
        if (!rbuf) goto done;
        for (int i = 0; i < n; i++) {
            rc_ds_item *di = &ds.items[pitem[i]];
            int nt = gout[i].n_tokens;
            int ndec = gout[i].finish == RC_FINISH_EOS && nt > 0 ? nt - 1 : nt;
            char *resp = rc_codec_decode_after(&codec, pids[i], plen[i], gout[i].tokens, ndec);
            char *ptxt = fmt == RC_DS_IDS ? rc_ids_to_text(pids[i], plen[i]) : NULL;
            rc_resp r = {.index = next_seq + i, .item = pitem[i], .line = di->line,
                         .prompt = ptxt ? ptxt : di->prompt, .response = resp, .prompt_ids = pids[i],
                         .n_prompt_ids = plen[i], .tokens = gout[i].tokens, .n_tokens = nt,
                         .finish = gout[i].finish, .reference = di->reference};
            char *line = resp ? rc_resp_to_json(&r) : NULL;
            free(resp);
            free(ptxt);
            if (!line) {
                free(rbuf);
                goto done;
            }
            size_t ln = strlen(line);
            if (rlen + ln + 2 > rcap) {
                while (rlen + ln + 2 > rcap) rcap *= 2;
                char *nb = realloc(rbuf, rcap);
                if (!nb) {
                    free(line);
                    free(rbuf);
                    rc_fail("out of memory");
                    goto done;
                }
                rbuf = nb;
            }
            memcpy(rbuf + rlen, line, ln);
            rlen += ln;
            rbuf[rlen++] = '\n';
            free(line);
        }
        rc_run_resp_path(path, sizeof path, o->out, k);
        int wr = rc_write_file_atomic(path, rbuf, rlen);
        free(rbuf);
        if (wr) goto done;
        rc_gen_output_free(gout, n);
        for (int i = 0; i < n; i++) {
            free(pids[i]);
            pids[i] = NULL;
        }
        prog.done += n - cap.chunk_done; // (normally 0: every sequence was counted as it ended)
        shards_this_run++;
        rc_progress_tick(&prog, 1);
        if (abort_after >= 0 && shards_this_run >= abort_after) {
            fprintf(stderr, "[extract] RC_EXTRACT_ABORT_AFTER_SHARDS=%ld: rank %d stopping abruptly (test hook)\n",
                    abort_after, rank);
            if (abort_rank) raise(SIGKILL); // one rank of a job crashing
            _exit(3);
        }
    }

    // Finished here; once every rank is, rank 0 writes the combined responses and the totals.
    prog_on = 0;
    if (rc_progress_end(&prog)) goto done;
    int64_t job_tokens = prog.tokens;
    if (rc_dist_sum_i64(&job_tokens, 1)) goto done;
    int fin = rank == 0 ? finish_run(o, manifest, manifest_path, n_shards, &ds, n_kept, d) : 0;
    if (rc_dist_all_ok(fin == 0, "writing the combined responses")) goto done;
    if (rank == 0)
        fprintf(stderr,
                "[extract] done: %d sequences in %d shards; %d prompts over %ld tokens skipped; %ld bad "
                "lines; %lld new tokens this call (%.1f tok/s%s)\n",
                n_kept, n_shards, ds.n - n_kept, o->max_prompt, ds.n_bad, (long long)job_tokens,
                job_tokens / (rc_time_s() - prog.t0 + 1e-9), world > 1 ? ", all ranks" : "");
    rc = 0;
done:
    if (prog_on) free(prog.table);
    free(plan);
    free(mine);
    if (pids)
        for (long i = 0; i < o->shard_size; i++) free(pids[i]);
    free(pids);
    if (gout) rc_gen_output_free(gout, (int)o->shard_size);
    free(plen);
    free(pitem);
    free(gout);
    if (cap.buf)
        for (long i = 0; i < o->shard_size; i++) free(cap.buf[i]);
    free(cap.buf);
    free(cap.len);
    free(cap.cap);
    free(cap.ntok);
    rc_backend_close(be);
    if (value_ok) rc_value_free(&vm);
    rc_codec_close(&codec);
    if (model_loaded) rc_model_free(&m);
    rc_dataset_free(&ds);
    cJSON_Delete(settings);
    cJSON_Delete(manifest);
    if (locked) rc_dir_unlock(o->out);
    return rc;
}

