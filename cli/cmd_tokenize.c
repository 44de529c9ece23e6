// `recontrol tokenize`: text -> token ids (one line, or JSON with the pieces), or --decode ids ->
// text, with the tokenizer of an HF model directory or a GGUF file (default: the default model).
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "base/args.h"
#include "base/progress.h"
#include "base/safetensors.h"
#include "pipeline/codec.h"
#include "base/common.h"
#include "base/utf8.h"
#include "base/default_model.h"
#include "tokenizer/tokenizer.h"

static void tokenize_usage(FILE *f) {
    fprintf(f,
            "usage: recontrol tokenize [--model PATH] (--text TEXT | --file PATH | --decode IDS)\n\n"
            "Encodes text to token ids exactly as the model's HF tokenizer does, or decodes ids.\n\n"
            "  -m, --model PATH   HF model directory (tokenizer.json, or tokenizer.model +\n"
            "                     tokenizer_config.json) or .gguf file; default: the default model\n"
            "  -t, --text TEXT    text to encode\n"
            "  -f, --file PATH    encode the contents of a file ('-' for standard input)\n"
            "  --no-special       do not add BOS/EOS (added by default when the model's config\n"
            "                     says so)\n"
            "  --json             print {\"ids\": [...], \"pieces\": [...]} (encode) or\n"
            "                     {\"text\": ...} (decode)\n"
            "  -d, --decode IDS   decode comma- or space-separated ids to text\n"
            "  --skip-special     with --decode: drop special tokens\n"
            "  -h, --help         this text\n");
}

// Reads all of a file, or of stdin for "-".
static char *read_all(const char *path, size_t *len) {
    if (strcmp(path, "-")) return rc_read_file(path, len);
    size_t cap = 1 << 16, n = 0;
    char *b = rc_malloc(cap, "standard input");
    if (!b) return NULL;
    size_t k;
    while ((k = fread(b + n, 1, cap - n - 1, stdin)) > 0) {
        n += k;
        if (cap - n - 1 == 0) {
            char *nb = realloc(b, cap *= 2);
            if (!nb) {
                free(b);
                rc_fail("out of memory reading standard input");
                return NULL;
            }
            b = nb;
        }
    }
    b[n] = 0;
    *len = n;
    return b;
}

int cmd_tokenize(int argc, char **argv) {
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"text", required_argument, 0, 't'},
        {"file", required_argument, 0, 'f'},  {"decode", required_argument, 0, 'd'},
        {"json", no_argument, 0, 'j'},        {"no-special", no_argument, 0, 'n'},
        {"skip-special", no_argument, 0, 's'}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *model = NULL, *text = NULL, *file = NULL, *decode = NULL;
    int json = 0, special = 1, skip = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:t:f:d:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 't': text = optarg; break;
        case 'f': file = optarg; break;
        case 'd': decode = optarg; break;
        case 'j': json = 1; break;
        case 'n': special = 0; break;
        case 's': skip = 1; break;
        case 'h': tokenize_usage(stdout); return 0;
        default: tokenize_usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "recontrol tokenize: unexpected argument '%s'\n", argv[optind]);
        tokenize_usage(stderr);
        return 2;
    }
    if ((text != NULL) + (file != NULL) + (decode != NULL) != 1) {
        fprintf(stderr, "recontrol tokenize: give exactly one of --text, --file or --decode\n");
        tokenize_usage(stderr);
        return 2;
    }
    char defpath[4096];
    if (!model) {
        if (rc_default_model_require(defpath, sizeof defpath)) {
            fprintf(stderr, "recontrol tokenize: %s\n", rc_last_error());
            return 1;
        }
        model = defpath;
    }
    rc_tokenizer *t = rc_tokenizer_load(model);
    if (!t) {
        fprintf(stderr, "recontrol tokenize: %s\n", rc_last_error());
        return 1;
    }
    int rc = 0, *ids = NULL, n = 0;
    char *buf = NULL;
    if (decode) {
        size_t len;
        char *s = NULL;
        if (rc_parse_id_list("--decode", decode, &ids, &n) || !(s = rc_tokenizer_decode_n(t, ids, n, skip, &len))) {
            fprintf(stderr, "recontrol tokenize: %s\n", rc_last_error());
            rc = 1;
        } else if (json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "text", s);
            char *js = rc_json_print(o, 0);
            printf("%s\n", js);
            free(js);
            cJSON_Delete(o);
        } else {
            fwrite(s, 1, len, stdout);
            fputc('\n', stdout);
        }
        free(s);
    } else {
        size_t len = text ? strlen(text) : 0;
        if (file && !(buf = read_all(file, &len))) rc = 1;
        if (!rc && rc_tokenizer_encode(t, text ? text : buf, len, special, &ids, &n)) rc = 1;
        if (rc) fprintf(stderr, "recontrol tokenize: %s\n", rc_last_error());
        else if (json) {
            cJSON *o = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(o, "ids"),
                  *p = cJSON_AddArrayToObject(o, "pieces");
            for (int i = 0; i < n; i++) {
                cJSON_AddItemToArray(a, cJSON_CreateNumber(ids[i]));
                cJSON_AddItemToArray(p, cJSON_CreateString(rc_tokenizer_piece(t, ids[i])));
            }
            char *js = rc_json_print(o, 0);
            printf("%s\n", js);
            free(js);
            cJSON_Delete(o);
        } else {
            for (int i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
            printf("\n");
        }
    }
    free(buf);
    free(ids);
    rc_tokenizer_free(t);
    return rc;
}
