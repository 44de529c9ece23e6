// Activation dataset reader (schema in activations.h): opens the acts-NNNNN.safetensors shards,
// validates hidden/offsets, joins rewards.jsonl by index, gathers batches as fp32.
#define _GNU_SOURCE
#include "train/activations.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"

void rc_acts_close(rc_acts *a) {
    for (int i = 0; i < a->n_shards; i++) rc_st_close(&a->shards[i]);
    free(a->shards);
    free(a->seq_shard);
    free(a->seq_row);
    free(a->seq_len);
    free(a->reward);
    memset(a, 0, sizeof *a);
}

// offsets may sit at any byte offset in a file written by another tool: read through memcpy.
static int64_t off_at(const rc_st_tensor *o, int64_t i) {
    int64_t v;
    memcpy(&v, (const char *)o->data + 8 * i, 8);
    return v;
}

static int check_shard(rc_acts *a, int si, int64_t *n_seq, int64_t *n_steps) {
    const rc_safetensors *st = &a->shards[si];
    const rc_st_tensor *h = rc_st_find(st, "hidden"), *o = rc_st_find(st, "offsets");
    if (!h) return rc_fail("%s: no tensor \"hidden\" (expected hidden [n_steps, d])", st->path);
    if (!o) return rc_fail("%s: no tensor \"offsets\" (expected offsets [n_seq+1] I64)", st->path);
    if (h->ndim != 2 || (h->dtype != RC_DT_F32 && h->dtype != RC_DT_F16 && h->dtype != RC_DT_BF16))
        return rc_fail("%s: \"hidden\" is %s with %d dims; expected F32/F16/BF16 [n_steps, d]", st->path,
                       h->dtype_str, h->ndim);
    if (o->ndim != 1 || o->dtype != RC_DT_I64 || o->shape[0] < 1)
        return rc_fail("%s: \"offsets\" is %s with %d dims; expected I64 [n_seq+1]", st->path,
                       o->dtype_str, o->ndim);
    if (a->d == 0) a->d = (int)h->shape[1];
    if (h->shape[1] != a->d)
        return rc_fail("%s: \"hidden\" has width %lld but earlier shards have %d", st->path,
                       (long long)h->shape[1], a->d);
    int64_t ns = o->shape[0] - 1;
    if (off_at(o, 0) != 0)
        return rc_fail("%s: offsets[0] = %lld, expected 0", st->path, (long long)off_at(o, 0));
    for (int64_t s = 0; s < ns; s++)
        if (off_at(o, s + 1) <= off_at(o, s))
            return rc_fail("%s: offsets[%lld] = %lld <= offsets[%lld] = %lld: every sequence needs >= 1 step",
                           st->path, (long long)(s + 1), (long long)off_at(o, s + 1), (long long)s,
                           (long long)off_at(o, s));
    if (off_at(o, ns) != h->shape[0])
        return rc_fail("%s: offsets[%lld] = %lld but \"hidden\" has %lld rows", st->path, (long long)ns,
                       (long long)off_at(o, ns), (long long)h->shape[0]);
    *n_seq = ns;
    *n_steps = h->shape[0];
    return 0;
}

int rc_acts_open_states(rc_acts *a, const char *dir) {
    memset(a, 0, sizeof *a);
    if (!rc_is_dir(dir)) return rc_fail("activation dir %s does not exist or is not a directory", dir);
    char path[1200];
    int n = 0;
    for (;;) {
        char name[64];
        snprintf(name, sizeof name, "acts-%05d.safetensors", n);
        if (rc_path_join(path, sizeof path, dir, name) != 0 || !rc_file_exists(path)) break;
        n++;
    }
    if (n == 0)
        return rc_fail("%s: no activation shards (expected acts-00000.safetensors, acts-00001..., "
                       "written by `recontrol extract`)", dir);
    a->shards = rc_calloc((size_t)n, sizeof *a->shards, "activation shards");
    if (!a->shards) return -1;
    int64_t seq_per[4096];
    int64_t *nseq = n <= 4096 ? seq_per : rc_malloc((size_t)n * sizeof(int64_t), "shard sizes");
    if (!nseq) goto fail;
    for (int i = 0; i < n; i++) {
        char name[64];
        snprintf(name, sizeof name, "acts-%05d.safetensors", i);
        rc_path_join(path, sizeof path, dir, name);
        if (rc_st_open(&a->shards[i], path) != 0) goto fail_n;
        a->n_shards = i + 1;
        int64_t steps = 0;
        if (check_shard(a, i, &nseq[i], &steps) != 0) goto fail_n;
        a->n_seq += nseq[i];
        a->n_steps += steps;
    }
    if (a->n_seq == 0) {
        rc_fail("%s: the shards hold no sequence", dir);
        goto fail_n;
    }
    a->seq_shard = rc_malloc((size_t)a->n_seq * sizeof(int), "sequence index");
    a->seq_row = rc_malloc((size_t)a->n_seq * sizeof(int64_t), "sequence index");
    a->seq_len = rc_malloc((size_t)a->n_seq * sizeof(int), "sequence index");
    a->reward = rc_calloc((size_t)a->n_seq, sizeof(float), "rewards");
    if (!a->seq_shard || !a->seq_row || !a->seq_len || !a->reward) goto fail_n;
    int64_t g = 0;
    for (int i = 0; i < n; i++) {
        const rc_st_tensor *o = rc_st_find(&a->shards[i], "offsets");
        for (int64_t s = 0; s < nseq[i]; s++, g++) {
            int64_t len = off_at(o, s + 1) - off_at(o, s);
            if (len > (1 << 30)) {
                rc_fail("%s: sequence %lld has %lld steps", a->shards[i].path, (long long)s, (long long)len);
                goto fail_n;
            }
            a->seq_shard[g] = i;
            a->seq_row[g] = off_at(o, s);
            a->seq_len[g] = (int)len;
            if (len > a->max_len) a->max_len = (int)len;
        }
    }
    if (nseq != seq_per) free(nseq);
    return 0;
fail_n:
    if (nseq != seq_per) free(nseq);
fail:
    rc_acts_close(a);
    return -1;
}

static int read_rewards(rc_acts *a, const char *dir) {
    char path[1200];
    if (rc_path_join(path, sizeof path, dir, "rewards.jsonl") != 0) return rc_fail("path too long: %s", dir);
    FILE *f = fopen(path, "r");
    if (!f) return rc_fail("%s: cannot open (reward labels are written by `recontrol label`)", path);
    unsigned char *seen = rc_calloc((size_t)a->n_seq, 1, "reward index");
    if (!seen) {
        fclose(f);
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    long lineno = 0;
    int64_t got = 0;
    int rc = 0;
    while (getline(&line, &cap, f) >= 0) {
        lineno++;
        const char *p = line;
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
        if (!*p) continue;
        cJSON *j = cJSON_Parse(p);
        if (!j || !cJSON_IsObject(j)) {
            cJSON_Delete(j);
            rc = rc_fail("%s:%ld: not a JSON object (expected {\"index\": i, \"reward\": r})", path, lineno);
            break;
        }
        const cJSON *ji = cJSON_GetObjectItemCaseSensitive(j, "index");
        const cJSON *jr = cJSON_GetObjectItemCaseSensitive(j, "reward");
        if (!cJSON_IsNumber(ji) || !cJSON_IsNumber(jr)) {
            cJSON_Delete(j);
            rc = rc_fail("%s:%ld: needs numeric \"index\" and \"reward\" fields", path, lineno);
            break;
        }
        double di = ji->valuedouble, r = jr->valuedouble;
        cJSON_Delete(j);
        if (di != floor(di) || di < 0 || di >= (double)a->n_seq) {
            rc = rc_fail("%s:%ld: index %g out of range: the shards hold %lld sequences", path, lineno, di,
                         (long long)a->n_seq);
            break;
        }
        if (!isfinite(r)) {
            rc = rc_fail("%s:%ld: reward is not finite", path, lineno);
            break;
        }
        int64_t i = (int64_t)di;
        if (seen[i]) {
            rc = rc_fail("%s:%ld: index %lld appears twice", path, lineno, (long long)i);
            break;
        }
        seen[i] = 1;
        a->reward[i] = (float)r;
        got++;
    }
    if (rc == 0 && got != a->n_seq) {
        int64_t miss = 0;
        while (seen[miss]) miss++;
        rc = rc_fail("%s: %lld rewards for %lld sequences (first missing index %lld)", path, (long long)got,
                     (long long)a->n_seq, (long long)miss);
    }
    free(line);
    free(seen);
    fclose(f);
    return rc;
}

int rc_acts_open(rc_acts *a, const char *dir) {
    if (rc_acts_open_states(a, dir) != 0) return -1;
    if (read_rewards(a, dir) != 0) {
        rc_acts_close(a);
        return -1;
    }
    return 0;
}

int rc_acts_mask_pad(rc_acts *a, const char *dir, int pad_id, int64_t *masked, int64_t *dropped) {
    *masked = *dropped = 0;
    if (pad_id < 0) return rc_fail("pad id %d: must be >= 0", pad_id);
    int *pads = rc_calloc((size_t)a->n_seq + 1, sizeof(int), "pad counts");
    unsigned char *seen = rc_calloc((size_t)a->n_seq + 1, 1, "pad counts");
    int rc = -1;
    if (!pads || !seen) goto done;
    for (int sh = 0; sh < a->n_shards; sh++) {
        char name[64], path[1200];
        snprintf(name, sizeof name, "responses-%05d.jsonl", sh);
        if (rc_path_join(path, sizeof path, dir, name)) {
            rc_fail("path too long: %s", dir);
            goto done;
        }
        size_t len;
        char *txt = rc_read_file(path, &len);
        if (!txt) {
            rc_fail_ctx("the pad convention needs each sequence's tokens (written by extract)");
            goto done;
        }
        long lineno = 0;
        for (char *p = txt, *e; p && *p; p = e ? e + 1 : NULL) {
            e = strchr(p, '\n');
            if (e) *e = 0;
            lineno++;
            if (!*p) continue;
            cJSON *j = cJSON_Parse(p);
            const cJSON *ji = j ? cJSON_GetObjectItemCaseSensitive(j, "index") : NULL;
            const cJSON *jt = j ? cJSON_GetObjectItemCaseSensitive(j, "tokens") : NULL;
            if (!cJSON_IsNumber(ji) || !cJSON_IsArray(jt) || ji->valuedouble < 0 ||
                ji->valuedouble >= (double)a->n_seq || ji->valuedouble != floor(ji->valuedouble)) {
                cJSON_Delete(j);
                free(txt);
                rc_fail("%s:%ld: expected {\"index\": i (< %lld), \"tokens\": [...]}", path, lineno,
                        (long long)a->n_seq);
                goto done;
            }
            int64_t i = (int64_t)ji->valuedouble;
            const cJSON *t;
            cJSON_ArrayForEach(t, jt) pads[i] += cJSON_IsNumber(t) && t->valueint == pad_id;
            seen[i] = 1;
            cJSON_Delete(j);
        }
        free(txt);
    }
    int64_t keep = 0, steps = 0;
    int max_len = 0;
    for (int64_t i = 0; i < a->n_seq; i++) {
        if (!seen[i]) {
            rc_fail("%s: no responses line for sequence %lld", dir, (long long)i);
            goto done;
        }
        int n = a->seq_len[i] - pads[i];
        if (n < 0) n = 0;
        *masked += a->seq_len[i] - n;
        if (n == 0) {
            (*dropped)++;
            continue;
        }
        a->seq_shard[keep] = a->seq_shard[i];
        a->seq_row[keep] = a->seq_row[i]; // the first n states of the sequence
        a->seq_len[keep] = n;
        a->reward[keep] = a->reward[i];
        keep++;
        steps += n;
        if (n > max_len) max_len = n;
    }
    if (keep == 0) {
        rc_fail("%s: pad id %d masks every state of every sequence", dir, pad_id);
        goto done;
    }
    a->n_seq = keep;
    a->n_steps = steps;
    a->max_len = max_len;
    rc = 0;
done:
    free(pads);
    free(seen);
    return rc;
}

int64_t rc_acts_rows(const rc_acts *a, int n, const int64_t *ids) {
    int64_t rows = 0;
    for (int i = 0; i < n; i++) rows += a->seq_len[ids[i]];
    return rows;
}

int rc_acts_gather(const rc_acts *a, int n, const int64_t *ids, float *rows, int64_t *off, float *r) {
    off[0] = 0;
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= a->n_seq)
            return rc_fail("sequence id %lld out of range [0, %lld)", (long long)ids[i], (long long)a->n_seq);
        off[i + 1] = off[i] + a->seq_len[ids[i]];
        if (r) r[i] = a->reward[ids[i]];
    }
    int rc = 0;
#pragma omp parallel for schedule(dynamic, 4) reduction(| : rc)
    for (int i = 0; i < n; i++) {
        int64_t id = ids[i];
        const rc_st_tensor *h = rc_st_find(&a->shards[a->seq_shard[id]], "hidden");
        size_t esz = rc_dtype_size(h->dtype);
        rc_st_tensor view = *h; // a window of whole rows; rc_st_to_f32 converts it
        view.data = (const char *)h->data + (size_t)a->seq_row[id] * (size_t)a->d * esz;
        view.shape[0] = a->seq_len[id];
        view.nbytes = (size_t)a->seq_len[id] * (size_t)a->d * esz;
        if (rc_st_to_f32(&view, rows + (size_t)off[i] * (size_t)a->d, (size_t)a->seq_len[id] * (size_t)a->d) != 0)
            rc |= 1;
    }
    if (rc) // the worker threads' own messages are thread-local: report here
        return rc_fail("cannot convert the states of a batch to fp32 (%s)", a->shards[0].path);
    return 0;
}

int rc_acts_gather_raw(const rc_acts *a, int n, const int64_t *ids, void *rows, int64_t *off, float *r,
                       int *dtype) {
    int dt = -1;
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= a->n_seq)
            return rc_fail("sequence id %lld out of range [0, %lld)", (long long)ids[i], (long long)a->n_seq);
        const rc_st_tensor *h = rc_st_find(&a->shards[a->seq_shard[ids[i]]], "hidden");
        if (!h || (h->dtype != RC_DT_F16 && h->dtype != RC_DT_BF16) || (dt >= 0 && (int)h->dtype != dt)) return 1;
        dt = (int)h->dtype;
    }
    off[0] = 0;
    for (int i = 0; i < n; i++) {
        off[i + 1] = off[i] + a->seq_len[ids[i]];
        if (r) r[i] = a->reward[ids[i]];
    }
    const size_t row_bytes = (size_t)a->d * 2;
#pragma omp parallel for schedule(dynamic, 4)
    for (int i = 0; i < n; i++) {
        const rc_st_tensor *h = rc_st_find(&a->shards[a->seq_shard[ids[i]]], "hidden");
        memcpy((char *)rows + (size_t)off[i] * row_bytes, (const char *)h->data + (size_t)a->seq_row[ids[i]] * row_bytes,
               (size_t)a->seq_len[ids[i]] * row_bytes);
    }
    *dtype = dt;
    return 0;
}

void rc_shuffle_i64(int64_t *x, int64_t n, uint64_t *state) {
    for (int64_t i = n - 1; i > 0; i--) {
        uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        int64_t j = (int64_t)(z % (uint64_t)(i + 1));
        int64_t t = x[i];
        x[i] = x[j];
        x[j] = t;
    }
}

static int cmp_i64(const void *p, const void *q) {
    int64_t a = *(const int64_t *)p, b = *(const int64_t *)q;
    return (a > b) - (a < b);
}

int rc_acts_split(int64_t n_seq, double val_frac, uint64_t seed, int64_t **train, int64_t *n_train,
                  int64_t **val, int64_t *n_val) {
    if (val_frac < 0 || val_frac >= 1) return rc_fail("validation fraction %g must be in [0, 1)", val_frac);
    int64_t nv = (int64_t)llround(val_frac * (double)n_seq);
    if (val_frac > 0 && nv == 0 && n_seq >= 2) nv = 1;
    if (nv >= n_seq) nv = n_seq - 1;
    int64_t *all = rc_malloc((size_t)n_seq * sizeof(int64_t), "split");
    int64_t *t = rc_malloc((size_t)(n_seq - nv + 1) * sizeof(int64_t), "train split");
    int64_t *v = rc_malloc((size_t)(nv + 1) * sizeof(int64_t), "validation split");
    if (!all || !t || !v) {
        free(all);
        free(t);
        free(v);
        return -1;
    }
    for (int64_t i = 0; i < n_seq; i++) all[i] = i;
    uint64_t st = seed ^ 0x5eedf00dull;
    rc_shuffle_i64(all, n_seq, &st);
    memcpy(v, all, (size_t)nv * sizeof(int64_t));
    memcpy(t, all + nv, (size_t)(n_seq - nv) * sizeof(int64_t));
    qsort(v, (size_t)nv, sizeof(int64_t), cmp_i64);
    qsort(t, (size_t)(n_seq - nv), sizeof(int64_t), cmp_i64);
    free(all);
    *train = t;
    *n_train = n_seq - nv;
    *val = v;
    *n_val = nv;
    return 0;
}
