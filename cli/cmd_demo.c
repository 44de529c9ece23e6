// `recontrol demo`: the whole RE-Control pipeline on the default model (SmolLM2-135M-Instruct)
// with the project's own demo prompts (recipes/demo.json): minutes on a CPU, ends with plain vs
// RE-Control decoding on held-out prompts (reward, diversity, one example pair).
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "base/common.h"
#include "pipeline/stages.h"

#ifndef RC_RECIPES_DIR
#define RC_RECIPES_DIR "recipes"
#endif


static void demo_usage(FILE *f) {
    fprintf(f, "usage: recontrol demo [--out DIR] [--recipe FILE]\n\n"
               "Runs the five RE-Control stages on the default model with the demo recipe\n"
               "(" RC_RECIPES_DIR "/demo.json): rollouts + hidden states on 36 training prompts,\n"
               "judge rewards from the same model, a small value network, then plain and\n"
               "controlled decoding on 12 held-out prompts, compared side by side.\n"
               "Needs the default model: run `recontrol setup` first (the quick start does).\n\n"
               "  --out DIR      output directory (default runs/demo)\n"
               "  --recipe FILE  another recipe instead of the demo one\n"
               "  -h, --help     this text\n");
}

int cmd_demo(int argc, char **argv) {
    static const struct option opts[] = {{"out", required_argument, 0, 'o'},
                                         {"recipe", required_argument, 0, 'r'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *out = "runs/demo";
    const char *recipe = RC_RECIPES_DIR "/demo.json";
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "ho:r:", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'r': recipe = optarg; break;
        case 'h': demo_usage(stdout); return 0;
        default: demo_usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        demo_usage(stderr);
        return 2;
    }
    if (rc_pipeline_run(recipe, out, -1, -1) != 0) {
        fprintf(stderr, "recontrol demo: error: %s\n", rc_last_error());
        return 1;
    }
    return 0;
}
