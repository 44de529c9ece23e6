// Tokenizer encode throughput (MB/s of UTF-8 input, one thread) on the golden corpus
// (tests/fixtures/tok/corpus.jsonl, 2,495 strings): each string encoded on its own ("per
// string") and the whole corpus joined by newlines as one text ("one text"). Prints one JSON
// object per tokenizer. bench/bench_tokenizer_hf.py times HF tokenizers on the same corpus.
//
// usage: bench_tokenizer [--fixtures DIR] [--model PATH ...] [--seconds S]
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "tokenizer/tokenizer.h"

typedef struct {
    char *s;
    size_t n;
} item;

static int load_corpus(const char *path, item **out, int *n_out) {
    size_t len;
    char *all = rc_read_file(path, &len);
    if (!all) return -1;
    int n = 0, cap = 4096;
    item *it = malloc(sizeof *it * (size_t)cap);
    for (char *line = strtok(all, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        if (!j) return rc_fail("%s: bad JSON line %d", path, n + 1);
        const char *t = cJSON_GetStringValue(cJSON_GetObjectItem(j, "text"));
        const char *h = cJSON_GetStringValue(cJSON_GetObjectItem(j, "hex"));
        if (n == cap) it = realloc(it, sizeof *it * (size_t)(cap *= 2));
        if (t) {
            it[n].n = strlen(t);
            it[n].s = strdup(t);
        } else {
            it[n].n = strlen(h) / 2;
            it[n].s = malloc(it[n].n + 1);
            for (size_t i = 0; i < it[n].n; i++) {
                unsigned v;
                sscanf(h + 2 * i, "%2x", &v);
                it[n].s[i] = (char)v;
            }
        }
        n++;
        cJSON_Delete(j);
    }
    free(all);
    *out = it;
    *n_out = n;
    return 0;
}

static int bench_one(const char *model, const item *items, int n, double seconds) {
    double t0 = rc_time_s();
    rc_tokenizer *t = rc_tokenizer_load(model);
    if (!t) return fprintf(stderr, "bench_tokenizer: %s\n", rc_last_error()), -1;
    double load_s = rc_time_s() - t0;
    size_t bytes = 0;
    for (int i = 0; i < n; i++) bytes += items[i].n;
    // per string
    long tokens = 0;
    int reps = 0;
    t0 = rc_time_s();
    double el;
    do {
        for (int i = 0; i < n; i++) {
            int *ids, k;
            if (rc_tokenizer_encode(t, items[i].s, items[i].n, 1, &ids, &k)) return -1;
            if (!reps) tokens += k;
            free(ids);
        }
        reps++;
        el = rc_time_s() - t0;
    } while (el < seconds);
    double per_string = (double)bytes * reps / el / 1e6;
    // one text
    char *all = malloc(bytes + (size_t)n + 1);
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        memcpy(all + o, items[i].s, items[i].n);
        o += items[i].n;
        all[o++] = '\n';
    }
    int reps2 = 0, n_all = 0;
    t0 = rc_time_s();
    do {
        int *ids;
        if (rc_tokenizer_encode(t, all, o, 1, &ids, &n_all)) return -1;
        free(ids);
        reps2++;
        el = rc_time_s() - t0;
    } while (el < seconds);
    double one_text = (double)o * reps2 / el / 1e6;
    // decode of the one-text ids
    int *ids;
    rc_tokenizer_encode(t, all, o, 0, &ids, &n_all);
    int reps3 = 0;
    t0 = rc_time_s();
    do {
        size_t dl;
        char *d = rc_tokenizer_decode_n(t, ids, n_all, 0, &dl);
        free(d);
        reps3++;
        el = rc_time_s() - t0;
    } while (el < seconds);
    double dec_tok_s = (double)n_all * reps3 / el;
    printf("{\"impl\": \"recontrol\", \"model\": \"%s\", \"kind\": \"%s\", \"strings\": %d, "
           "\"bytes\": %zu, \"tokens\": %ld, \"load_s\": %.4f, \"per_string_MBps\": %.2f, "
           "\"one_text_MBps\": %.2f, \"decode_Mtok_per_s\": %.2f}\n",
           model, rc_tokenizer_kind(t), n, bytes, tokens, load_s, per_string, one_text,
           dec_tok_s / 1e6);
    fflush(stdout);
    free(ids);
    free(all);
    rc_tokenizer_free(t);
    return 0;
}

int main(int argc, char **argv) {
    const char *fix = "tests/fixtures/tok";
    const char *models[16];
    int n_models = 0;
    double seconds = 1.0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--fixtures") && i + 1 < argc) fix = argv[++i];
        else if (!strcmp(argv[i], "--model") && i + 1 < argc && n_models < 16) models[n_models++] = argv[++i];
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_tokenizer [--fixtures DIR] [--model PATH ...] [--seconds S]\n");
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    char paths[3][4096];
    if (!n_models) {
        const char *names[] = {"smol", "l3", "spm"};
        for (int k = 0; k < 3; k++) {
            snprintf(paths[k], sizeof paths[k], "%s/%s", fix, names[k]);
            models[n_models++] = paths[k];
        }
    }
    char cpath[4096];
    snprintf(cpath, sizeof cpath, "%s/corpus.jsonl", fix);
    item *items = NULL;
    int n = 0;
    if (load_corpus(cpath, &items, &n)) {
        fprintf(stderr, "bench_tokenizer: %s\n", rc_last_error());
        return 1;
    }
    for (int m = 0; m < n_models; m++)
        if (bench_one(models[m], items, n, seconds)) return 1;
    for (int i = 0; i < n; i++) free(items[i].s);
    free(items);
    return 0;
}
