// `recontrol pipeline RECIPE.json`: argument parsing for pipeline/run.c's rc_pipeline_run.
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "base/common.h"
#include "cli/commands.h"
#include "engine/backend.h"
#include "pipeline/stages.h"

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
            "  --out DIR        override the recipe's output directory\n"
            "  --device D       cpu or cuda: every model stage on that backend (default: the\n"
            "                   recipe's \"device\", else cpu)\n"
            "  --dtype T        --device cuda weight type: f16, bf16 or f32 (default: the\n"
            "                   recipe's \"weight_dtype\", else f16)\n"
            "  -h, --help       this text\n");
}

int cmd_pipeline(int argc, char **argv) {
    static const struct option opts[] = {
        {"out", required_argument, 0, 'o'}, {"device", required_argument, 0, 'D'},
        {"dtype", required_argument, 0, 'W'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *out = NULL;
    int c, device = -1, wtype = -1;
    rc_device dv;
    rc_wtype wt;
    optind = 1;
    while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'D':
        case 'W':
            if (c == 'D' ? rc_device_parse(optarg, &dv) : rc_wtype_parse(optarg, &wt)) {
                fprintf(stderr, "recontrol pipeline: %s\n", rc_last_error());
                return 2;
            }
            if (c == 'D') device = (int)dv;
            else wtype = (int)wt;
            break;
        case 'h': pipeline_usage(stdout); return 0;
        default: pipeline_usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        pipeline_usage(stderr);
        return 2;
    }
    if (rc_pipeline_run(argv[optind], out, device, wtype) != 0) {
        fprintf(stderr, "recontrol pipeline: error: %s\n", rc_last_error());
        return 1;
    }
    return 0;
}
