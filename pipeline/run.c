// All stages of RE-Control from one recipe file, calling the stage functions directly:
// extract -> label -> train -> plain and controlled generation on the test prompts -> label both
// -> eval side by side. Finished stages are kept and skipped on a rerun (each stage writes its
// outputs atomically and resumes on its own). The recipe's "device" ("cpu" or "cuda") and
// "weight_dtype" choose the backend of every model stage.
// Under a launcher (`mpirun -np N recontrol pipeline RECIPE`, srun) every rank runs every stage,
// each stage spreading its work over the ranks (pipeline/stages.h, train/train.h); rank 0 prints
// the stage lines and the job's progress.
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/args.h"
#include "base/common.h"
#include "base/dist.h"
#include "base/rundir_lock.h"
#include "base/utf8.h"
#include "engine/control.h"
#include "engine/generate.h"
#include "pipeline/dataset.h"
#include "engine/backend.h"
#include "engine/value_mlp.h"
#include "eval/report.h"
#include "eval/reward_text.h"
#include "pipeline/stages.h"
#include "train/train.h"

typedef struct {
    char name[128];
    char model[1024];
    char reward_model[1024];
    char judge[1024];
    char format[32];
    int chat;
    char train_data[1024];
    char test_data[1024];
    char out[1024];
    int ex_max_new, ex_batch, ex_max_prompt;
    char ex_dtype[16];
    char hidden[128];
    int epochs, batch_size, seed;
    double lr, val_frac;
    int pad_id;                // value.pad_id: the reference's pad convention (-1: EOS step valid)
    double step_size;
    int steps;
    int gen_max_new, gen_batch, gen_max_prompt;
    char turn_prefix[32]; // the reference's begin_word ("" = the default "Human: ")
    int text_train, text_eval; // RC_RTEXT_*: reward-model text for training labels / evaluation
    int eval_cut;              // RC_CUT_*: response cut for diversity (and coherence)
    char coherence_model[1024]; // eval.coherence_model: a BERT directory ("" = no coherence)
    rc_device device;
    rc_wtype wtype;
} recipe;

// "${recipe_dir}/x" -> "<dir of the recipe file>/x"; "default" model -> "" (the default).
static int resolve_path(char *out, size_t cap, const char *val, const char *recipe_dir) {
    const char *tag = "${recipe_dir}";
    size_t nt = strlen(tag);
    int n;
    if (!strncmp(val, tag, nt))
        n = snprintf(out, cap, "%s%s", recipe_dir, val + nt);
    else
        n = snprintf(out, cap, "%s", val);
    if (n < 0 || (size_t)n >= cap) return rc_fail("recipe path too long: %s", val);
    return 0;
}

static const cJSON *obj_get(const cJSON *o, const char *k) {
    return o ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
}

static int get_str(const cJSON *o, const char *k, char *out, size_t cap, const char *dflt,
                   const char *recipe_dir, const char *file) {
    const cJSON *v = obj_get(o, k);
    if (!v) {
        if (!dflt) return rc_fail("%s: recipe is missing \"%s\"", file, k);
        snprintf(out, cap, "%s", dflt);
        return 0;
    }
    if (!cJSON_IsString(v)) return rc_fail("%s: \"%s\" must be a string", file, k);
    return resolve_path(out, cap, v->valuestring, recipe_dir);
}

// Numbers go through base/args' range checks, named "<file>: <section>.<key>".
static int get_int(const cJSON *o, const char *sec, const char *k, int *out, int dflt, long lo,
                   long hi, const char *file) {
    const cJSON *v = obj_get(o, k);
    if (!v) {
        *out = dflt;
        return 0;
    }
    char where[1200];
    snprintf(where, sizeof where, "%s: %s.%s", file, sec, k);
    long x;
    if (rc_json_int(where, v, lo, hi, &x)) return -1;
    *out = (int)x;
    return 0;
}

static int get_real(const cJSON *o, const char *sec, const char *k, double *out, double dflt,
                    double lo, double hi, int open, const char *file) {
    const cJSON *v = obj_get(o, k);
    if (!v) {
        *out = dflt;
        return 0;
    }
    char where[1200];
    snprintf(where, sizeof where, "%s: %s.%s", file, sec, k);
    return rc_json_real(where, v, lo, hi, open, out);
}

static int recipe_load(const char *path, recipe *r) {
    memset(r, 0, sizeof *r);
    char *text = rc_read_file(path, NULL);
    if (!text) return -1;
    cJSON *j = cJSON_Parse(text);
    free(text);
    rc_json_keep_last_keys(j); // a repeated key means its last value, as in Python
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return rc_fail("%s: not a JSON object (recipe files are JSON; see recipes/demo.json)", path);
    }
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", path);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", dirname(tmp));
    const cJSON *ex = obj_get(j, "extract"), *val = obj_get(j, "value"), *ctl = obj_get(j, "control"),
                *gen = obj_get(j, "generate"), *rew = obj_get(j, "reward");
    int rc = 0;
    // Short-circuit so that the message names the first missing or bad key.
    if (get_str(j, "name", r->name, sizeof r->name, "recipe", dir, path) ||
        get_str(j, "model", r->model, sizeof r->model, NULL, dir, path) ||
        get_str(j, "format", r->format, sizeof r->format, "plain", dir, path) ||
        get_str(j, "train_data", r->train_data, sizeof r->train_data, NULL, dir, path) ||
        get_str(j, "test_data", r->test_data, sizeof r->test_data, NULL, dir, path) ||
        get_str(j, "out", r->out, sizeof r->out, NULL, dir, path))
        goto fail;
    if (!rew || !cJSON_IsObject(rew)) {
        rc_fail("%s: recipe needs \"reward\": {\"reward_model\": PATH} or {\"judge\": PATH}", path);
        goto fail;
    }
    rc |= get_str(rew, "reward_model", r->reward_model, sizeof r->reward_model, "", dir, path);
    rc |= get_str(rew, "judge", r->judge, sizeof r->judge, "", dir, path);
    if (rc) goto fail;
    // "train_text" / "eval_text": what the reward model reads for training labels and for the
    // evaluation rewards (turn, reference-train, reference-eval); "eval": {"cut": turn|metrics}
    {
        const cJSON *tt = obj_get(rew, "train_text"), *et = obj_get(rew, "eval_text");
        const cJSON *ev = obj_get(j, "eval"), *cut = obj_get(ev, "cut");
        r->text_train = r->text_eval = RC_RTEXT_TURN;
        r->eval_cut = RC_CUT_TURN;
        if ((tt && (!cJSON_IsString(tt) || rc_rtext_parse(tt->valuestring, &r->text_train))) ||
            (et && (!cJSON_IsString(et) || rc_rtext_parse(et->valuestring, &r->text_eval))) ||
            (cut && (!cJSON_IsString(cut) || rc_cut_parse(cut->valuestring, &r->eval_cut)))) {
            rc_fail_ctx("%s: reward.train_text / reward.eval_text / eval.cut", path);
            goto fail;
        }
        if (get_str(ev, "coherence_model", r->coherence_model, sizeof r->coherence_model, "", dir,
                    path)) {
            rc_fail_ctx("%s: eval.coherence_model", path);
            goto fail;
        }
    }
    if (!r->reward_model[0] == !r->judge[0]) {
        rc_fail("%s: \"reward\" needs exactly one of \"reward_model\" and \"judge\"", path);
        goto fail;
    }
    const cJSON *chat = obj_get(j, "chat");
    r->chat = chat && cJSON_IsTrue(chat);
    // "turn_prefix": the reference's begin_word per model family ("Human: " Vicuna, "User: "
    // Llama-3 and Falcon), used for HH and SHP prompts
    const cJSON *tp = obj_get(j, "turn_prefix");
    if (tp && (!cJSON_IsString(tp) || strlen(tp->valuestring) >= sizeof r->turn_prefix)) {
        rc_fail("%s: \"turn_prefix\" must be a short string such as \"User: \"", path);
        goto fail;
    }
    snprintf(r->turn_prefix, sizeof r->turn_prefix, "%s", tp ? tp->valuestring : "");
    // Short-circuit again: the first bad value is the one named.
    if (get_int(ex, "extract", "max_new_tokens", &r->ex_max_new, 128, 1, RC_MAX_NEW_TOKENS, path) ||
        get_int(ex, "extract", "batch", &r->ex_batch, 32, 1, 4096, path) ||
        get_int(ex, "extract", "max_prompt_tokens", &r->ex_max_prompt, 512, 1, RC_MAX_NEW_TOKENS, path) ||
        get_str(ex, "dtype", r->ex_dtype, sizeof r->ex_dtype, "fp32", dir, path))
        goto fail;
    if (strcmp(r->ex_dtype, "fp32") && strcmp(r->ex_dtype, "fp16") && strcmp(r->ex_dtype, "bf16")) {
        rc_fail("%s: extract.dtype must be fp32, fp16 or bf16, got '%s'", path, r->ex_dtype);
        goto fail;
    }
    const cJSON *hid = obj_get(val, "hidden");
    if (hid && cJSON_IsArray(hid)) {
        size_t off = 0;
        const cJSON *h;
        cJSON_ArrayForEach(h, hid) {
            long w;
            char where[1200];
            snprintf(where, sizeof where, "%s: value.hidden[]", path);
            if (rc_json_int(where, h, 1, 1 << 16, &w)) goto fail;
            off += (size_t)snprintf(r->hidden + off, sizeof r->hidden - off, "%s%d", off ? "," : "",
                                    h->valueint);
        }
    } else {
        snprintf(r->hidden, sizeof r->hidden, "4096");
    }
    // the same ranges as the commands' options (train, extract, generate); val_frac: the share
    // of training sequences held out for validation (the reference trains on the whole train
    // split, its "test loss" is on the test prompts' rollouts: its recipes say 0); the reference
    // skips prompts over 512 tokens for training rollouts only, test generation keeps every
    // prompt up to generate.max_prompt_tokens (default: the extract bound)
    if (get_int(val, "value", "epochs", &r->epochs, 100, 0, RC_TRAIN_MAX_EPOCHS, path) ||
        get_int(val, "value", "batch_size", &r->batch_size, 512, 1, 1 << 24, path) ||
        get_real(val, "value", "lr", &r->lr, 1e-4, 0, RC_TRAIN_MAX_LR, RC_RANGE_OPEN_MIN, path) ||
        get_real(val, "value", "val_frac", &r->val_frac, 0.1, 0, 1, RC_RANGE_OPEN_MAX, path) ||
        get_int(val, "value", "pad_id", &r->pad_id, -1, -1, 1 << 30, path) ||
        get_int(val, "value", "seed", &r->seed, 0, 0, INT32_MAX, path) ||
        get_real(ctl, "control", "step_size", &r->step_size, 0.5, 0, RC_CONTROL_MAX_STEP_SIZE, 0, path) ||
        get_int(ctl, "control", "steps", &r->steps, 30, 0, RC_CONTROL_MAX_STEPS, path) ||
        get_int(gen, "generate", "max_new_tokens", &r->gen_max_new, 128, 1, RC_MAX_NEW_TOKENS, path) ||
        get_int(gen, "generate", "batch", &r->gen_batch, 16, 1, 4096, path) ||
        get_int(gen, "generate", "max_prompt_tokens", &r->gen_max_prompt, r->ex_max_prompt, 1,
                RC_MAX_NEW_TOKENS, path))
        goto fail;
    char dev[16], wt[16];
    if (get_str(j, "device", dev, sizeof dev, "cpu", dir, path) ||
        get_str(j, "weight_dtype", wt, sizeof wt, "f16", dir, path) ||
        rc_device_parse(dev, &r->device) || rc_wtype_parse(wt, &r->wtype)) {
        rc_fail_ctx("%s", path);
        goto fail;
    }
    cJSON_Delete(j);
    return 0;
fail:
    cJSON_Delete(j);
    return -1;
}

// Stage lines go to rank 0's stderr only (the other ranks' would repeat them).
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
    if (rc_dist_rank() != 0) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

static void stage_title(const char *title) { say("\n== %s ==\n", title); }

static int stage_done(const char *title, double t0, int rc) {
    if (rc) return rc_fail_ctx("stage '%s'", title);
    say("  done in %.1f s\n", rc_time_s() - t0);
    return 0;
}

static int rollouts(const recipe *r, const char *title, const char *data, const char *out,
                    int with_acts, const char *value_model, int max_new, int batch) {
    rc_extract_opts o;
    rc_extract_opts_default(&o);
    o.model = strcmp(r->model, "default") ? r->model : NULL;
    o.data = data;
    o.format = r->format;
    o.chat = r->chat;
    o.out = out;
    o.max_new = max_new;
    o.batch = batch;
    o.max_prompt = with_acts ? r->ex_max_prompt : r->gen_max_prompt;
    if (r->turn_prefix[0]) o.turn_prefix = r->turn_prefix;
    if (with_acts) o.dtype = r->ex_dtype;
    else o.no_acts = 1;
    if (value_model) {
        o.value_model = value_model;
        o.step_size = r->step_size;
        o.steps = r->steps;
    }
    o.device = r->device;
    o.wtype = r->wtype;
    stage_title(title);
    say("  extract --data %s --out %s --batch %d --max-new-tokens %d --device %s%s%s\n",
            data, out, batch, max_new, rc_device_name(r->device), value_model ? " --value-model " : "",
            value_model ? value_model : "");
    double t0 = rc_time_s();
    return stage_done(title, t0, rc_extract_run(&o));
}

static int label(const recipe *r, const char *title, const char *run, int text) {
    rc_label_opts o;
    rc_label_opts_default(&o);
    o.run = run;
    o.reward_text = text;
    if (r->reward_model[0]) o.rm = r->reward_model;
    else o.judge = r->judge;
    o.device = r->device;
    o.wtype = r->wtype;
    stage_title(title);
    say("  label --run %s %s %s --device %s --text %s\n", run, o.rm ? "--reward-model" : "--judge",
        o.rm ? o.rm : o.judge, rc_device_name(r->device), rc_rtext_name(text));
    double t0 = rc_time_s();
    return stage_done(title, t0, rc_label_run(&o));
}

// Every input of every stage exists and the output can be written, before stage 1 runs (a bad
// path must not surface at stage 3 after an hour of rollouts).
static int check_inputs(const recipe *r, const char *file) {
    const char *models[] = {r->model, r->reward_model, r->judge};
    const char *keys[] = {"model", "reward.reward_model", "reward.judge"};
    for (int i = 0; i < 3; i++) {
        if (!models[i][0] || !strcmp(models[i], "default")) continue;
        if (!rc_is_dir(models[i]) && rc_check_regular_file(models[i], "an HF model directory or a .gguf file"))
            return rc_fail_ctx("%s: %s", file, keys[i]);
    }
    if (rc_check_regular_file(r->train_data, "a JSONL prompt file"))
        return rc_fail_ctx("%s: train_data", file);
    if (rc_check_regular_file(r->test_data, "a JSONL prompt file"))
        return rc_fail_ctx("%s: test_data", file);
    rc_ds_format fmt;
    if (rc_ds_format_parse(r->format, &fmt)) return rc_fail_ctx("%s: format", file);
    if (fmt == RC_DS_IDS && r->chat) return rc_fail("%s: \"chat\" needs text prompts, not format ids", file);
    if (r->coherence_model[0] && !rc_is_dir(r->coherence_model))
        return rc_fail("%s: eval.coherence_model: %s is not a directory (an HF BERT checkpoint was "
                       "expected)", file, r->coherence_model);
    return rc_check_output_dir("pipeline output", r->out);
}

static int pipeline_stages(const recipe *r_in, const char *recipe_path);

int rc_pipeline_run(const char *recipe_path, const char *out_override, int device_override,
                    int wtype_override) {
    recipe r;
    if (recipe_load(recipe_path, &r) != 0) return -1;
    if (out_override) snprintf(r.out, sizeof r.out, "%s", out_override);
    if (device_override >= 0) r.device = (rc_device)device_override;
    if (wtype_override >= 0) r.wtype = (rc_wtype)wtype_override;
    if (rc_device_check(r.device) || check_inputs(&r, recipe_path)) return -1;
    {
        // every rank must run the same recipe with the same overrides
        char *txt = rc_read_file(recipe_path, NULL);
        if (!txt) return -1;
        size_t tl = strlen(txt);
        char *all = rc_malloc(tl + 1200, "recipe");
        if (all) snprintf(all, tl + 1200, "%s\nout %s, device %d, weights %d", txt, r.out, (int)r.device, (int)r.wtype);
        free(txt);
        int e = all ? rc_dist_agree("recipe", all) : -1;
        free(all);
        if (e) return -1;
    }
    // One pipeline per output directory: the job's rank 0 holds its lock (each stage also locks
    // its own run directory).
    int made = rc_dist_rank() == 0 ? rc_dir_lock(r.out, "pipeline") : 0;
    if (rc_dist_all_ok(made == 0, "locking the output directory")) {
        if (rc_dist_rank() == 0 && made == 0) rc_dir_unlock(r.out);
        return -1;
    }
    int rc = pipeline_stages(&r, recipe_path);
    if (rc_dist_rank() == 0) rc_dir_unlock(r.out);
    return rc;
}

static int pipeline_stages(const recipe *r_in, const char *recipe_path) {
    recipe r = *r_in;
    char train_dir[1100], plain_dir[1100], ctrl_dir[1100], value[1100], report[1100];
    snprintf(train_dir, sizeof train_dir, "%s/train", r.out);
    snprintf(plain_dir, sizeof plain_dir, "%s/test-plain", r.out);
    snprintf(ctrl_dir, sizeof ctrl_dir, "%s/test-control", r.out);
    snprintf(value, sizeof value, "%s/value.safetensors", r.out);
    snprintf(report, sizeof report, "%s/report", r.out);
    say("recontrol pipeline '%s' -> %s (device %s, %d rank%s)\n", r.name, r.out, rc_device_name(r.device),
        rc_dist_size(), rc_dist_size() > 1 ? "s" : "");
    double t0 = rc_time_s();

    if (rollouts(&r, "1/5 rollouts and hidden states (train prompts)", r.train_data, train_dir, 1,
                 NULL, r.ex_max_new, r.ex_batch))
        return -1;
    if (label(&r, "2/5 reward labels (train rollouts)", train_dir, r.text_train)) return -1;

    const char *t3 = "3/5 value network";
    int kept = rc_file_exists(value); // rank 0's view decides for all
    if (rc_dist_bcast(&kept, sizeof kept, 0)) return -1;
    if (kept) {
        stage_title(t3);
        say("  kept %s (delete it and value.ckpt to retrain)\n", value);
    } else {
        rc_train_opts to;
        rc_train_opts_default(&to);
        to.data_dir = train_dir;
        to.out_path = value;
        int nh = rc_value_parse_hidden(r.hidden, to.hidden);
        if (nh < 0) return rc_fail_ctx("%s: value.hidden", recipe_path);
        to.n_hidden = nh;
        to.epochs = r.epochs;
        to.batch_size = r.batch_size;
        to.lr = r.lr;
        to.val_frac = r.val_frac;
        to.pad_id = r.pad_id;
        to.seed = (uint64_t)r.seed;
        to.resume = 1; // a killed stage 3 goes on from value.ckpt (written every epoch)
        // on the GPU with one process; data-parallel ranks train on their CPUs (train.h)
        to.device = r.device == RC_DEVICE_CUDA && rc_dist_size() == 1;
        stage_title(t3);
        char pad[32] = "";
        if (r.pad_id >= 0) snprintf(pad, sizeof pad, " --pad-id %d", r.pad_id);
        say("  train --data %s --out %s --hidden %s --epochs %d --device %s%s\n", train_dir, value,
            r.hidden, r.epochs, to.device ? "cuda" : "cpu", pad);
        double t = rc_time_s();
        if (stage_done(t3, t, rc_train_run(&to))) return -1;
    }

    if (rollouts(&r, "4/5 plain generation (test prompts)", r.test_data, plain_dir, 0, NULL,
                 r.gen_max_new, r.gen_batch))
        return -1;
    if (rollouts(&r, "4/5 RE-Control generation (test prompts)", r.test_data, ctrl_dir, 0, value,
                 r.gen_max_new, r.gen_batch))
        return -1;
    if (label(&r, "5/5 reward labels (plain)", plain_dir, r.text_eval)) return -1;
    if (label(&r, "5/5 reward labels (RE-Control)", ctrl_dir, r.text_eval)) return -1;

    const char *t5 = "5/5 evaluation: plain vs RE-Control";
    stage_title(t5);
    double t = rc_time_s();
    rc_coherence *coh = NULL;
    if (r.coherence_model[0]) {
        say("  eval --coherence-model %s --device %s\n", r.coherence_model, rc_device_name(r.device));
        if (rc_coherence_open(&coh, r.coherence_model, RC_POOL_AUTO, 0, r.device))
            return stage_done(t5, t, -1);
    }
    int erc = rc_eval_report_opts(plain_dir, ctrl_dir, report, 1, stdout,
                                  &(rc_eval_opts){.cut = r.eval_cut, .coh = coh});
    rc_coherence_free(coh);
    if (stage_done(t5, t, erc)) return -1;
    say("\npipeline '%s' finished in %.1f s; report in %s.{json,md}\n", r.name, rc_time_s() - t0, report);
    return 0;
}
