// `recontrol pipeline RECIPE.json`: runs the five stages of RE-Control from one recipe file by
// calling the stage subcommands in-process (extract -> label -> train -> generate plain and
// controlled on the test prompts -> label both -> eval side by side). Finished stages are kept
// and skipped on a rerun (each stage writes its outputs atomically and resumes on its own).
// `recontrol demo` is this pipeline on the built-in demo recipe and the default model.
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <getopt.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "base/common.h"

#define MAX_ARGS 48

typedef struct {
    int argc;
    char *argv[MAX_ARGS];
    char store[MAX_ARGS][1100];
} argv_builder;

static void ab_init(argv_builder *b, const char *cmd) {
    b->argc = 0;
    snprintf(b->store[0], sizeof b->store[0], "%s", cmd);
    b->argv[b->argc++] = b->store[0];
}

static void ab_add(argv_builder *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ab_add(argv_builder *b, const char *fmt, ...) {
    if (b->argc >= MAX_ARGS - 1) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->store[b->argc], sizeof b->store[0], fmt, ap);
    va_end(ap);
    b->argv[b->argc] = b->store[b->argc];
    b->argc++;
    b->argv[b->argc] = NULL;
}

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
    double lr;
    double step_size;
    int steps;
    int gen_max_new, gen_batch;
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

static int get_num(const cJSON *o, const char *k, double *out, double dflt, const char *file) {
    const cJSON *v = obj_get(o, k);
    if (!v) {
        *out = dflt;
        return 0;
    }
    if (!cJSON_IsNumber(v)) return rc_fail("%s: \"%s\" must be a number", file, k);
    *out = v->valuedouble;
    return 0;
}

static int recipe_load(const char *path, recipe *r) {
    memset(r, 0, sizeof *r);
    char *text = rc_read_file(path, NULL);
    if (!text) return -1;
    cJSON *j = cJSON_Parse(text);
    free(text);
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
    double d = 0;
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
    if (!r->reward_model[0] == !r->judge[0]) {
        rc_fail("%s: \"reward\" needs exactly one of \"reward_model\" and \"judge\"", path);
        goto fail;
    }
    const cJSON *chat = obj_get(j, "chat");
    r->chat = chat && cJSON_IsTrue(chat);
    rc |= get_num(ex, "max_new_tokens", &d, 128, path), r->ex_max_new = (int)d;
    rc |= get_num(ex, "batch", &d, 32, path), r->ex_batch = (int)d;
    rc |= get_num(ex, "max_prompt_tokens", &d, 512, path), r->ex_max_prompt = (int)d;
    rc |= get_str(ex, "dtype", r->ex_dtype, sizeof r->ex_dtype, "fp32", dir, path);
    const cJSON *hid = obj_get(val, "hidden");
    if (hid && cJSON_IsArray(hid)) {
        size_t off = 0;
        const cJSON *h;
        cJSON_ArrayForEach(h, hid) {
            if (!cJSON_IsNumber(h) || h->valueint <= 0) {
                rc_fail("%s: value.hidden must be a list of positive widths", path);
                goto fail;
            }
            off += (size_t)snprintf(r->hidden + off, sizeof r->hidden - off, "%s%d", off ? "," : "",
                                    h->valueint);
        }
    } else {
        snprintf(r->hidden, sizeof r->hidden, "4096");
    }
    rc |= get_num(val, "epochs", &d, 100, path), r->epochs = (int)d;
    rc |= get_num(val, "batch_size", &d, 512, path), r->batch_size = (int)d;
    rc |= get_num(val, "lr", &r->lr, 1e-4, path);
    rc |= get_num(val, "seed", &d, 0, path), r->seed = (int)d;
    rc |= get_num(ctl, "step_size", &r->step_size, 0.5, path);
    rc |= get_num(ctl, "steps", &d, 30, path), r->steps = (int)d;
    rc |= get_num(gen, "max_new_tokens", &d, 128, path), r->gen_max_new = (int)d;
    rc |= get_num(gen, "batch", &d, 16, path), r->gen_batch = (int)d;
    if (rc) goto fail;
    cJSON_Delete(j);
    return 0;
fail:
    cJSON_Delete(j);
    return -1;
}

static int run_stage(const char *title, rc_cmd_fn fn, argv_builder *b) {
    if (!fn) return rc_fail("stage '%s' is not built into this binary", b->argv[0]);
    fprintf(stderr, "\n== %s ==\n  recontrol", title);
    for (int i = 0; i < b->argc; i++) fprintf(stderr, " %s", b->argv[i]);
    fprintf(stderr, "\n");
    double t0 = rc_time_s();
    optind = 0; // each stage parses its own options with getopt
    int rc = fn(b->argc, b->argv);
    optind = 0;
    if (rc != 0) return rc_fail("stage '%s' failed (exit %d)", title, rc);
    fprintf(stderr, "  done in %.1f s\n", rc_time_s() - t0);
    return 0;
}

static void add_model(argv_builder *b, const char *flag, const char *model) {
    if (strcmp(model, "default") != 0) {
        ab_add(b, "%s", flag);
        ab_add(b, "%s", model);
    }
}

static int rollouts(const recipe *r, const char *title, const char *data, const char *out,
                    int with_acts, const char *value_model, int max_new, int batch) {
    argv_builder b;
    ab_init(&b, "extract");
    add_model(&b, "--model", r->model);
    ab_add(&b, "--data");
    ab_add(&b, "%s", data);
    ab_add(&b, "--format");
    ab_add(&b, "%s", r->format);
    if (r->chat) ab_add(&b, "--chat");
    ab_add(&b, "--out");
    ab_add(&b, "%s", out);
    ab_add(&b, "--max-new-tokens");
    ab_add(&b, "%d", max_new);
    ab_add(&b, "--batch");
    ab_add(&b, "%d", batch);
    ab_add(&b, "--max-prompt-tokens");
    ab_add(&b, "%d", r->ex_max_prompt);
    if (with_acts) {
        ab_add(&b, "--dtype");
        ab_add(&b, "%s", r->ex_dtype);
    } else {
        ab_add(&b, "--no-acts");
    }
    if (value_model) {
        ab_add(&b, "--value-model");
        ab_add(&b, "%s", value_model);
        ab_add(&b, "--step-size");
        ab_add(&b, "%g", r->step_size);
        ab_add(&b, "--steps");
        ab_add(&b, "%d", r->steps);
    }
    return run_stage(title, cmd_extract, &b);
}

static int label(const recipe *r, const char *title, const char *run) {
    argv_builder b;
    ab_init(&b, "label");
    ab_add(&b, "--run");
    ab_add(&b, "%s", run);
    if (r->reward_model[0]) {
        ab_add(&b, "--reward-model");
        ab_add(&b, "%s", r->reward_model);
    } else {
        ab_add(&b, "--judge");
        ab_add(&b, "%s", strcmp(r->judge, "default") ? r->judge : "default");
    }
    return run_stage(title, cmd_label, &b);
}

static int mkdir_p(const char *path) {
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            mkdir(tmp, 0755);
            *p = '/';
        }
    }
    if (mkdir(tmp, 0755) != 0 && !rc_is_dir(tmp)) return rc_fail("cannot create directory %s", path);
    return 0;
}

int rc_pipeline_run(const char *recipe_path, const char *out_override) {
    recipe r;
    if (recipe_load(recipe_path, &r) != 0) return -1;
    if (out_override) snprintf(r.out, sizeof r.out, "%s", out_override);
    if (mkdir_p(r.out) != 0) return -1;
    char train_dir[1100], plain_dir[1100], ctrl_dir[1100], value[1100], report[1100];
    snprintf(train_dir, sizeof train_dir, "%s/train", r.out);
    snprintf(plain_dir, sizeof plain_dir, "%s/test-plain", r.out);
    snprintf(ctrl_dir, sizeof ctrl_dir, "%s/test-control", r.out);
    snprintf(value, sizeof value, "%s/value.safetensors", r.out);
    snprintf(report, sizeof report, "%s/report", r.out);
    fprintf(stderr, "recontrol pipeline '%s' -> %s\n", r.name, r.out);
    double t0 = rc_time_s();

    if (rollouts(&r, "1/5 rollouts and hidden states (train prompts)", r.train_data, train_dir, 1,
                 NULL, r.ex_max_new, r.ex_batch))
        return -1;
    if (label(&r, "2/5 reward labels (train rollouts)", train_dir)) return -1;

    argv_builder b;
    ab_init(&b, "train");
    ab_add(&b, "--data");
    ab_add(&b, "%s", train_dir);
    ab_add(&b, "--out");
    ab_add(&b, "%s", value);
    ab_add(&b, "--hidden");
    ab_add(&b, "%s", r.hidden);
    ab_add(&b, "--epochs");
    ab_add(&b, "%d", r.epochs);
    ab_add(&b, "--batch-size");
    ab_add(&b, "%d", r.batch_size);
    ab_add(&b, "--lr");
    ab_add(&b, "%g", r.lr);
    ab_add(&b, "--seed");
    ab_add(&b, "%d", r.seed);
    if (rc_file_exists(value))
        fprintf(stderr, "\n== 3/5 value network ==\n  kept %s (delete it to retrain)\n", value);
    else if (run_stage("3/5 value network", cmd_train, &b))
        return -1;

    if (rollouts(&r, "4/5 plain generation (test prompts)", r.test_data, plain_dir, 0, NULL,
                 r.gen_max_new, r.gen_batch))
        return -1;
    if (rollouts(&r, "4/5 RE-Control generation (test prompts)", r.test_data, ctrl_dir, 0, value,
                 r.gen_max_new, r.gen_batch))
        return -1;
    if (label(&r, "5/5 reward labels (plain)", plain_dir)) return -1;
    if (label(&r, "5/5 reward labels (RE-Control)", ctrl_dir)) return -1;

    ab_init(&b, "eval");
    ab_add(&b, "--run");
    ab_add(&b, "%s", plain_dir);
    ab_add(&b, "--against");
    ab_add(&b, "%s", ctrl_dir);
    ab_add(&b, "--out");
    ab_add(&b, "%s", report);
    ab_add(&b, "--example");
    if (run_stage("5/5 evaluation: plain vs RE-Control", cmd_eval, &b)) return -1;
    fprintf(stderr, "\npipeline '%s' finished in %.1f s; report in %s.{json,md}\n", r.name,
            rc_time_s() - t0, report);
    return 0;
}

static void pipeline_usage(FILE *f) {
    fprintf(f,
            "usage: recontrol pipeline RECIPE.json [--out DIR]\n\n"
            "Runs every stage of RE-Control from one recipe (model, reward, data, hyperparameters):\n"
            "  1 extract  greedy rollouts on the train prompts + post-norm hidden states\n"
            "  2 label    a reward per (prompt, response): reward model or judge LM\n"
            "  3 train    the value network on the states (Bellman loss)\n"
            "  4 extract  plain and RE-Control generations on the test prompts\n"
            "  5 label + eval   rewards of both, diversity, length, side by side\n"
            "Finished work is kept: a rerun resumes. Recipes: recipes/*.json (paths may start\n"
            "with ${recipe_dir}).\n\n"
            "  --out DIR   override the recipe's output directory\n"
            "  -h, --help  this text\n");
}

int cmd_pipeline(int argc, char **argv) {
    static const struct option opts[] = {
        {"out", required_argument, 0, 'o'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *out = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'h': pipeline_usage(stdout); return 0;
        default: pipeline_usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        pipeline_usage(stderr);
        return 2;
    }
    if (rc_pipeline_run(argv[optind], out) != 0) {
        fprintf(stderr, "recontrol pipeline: error: %s\n", rc_last_error());
        return 1;
    }
    return 0;
}
