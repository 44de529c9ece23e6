// `recontrol eval` (stage 5): average reward, diversity and response length of one run
// directory, or two side by side with deltas; writes PREFIX.json and PREFIX.md atomically and
// prints the Markdown table.
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "base/common.h"
#include "eval/report.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: recontrol eval --run DIR [--against DIR2] [--out PREFIX] [--example]\n\n"
            "Stage 5 of RE-Control: for each run directory (responses from `extract`, rewards from\n"
            "`label`): average reward, diversity, mean response length in tokens and words, share\n"
            "ended by EOS. Each response is cut at the first \"Human:\"/\"User:\" before scoring.\n"
            "Diversity = mean over responses of prod_{n=2..4} (1 - rep_n/100), rep_n = 100 * (1 -\n"
            "|unique n-grams| / (|n-grams| + 1)) over NLTK-style word tokens.\n"
            "With --against, DIR2 is shown next to DIR with deltas (DIR2 - DIR) and, on the prompts\n"
            "both answered, the share where DIR2's reward is higher / equal / lower.\n\n"
            "  --run DIR        the run to evaluate (baseline when comparing)\n"
            "  --against DIR2   a second run (e.g. RE-Control) to compare with DIR\n"
            "  --out PREFIX     write PREFIX.json and PREFIX.md (default DIR/eval)\n"
            "  --example        add the first prompt and its response(s) to the Markdown\n"
            "  -h, --help       this text\n");
}

int cmd_eval(int argc, char **argv) {
    static const struct option opts[] = {
        {"run", required_argument, 0, 'r'}, {"against", required_argument, 0, 'a'},
        {"out", required_argument, 0, 'o'}, {"example", no_argument, 0, 'e'},
        {"help", no_argument, 0, 'h'},      {0, 0, 0, 0}};
    const char *run = NULL, *against = NULL, *out = NULL;
    int example = 0, c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'r': run = optarg; break;
        case 'a': against = optarg; break;
        case 'o': out = optarg; break;
        case 'e': example = 1; break;
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
    if (rc_eval_report(run, against, out, example, stdout)) {
        fprintf(stderr, "recontrol eval: %s\n", rc_last_error());
        return 1;
    }
    return 0;
}
