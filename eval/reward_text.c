// Reward-model input text per labelling mode (see reward_text.h): the project's turn cut, the
// reference's training labels (uncut, USER:/ASSISTANT: substitutions) and its evaluation cut.
#include "eval/reward_text.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "eval/rundir.h"

const char *rc_rtext_name(int mode) {
    return mode == RC_RTEXT_REF_TRAIN ? "reference-train"
           : mode == RC_RTEXT_REF_EVAL ? "reference-eval"
                                       : "turn";
}

int rc_rtext_parse(const char *s, int *mode) {
    if (!strcmp(s, "turn")) *mode = RC_RTEXT_TURN;
    else if (!strcmp(s, "reference-train")) *mode = RC_RTEXT_REF_TRAIN;
    else if (!strcmp(s, "reference-eval")) *mode = RC_RTEXT_REF_EVAL;
    else
        return rc_fail("reward text \"%s\": expected turn, reference-train or reference-eval", s);
    return 0;
}

// Python's s.replace(a, b) (all non-overlapping occurrences, left to right); frees s.
static char *replace_all(char *s, const char *a, const char *b) {
    if (!s) return NULL;
    size_t la = strlen(a), lb = strlen(b), n = 0;
    for (const char *p = strstr(s, a); p; p = strstr(p + la, a)) n++;
    if (!n) return s;
    size_t ls = strlen(s);
    char *o = rc_malloc(ls + n * lb + 1, "reward text"), *w = o;
    if (!o) {
        free(s);
        return NULL;
    }
    const char *p = s;
    for (const char *q = strstr(p, a); q; q = strstr(p, a)) {
        memcpy(w, p, (size_t)(q - p));
        w += q - p;
        memcpy(w, b, lb);
        w += lb;
        p = q + la;
    }
    strcpy(w, p);
    free(s);
    return o;
}

// Byte offset of the first case-insensitive (ASCII) occurrence of w in s, or strlen(s).
static size_t find_icase(const char *s, const char *w) {
    size_t lw = strlen(w), ls = strlen(s);
    for (size_t i = 0; i + lw <= ls; i++) {
        size_t k = 0;
        while (k < lw && tolower((unsigned char)s[i + k]) == tolower((unsigned char)w[k])) k++;
        if (k == lw) return i;
    }
    return ls;
}

static char *concat(const char *a, const char *b, size_t nb) {
    size_t na = strlen(a);
    char *o = rc_malloc(na + nb + 1, "reward text");
    if (!o) return NULL;
    memcpy(o, a, na);
    memcpy(o + na, b, nb);
    o[na + nb] = 0;
    return o;
}

char *rc_reward_text(const char *prompt, const char *response, int mode, int hh, const char *split) {
    if (mode == RC_RTEXT_REF_TRAIN) {
        char *t = concat(prompt, response, strlen(response));
        t = replace_all(t, "USER:", "Human:");
        return replace_all(t, "ASSISTANT:", "Assistant:");
    }
    if (mode == RC_RTEXT_REF_EVAL) {
        if (hh) return concat(prompt, response, find_icase(response, "human:"));
        char *t = concat(prompt, response, find_icase(response, split ? split : "Human:"));
        t = replace_all(t, "User:", "Human:");
        return replace_all(t, "ASSISTANT:", "Assistant:");
    }
    return concat(prompt, response, rc_response_cut_len(response));
}
