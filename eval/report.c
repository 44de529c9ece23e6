// Run statistics and reports: rewards, diversity, lengths; JSON and Markdown, two runs side by
// side with deltas and a paired win/tie/loss share by dataset item.
// Over the ranks of a job (base/dist.h) rank r scores the words of responses i % world == r; the
// per-response figures are then summed in index order as one process would, and rank 0 writes.
#include "eval/report.h"
#include "base/common.h"
#include "base/dist.h"
#include "base/progress.h"
#include "base/utf8.h"
#include "engine/generate.h"
#include "eval/diversity.h"
#include "eval/rundir.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rc_eval_stats_free(rc_eval_stats *s) {
    for (int64_t i = 0; i < s->n; i++) {
        if (s->prompt) free(s->prompt[i]);
        if (s->response) free(s->response[i]);
    }
    free(s->prompt);
    free(s->response);
    free(s->reward);
    free(s->item);
    free(s->coh);
    memset(s, 0, sizeof *s);
}

const char *rc_cut_name(int cut) { return cut == RC_CUT_METRICS ? "metrics" : "turn"; }

int rc_cut_parse(const char *s, int *cut) {
    if (!strcmp(s, "turn")) *cut = RC_CUT_TURN;
    else if (!strcmp(s, "metrics")) *cut = RC_CUT_METRICS;
    else return rc_fail("response cut \"%s\": expected \"turn\" or \"metrics\"", s);
    return 0;
}

char *rc_cut_response(const char *response, int cut) {
    size_t n;
    if (cut == RC_CUT_METRICS) {
        // metrics.py: clean(clean(text, "###USER:"), "\n\nUSER:"), then " " when empty
        const char *a = strstr(response, "###USER:");
        n = a ? (size_t)(a - response) : strlen(response);
        for (size_t i = 0; i + 7 <= n; i++)
            if (!memcmp(response + i, "\n\nUSER:", 7)) {
                n = i;
                break;
            }
        if (n == 0) {
            char *sp = rc_malloc(2, "response");
            if (sp) memcpy(sp, " ", 2);
            return sp;
        }
    } else
        n = rc_response_cut_len(response);
    char *o = rc_malloc(n + 1, "response");
    if (!o) return NULL;
    memcpy(o, response, n);
    o[n] = 0;
    return o;
}

int rc_eval_run(const char *dir, rc_eval_stats *s) { return rc_eval_run_opts(dir, NULL, s); }

int rc_eval_run_opts(const char *dir, const rc_eval_opts *o, rc_eval_stats *s) {
    rc_eval_opts dflt = {0};
    if (!o) o = &dflt;
    memset(s, 0, sizeof *s);
    s->cut = o->cut;
    s->coherence = NAN;
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    rc_resp_set rs;
    if (rc_run_read_responses(dir, &rs)) return -1;
    int64_t n = rs.n;
    s->n = n;
    s->reward = rc_malloc(sizeof(double) * (size_t)(n ? n : 1), "rewards");
    s->item = rc_malloc(sizeof(int64_t) * (size_t)(n ? n : 1), "items");
    s->prompt = rc_calloc((size_t)(n ? n : 1), sizeof(char *), "prompts");
    s->response = rc_calloc((size_t)(n ? n : 1), sizeof(char *), "responses");
    if (!s->reward || !s->item || !s->prompt || !s->response) goto fail;
    char path[4096];
    rc_path_join(path, sizeof path, dir, "rewards.jsonl");
    if (rc_file_exists(path)) {
        if (rc_run_read_rewards(path, n, s->reward, &s->n_rewarded)) goto fail;
    } else {
        for (int64_t i = 0; i < n; i++) s->reward[i] = NAN;
    }
    double rsum = 0, rsq = 0, div = 0, lt = 0, lw = 0, eos = 0;
    const int rank = rc_dist_rank(), world = rc_dist_size();
    double *dw = rc_calloc((size_t)(n ? 2 * n : 1), sizeof *dw, "diversity"); // (n, 2) diversity, words
    if (!dw) goto fail;
    for (int64_t i = 0; i < n; i++) {
        s->response[i] = rc_cut_response(rs.r[i].response, o->cut);
        if (!s->response[i]) {
            free(dw);
            goto fail;
        }
        if (i % world != rank) continue;
        rc_words w;
        if (rc_word_tokenize(s->response[i], &w)) {
            free(dw);
            goto fail;
        }
        dw[2 * i] = rc_diversity_tokens(&w);
        dw[2 * i + 1] = (double)w.n;
        rc_words_free(&w);
    }
    // others' figures arrive added to zeros: exact
    if (rc_dist_sum_f64(dw, (size_t)(2 * n))) {
        free(dw);
        goto fail;
    }
    for (int64_t i = 0; i < n; i++) {
        rc_resp *r = &rs.r[i];
        s->item[i] = r->item;
        s->prompt[i] = r->prompt;
        r->prompt = NULL;
        div += dw[2 * i];
        lw += dw[2 * i + 1];
        lt += r->n_tokens - (r->finish == RC_FINISH_EOS && r->n_tokens > 0 ? 1 : 0);
        eos += r->finish == RC_FINISH_EOS;
        if (!isnan(s->reward[i])) {
            rsum += s->reward[i];
            rsq += s->reward[i] * s->reward[i];
        }
    }
    free(dw);
    double dn = n ? (double)n : 1.0;
    s->diversity = n ? div / dn : NAN;
    s->len_tokens = n ? lt / dn : NAN;
    s->len_words = n ? lw / dn : NAN;
    s->eos_frac = n ? eos / dn : NAN;
    if (s->n_rewarded) {
        double m = rsum / (double)s->n_rewarded;
        s->reward_mean = m;
        double v = rsq / (double)s->n_rewarded - m * m;
        s->reward_std = sqrt(v > 0 ? v : 0);
    } else {
        s->reward_mean = s->reward_std = NAN;
    }
    rc_resp_set_free(&rs);
    if (o->coh && n > 0) {
        s->coh_device = (int)rc_coherence_device(o->coh);
        s->coh = rc_malloc(sizeof(double) * (size_t)n, "coherence");
        if (!s->coh) goto fail_coh;
        // over ranks: rank r embeds responses i % world == r, the others' cosines arrive added to
        // zeros, and the mean is summed in index order as one process would
        const int crank = rc_dist_rank(), cworld = rc_dist_size();
        rc_progress pg;
        rc_progress_init(&pg, "coherence", n);
        // batches of this rank's pairs (the encoder runs each batch in one device call)
        enum { COH_BATCH = 32 };
        const char *pa[COH_BATCH], *pb[COH_BATCH];
        int64_t at[COH_BATCH];
        double cb[COH_BATCH];
        int nb = 0;
        for (int64_t i = 0; i < n; i++) {
            s->coh[i] = 0;
            if (i % cworld == crank) {
                pa[nb] = s->prompt[i] ? s->prompt[i] : "";
                pb[nb] = s->response[i];
                at[nb++] = i;
            }
            if (nb == COH_BATCH || (i == n - 1 && nb > 0)) {
                int64_t tok = 0;
                if (rc_coherence_pairs(o->coh, nb, pa, pb, cb, &tok)) goto fail_coh;
                pg.tokens += tok;
                for (int k = 0; k < nb; k++) s->coh[at[k]] = cb[k];
                nb = 0;
                pg.done = i + 1;
                rc_progress_tick(&pg, 0);
            }
        }
        pg.done = n;
        rc_progress_tick(&pg, 1);
        if (rc_dist_sum_f64(s->coh, (size_t)n)) goto fail_coh;
        double sum = 0;
        for (int64_t i = 0; i < n; i++) sum += s->coh[i];
        s->coherence = sum / (double)n;
    }
    return 0;
fail_coh:
    rc_fail_ctx("%s: coherence", dir);
    rc_eval_stats_free(s);
    return -1;
fail:
    rc_resp_set_free(&rs);
    rc_eval_stats_free(s);
    return -1;
}

void rc_eval_compare(const rc_eval_stats *a, const rc_eval_stats *b, rc_eval_pair *p) {
    memset(p, 0, sizeof *p);
    // items are increasing within a run (extract keeps dataset order): merge.
    int64_t i = 0, j = 0, w = 0, t = 0, l = 0;
    while (i < a->n && j < b->n) {
        if (a->item[i] < b->item[j]) i++;
        else if (a->item[i] > b->item[j]) j++;
        else {
            double ra = a->reward[i], rb = b->reward[j];
            if (!isnan(ra) && !isnan(rb)) {
                if (rb > ra) w++;
                else if (rb < ra) l++;
                else t++;
            }
            i++;
            j++;
        }
    }
    p->n_paired = w + t + l;
    if (p->n_paired) {
        p->win = (double)w / (double)p->n_paired;
        p->tie = (double)t / (double)p->n_paired;
        p->loss = (double)l / (double)p->n_paired;
    }
}

static void add_num(cJSON *o, const char *k, double v) {
    if (isnan(v)) cJSON_AddNullToObject(o, k);
    else cJSON_AddNumberToObject(o, k, v);
}

static cJSON *stats_json(const rc_eval_stats *s) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "run", s->dir);
    cJSON_AddNumberToObject(o, "n_responses", (double)s->n);
    cJSON_AddNumberToObject(o, "n_rewarded", (double)s->n_rewarded);
    add_num(o, "reward_mean", s->reward_mean);
    add_num(o, "reward_std", s->reward_std);
    add_num(o, "diversity", s->diversity);
    add_num(o, "length_tokens", s->len_tokens);
    add_num(o, "length_words", s->len_words);
    add_num(o, "eos_fraction", s->eos_frac);
    add_num(o, "coherence", s->coherence);
    return o;
}

char *rc_eval_json(const rc_eval_stats *a, const rc_eval_stats *b) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "format", "recontrol-eval-v1");
    cJSON_AddStringToObject(j, "response_cut", rc_cut_name(a->cut));
    cJSON_AddStringToObject(j, "response_cut_rule",
                            a->cut == RC_CUT_METRICS
                                ? "metrics.py: before the first \"###USER:\", then before \"\\n\\nUSER:\"; empty -> \" \""
                                : "at the first \"Human:\" or \"User:\", trailing whitespace dropped");
    if (!isnan(a->coherence))
        cJSON_AddStringToObject(j, "coherence_rule",
                                "mean over responses of cos(SimCSE-style unit embedding of the prompt, of "
                                "the cut response); BERT pooler output (or [CLS] state), 128 tokens");
    if (!isnan(a->coherence))
        cJSON_AddStringToObject(j, "coherence_device", rc_device_name((rc_device)a->coh_device));
    cJSON_AddStringToObject(j, "diversity",
                            "mean over responses of prod_{n=2..4} (1 - rep_n/100), rep_n = 100*(1 - "
                            "|unique n-grams|/(|n-grams|+1)), NLTK-style word tokens");
    cJSON *runs = cJSON_AddArrayToObject(j, "runs");
    cJSON_AddItemToArray(runs, stats_json(a));
    if (b) {
        cJSON_AddItemToArray(runs, stats_json(b));
        cJSON *d = cJSON_AddObjectToObject(j, "delta");
        add_num(d, "reward_mean", b->reward_mean - a->reward_mean);
        add_num(d, "diversity", b->diversity - a->diversity);
        add_num(d, "length_tokens", b->len_tokens - a->len_tokens);
        add_num(d, "length_words", b->len_words - a->len_words);
        add_num(d, "eos_fraction", b->eos_frac - a->eos_frac);
        add_num(d, "coherence", b->coherence - a->coherence);
        rc_eval_pair p;
        rc_eval_compare(a, b, &p);
        cJSON *pj = cJSON_AddObjectToObject(j, "paired");
        cJSON_AddNumberToObject(pj, "n", (double)p.n_paired);
        if (p.n_paired) {
            cJSON_AddNumberToObject(pj, "second_higher_reward", p.win);
            cJSON_AddNumberToObject(pj, "tie", p.tie);
            cJSON_AddNumberToObject(pj, "second_lower_reward", p.loss);
        }
    }
    char *s = rc_json_print(j, 1);
    cJSON_Delete(j);
    if (!s) rc_fail("out of memory writing the report");
    return s;
}

// ---- Markdown ---------------------------------------------------------------------------------

typedef struct {
    char *s;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) return;
        if (b->s && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return;
        }
        size_t nc = (b->cap ? b->cap : 1024);
        while (nc <= b->n + (size_t)k) nc *= 2;
        char *ns = realloc(b->s, nc);
        if (!ns) {
            b->oom = 1;
            return;
        }
        b->s = ns;
        b->cap = nc;
    }
}

static void fmt_val(char *out, size_t cap, double v, const char *f) {
    if (isnan(v)) snprintf(out, cap, "n/a");
    else snprintf(out, cap, f, v);
}

static void row(sbuf *b, const char *name, double va, double vb, int two, const char *f) {
    char x[64], y[64], d[64];
    fmt_val(x, sizeof x, va, f);
    sb_printf(b, "| %s | %s |", name, x);
    if (two) {
        fmt_val(y, sizeof y, vb, f);
        char fd[16];
        snprintf(fd, sizeof fd, "%%+%s", f + 1);
        fmt_val(d, sizeof d, vb - va, fd);
        sb_printf(b, " %s | %s |", y, d);
    }
    sb_printf(b, "\n");
}

// Writes text as a Markdown blockquote, at most max bytes.
static void quote(sbuf *b, const char *text, size_t max) {
    sb_printf(b, "> ");
    size_t n = 0;
    for (const char *p = text; *p && n < max; p++, n++) {
        if (*p == '\n') sb_printf(b, "\n> ");
        else if (*p != '\r') sb_printf(b, "%c", *p);
    }
    if (strlen(text) > max) sb_printf(b, " [...]");
    sb_printf(b, "\n\n");
}

char *rc_eval_markdown(const rc_eval_stats *a, const rc_eval_stats *b, int example) {
    sbuf m = {0};
    int two = b != NULL;
    sb_printf(&m, "| metric | %s |", a->dir);
    if (two) sb_printf(&m, " %s | delta |", b->dir);
    sb_printf(&m, "\n|---|---:|%s\n", two ? "---:|---:|" : "");
    row(&m, "responses", (double)a->n, two ? (double)b->n : 0, two, "%.0f");
    row(&m, "with reward", (double)a->n_rewarded, two ? (double)b->n_rewarded : 0, two, "%.0f");
    row(&m, "average reward", a->reward_mean, two ? b->reward_mean : 0, two, "%.4f");
    row(&m, "reward std", a->reward_std, two ? b->reward_std : 0, two, "%.4f");
    row(&m, "diversity", a->diversity, two ? b->diversity : 0, two, "%.4f");
    row(&m, "length (tokens)", a->len_tokens, two ? b->len_tokens : 0, two, "%.2f");
    row(&m, "length (words)", a->len_words, two ? b->len_words : 0, two, "%.2f");
    row(&m, "ended with EOS", a->eos_frac, two ? b->eos_frac : 0, two, "%.3f");
    if (!isnan(a->coherence) || (two && !isnan(b->coherence)))
        row(&m, "coherence", a->coherence, two ? b->coherence : 0, two, "%.4f");
    if (two) {
        rc_eval_pair p;
        rc_eval_compare(a, b, &p);
        if (p.n_paired)
            sb_printf(&m,
                      "\nOn %lld prompts both runs answered: the second run's reward is higher on %.1f%%, "
                      "equal on %.1f%%, lower on %.1f%%.\n",
                      (long long)p.n_paired, 100 * p.win, 100 * p.tie, 100 * p.loss);
    }
    if (a->cut == RC_CUT_METRICS)
        sb_printf(&m, "\nResponses are cut as the reference's metrics.py cuts them (\"###USER:\", \"\\n\\nUSER:\").");
    else
        sb_printf(&m, "\nResponses are cut at the first \"Human:\"/\"User:\" before scoring.");
    sb_printf(&m, " Diversity: mean of prod_{n=2..4}(1 - rep_n/100) over NLTK-style words.");
    if (!isnan(a->coherence))
        sb_printf(&m, " Coherence: mean cosine of the prompt's and the response's sentence embeddings.");
    sb_printf(&m, "\n");
    if (example && a->n > 0) {
        sb_printf(&m, "\n### Example (first prompt)\n\n**Prompt**\n\n");
        quote(&m, a->prompt[0] ? a->prompt[0] : "", 1500);
        sb_printf(&m, "**%s**", a->dir);
        if (!isnan(a->reward[0])) sb_printf(&m, " (reward %.4f)", a->reward[0]);
        sb_printf(&m, "\n\n");
        quote(&m, a->response[0], 1500);
        if (two) {
            for (int64_t j = 0; j < b->n; j++)
                if (b->item[j] == a->item[0]) {
                    sb_printf(&m, "**%s**", b->dir);
                    if (!isnan(b->reward[j])) sb_printf(&m, " (reward %.4f)", b->reward[j]);
                    sb_printf(&m, "\n\n");
                    quote(&m, b->response[j], 1500);
                    break;
                }
        }
    }
    if (m.oom) {
        free(m.s);
        rc_fail("out of memory writing the report");
        return NULL;
    }
    return m.s;
}

// Adds a judge summary (recontrol judge's PREFIX.json) to the report: "judge" in the JSON, a
// win / tie / lose line in the Markdown.
static int add_judge(const char *path, char **js, char **md) {
    size_t l;
    char *t = rc_read_file(path, &l);
    if (!t) return -1;
    cJSON *j = cJSON_ParseWithLength(t, l);
    free(t);
    const cJSON *fmt = j ? cJSON_GetObjectItemCaseSensitive(j, "format") : NULL;
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "recontrol-judge-v1")) {
        cJSON_Delete(j);
        return rc_fail("%s: not a `recontrol judge` summary (format recontrol-judge-v1)", path);
    }
    cJSON *rep = cJSON_Parse(*js);
    if (!rep) {
        cJSON_Delete(j);
        return rc_fail("out of memory");
    }
    cJSON *jd = cJSON_AddObjectToObject(rep, "judge");
    const char *keys[] = {"red", "blue", "judge", "model", "seed", "sample", "n", "win", "tie", "lose", "unparsed", "win_rate"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, keys[k]);
        if (v) cJSON_AddItemToObject(jd, keys[k], cJSON_Duplicate(v, 0));
    }
    double n = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(j, "n"));
    double w = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(j, "win"));
    double ti = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(j, "tie"));
    double lo = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(j, "lose"));
    double un = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(j, "unparsed"));
    const char *red = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "red"));
    const char *blue = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "blue"));
    char *nj = cJSON_Print(rep);
    cJSON_Delete(rep);
    size_t ml = strlen(*md);
    char line[2048];
    int k = snprintf(line, sizeof line,
                     "\nJudge win rate (%s against %s, %.0f pairs): win %.0f (%.1f%%), tie %.0f (%.1f%%), lose "
                     "%.0f (%.1f%%); %.0f unparsable replies counted as ties.\n",
                     red ? red : "?", blue ? blue : "?", n, w, n > 0 ? 100 * w / n : 0, ti, n > 0 ? 100 * ti / n : 0,
                     lo, n > 0 ? 100 * lo / n : 0, un);
    cJSON_Delete(j);
    char *nm = realloc(*md, ml + (size_t)k + 1);
    if (!nj || !nm) {
        free(nj);
        if (nm) *md = nm;
        return rc_fail("out of memory");
    }
    memcpy(nm + ml, line, (size_t)k + 1);
    *md = nm;
    free(*js);
    *js = nj;
    return 0;
}

int rc_eval_report(const char *run, const char *against, const char *out, int example, FILE *md_out) {
    return rc_eval_report_opts(run, against, out, example, md_out, NULL);
}

int rc_eval_report_opts(const char *run, const char *against, const char *out, int example,
                        FILE *md_out, const rc_eval_opts *o) {
    rc_eval_stats a = {0}, b = {0};
    int have_b = 0, rc = -1, joint = 0;
    char *js = NULL, *md = NULL;
    char prefix[4096], path[4200];
    if (rc_eval_run_opts(run, o, &a)) goto done;
    if (against) {
        if (rc_eval_run_opts(against, o, &b)) goto done;
        have_b = 1;
    }
    joint = 1;                 // every rank is here: rank 0's result below is everyone's
    if (rc_dist_rank() != 0) { // rank 0 writes the report
        rc = 0;
        goto done;
    }
    if (a.n_rewarded == 0)
        fprintf(stderr, "eval: %s has no rewards.jsonl (run `recontrol label --run %s`): reward "
                        "shown as n/a\n", run, run);
    if (have_b && b.n_rewarded == 0)
        fprintf(stderr, "eval: %s has no rewards.jsonl: reward shown as n/a\n", against);
    js = rc_eval_json(&a, have_b ? &b : NULL);
    md = rc_eval_markdown(&a, have_b ? &b : NULL, example);
    if (!js || !md) goto done;
    if (o && o->judge && add_judge(o->judge, &js, &md)) goto done;
    if (out) snprintf(prefix, sizeof prefix, "%s", out);
    else snprintf(prefix, sizeof prefix, "%s/eval", run);
    snprintf(path, sizeof path, "%s.json", prefix);
    size_t jl = strlen(js);
    char *jn = realloc(js, jl + 2);
    if (!jn) goto done;
    js = jn;
    js[jl] = '\n';
    js[jl + 1] = 0;
    if (rc_write_file_atomic(path, js, jl + 1)) goto done;
    snprintf(path, sizeof path, "%s.md", prefix);
    if (rc_write_file_atomic(path, md, strlen(md))) goto done;
    if (md_out) fputs(md, md_out);
    fprintf(stderr, "eval: wrote %s.json and %s.md\n", prefix, prefix);
    rc = 0;
done:
    free(js);
    free(md);
    rc_eval_stats_free(&a);
    if (have_b) rc_eval_stats_free(&b);
    // every rank returns only once the report is written (or with rank 0's failure); a failure
    // before is this rank's own (the job is then stopped by rc_dist_end)
    if (joint && rc_dist_all_ok(rc == 0, "the evaluation report")) return -1;
    return rc;
}
