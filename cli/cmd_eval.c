// `recontrol eval` (stage 5): average reward, diversity, response length and (with a BERT model)
// coherence of one run directory, or two side by side with deltas; writes PREFIX.json and PREFIX.md atomically and
// prints the Markdown table.
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "base/args.h"
#include "base/common.h"
#include "base/rundir_lock.h"
#include "eval/report.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: recontrol eval --run DIR [--against DIR2] [--out PREFIX] [--example]\n"
            "                      [--coherence-model BERT_DIR [--pool auto|cls|cls_before_pooler]\n"
            "                       [--max-len N] [--device cpu|cuda]] [--cut turn|metrics]\n"
            "                      [--judge FILE]\n\n"
            "Stage 5 of RE-Control: for each run directory (responses from `extract`, rewards from\n"
            "`label`): average reward, diversity, mean response length in tokens and words, share\n"
            "ended by EOS, and with --coherence-model the coherence. Each response is cut before\n"
            "scoring: --cut turn (default) at the first \"Human:\"/\"User:\"; --cut metrics as the\n"
            "reference's metrics.py (before \"###USER:\", then before \"\\n\\nUSER:\"; empty -> \" \").\n"
            "Diversity = mean over responses of prod_{n=2..4} (1 - rep_n/100), rep_n = 100 * (1 -\n"
            "|unique n-grams| / (|n-grams| + 1)) over NLTK-style word tokens.\n"
            "With --against, DIR2 is shown next to DIR with deltas (DIR2 - DIR) and, on the prompts\n"
            "both answered, the share where DIR2's reward is higher / equal / lower.\n"
            "Coherence = mean over responses of cos(embedding(prompt), embedding(response)) with a\n"
            "BERT encoder, as the paper (SimCSE princeton-nlp/sup-simcse-bert-base-uncased): the\n"
            "pooler output (SimCSE's rule: [CLS] state before the pooler when the directory name\n"
            "contains \"unsup\"), [CLS] text [SEP] truncated to 128 tokens, unit length.\n\n"
            "  --run DIR        the run to evaluate (baseline when comparing)\n"
            "  --against DIR2   a second run (e.g. RE-Control) to compare with DIR\n"
            "  --out PREFIX     write PREFIX.json and PREFIX.md (default DIR/eval)\n"
            "  --example        add the first prompt and its response(s) to the Markdown\n"
            "  --coherence-model DIR  an HF BERT directory (config.json, model.safetensors,\n"
            "                   tokenizer.json or vocab.txt): report coherence\n"
            "  --pool P         auto (default, SimCSE's rule), cls (pooler output), cls_before_pooler\n"
            "  --max-len N      truncation in WordPiece tokens (default 128, SimCSE's)\n"
            "  --device cpu|cuda  where the coherence encoder runs (default cpu; cuda keeps the\n"
            "                   weights in fp32 on the GPU and batches 32 prompt/response pairs)\n"
            "  --cut C          turn (default) or metrics (the reference's metrics.py)\n"
            "  --judge FILE     add a `recontrol judge` summary (PREFIX.json): the win rate\n"
            "  -h, --help       this text\n");
}

int cmd_eval(int argc, char **argv) {
    static const struct option opts[] = {
        {"run", required_argument, 0, 'r'}, {"against", required_argument, 0, 'a'},
        {"out", required_argument, 0, 'o'}, {"example", no_argument, 0, 'e'},
        {"coherence-model", required_argument, 0, 'c'}, {"pool", required_argument, 0, 'p'},
        {"max-len", required_argument, 0, 'm'},  {"cut", required_argument, 0, 'u'},
        {"judge", required_argument, 0, 'j'}, {"device", required_argument, 0, 'D'},
        {"help", no_argument, 0, 'h'},      {0, 0, 0, 0}};
    const char *run = NULL, *against = NULL, *out = NULL, *coh_dir = NULL;
    int example = 0, c, max_len = 0;
    rc_pool_kind pool = RC_POOL_AUTO;
    rc_device device = RC_DEVICE_CPU;
    rc_eval_opts eo = {0};
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'r': run = optarg; break;
        case 'a': against = optarg; break;
        case 'o': out = optarg; break;
        case 'e': example = 1; break;
        case 'c': coh_dir = optarg; break;
        case 'j': eo.judge = optarg; break;
        case 'p':
            if (!strcmp(optarg, "auto")) pool = RC_POOL_AUTO;
            else if (!strcmp(optarg, "cls")) pool = RC_POOL_CLS;
            else if (!strcmp(optarg, "cls_before_pooler")) pool = RC_POOL_CLS_BEFORE_POOLER;
            else {
                fprintf(stderr, "recontrol eval: --pool %s: expected auto, cls or cls_before_pooler\n", optarg);
                return 2;
            }
            break;
        case 'm':
            if (rc_parse_i32("--max-len", optarg, 2, 100000, &max_len)) {
                fprintf(stderr, "recontrol eval: %s\n", rc_last_error());
                return 2;
            }
            break;
        case 'u':
            if (rc_cut_parse(optarg, &eo.cut)) {
                fprintf(stderr, "recontrol eval: --cut: %s\n", rc_last_error());
                return 2;
            }
            break;
        case 'D':
            if (rc_device_parse(optarg, &device)) {
                fprintf(stderr, "recontrol eval: %s\n", rc_last_error());
                return 2;
            }
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "recontrol eval: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    if (!run) {
        fprintf(stderr, "recontrol eval: --run DIR is required (see --help)\n");
        return 2;
    }
    if (out) { // checked before the runs are read and scored
        char json[4096];
        if (snprintf(json, sizeof json, "%s.json", out) >= (int)sizeof json ||
            rc_check_output_file("--out", json)) {
            fprintf(stderr, "recontrol eval: %s\n", rc_last_error());
            return 1;
        }
    }
    rc_coherence *coh = NULL;
    int rc = 1;
    if (device != RC_DEVICE_CPU && !coh_dir) {
        fprintf(stderr, "recontrol eval: --device %s runs the coherence encoder: it needs "
                        "--coherence-model\n", rc_device_name(device));
        return 2;
    }
    if (rc_device_check(device)) goto done; // before any model is read
    if (coh_dir) {
        if (rc_coherence_open(&coh, coh_dir, pool, max_len, device)) goto done;
        eo.coh = coh;
    }
    if (rc_eval_report_opts(run, against, out, example, stdout, &eo)) goto done;
    rc = 0;
done:
    if (rc) fprintf(stderr, "recontrol eval: %s\n", rc_last_error());
    rc_coherence_free(coh);
    return rc;
}
