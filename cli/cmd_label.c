// `recontrol label` (stage 2): argument parsing for pipeline/label.c's rc_label_run.
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/reward_text.h"
#include "base/args.h"
#include "base/common.h"
#include "cli/commands.h"
#include "engine/backend.h"
#include "pipeline/stages.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: recontrol label --run DIR (--reward-model PATH | --judge PATH|default) [options]\n\n"
            "Stage 2 of RE-Control: one reward per (prompt, response) of DIR's responses, written to\n"
            "DIR/rewards.jsonl as {\"index\": i, \"reward\": r}. The response is cut at the next\n"
            "\"Human:\" or \"User:\" turn before scoring.\n\n"
            "  --run DIR             a run directory written by `recontrol extract`\n"
            "  --reward-model PATH   LLaMA reward model (score.weight or regression_head.weight): the\n"
            "                        head on the last token of prompt + response\n"
            "  --judge PATH|default  causal LM judge: reward = log p(\"Yes\") - log p(\"No\") for the\n"
            "                        first token of its answer to this user message, put in the\n"
            "                        judge's chat format (its chat template; Vicuna v1.1 if none):\n"
            "                          %s\n"
            "                        (first %%s: the prompt, second: the response)\n"
            "  --text MODE           what a reward model reads: turn (default: prompt + response cut\n"
            "                        at the next turn), reference-train (the reference's\n"
            "                        reward_label.py: whole text, uncut, USER:/ASSISTANT: ->\n"
            "                        Human:/Assistant:), reference-eval (its measure_reward.py cut:\n"
            "                        HH at \"human:\", SHP at the run's turn word, any case)\n"
            "  --batch N             sequences per forward batch (default 8)\n"
            "  --threads N           CPU threads (default: all)\n"
            "  --device cpu|cuda     where the model runs (default cpu)\n"
            "  --dtype T             --device cuda weight type: f16 (default), bf16 or f32\n"
            "  --overwrite           relabel even if DIR/rewards.jsonl exists\n"
            "  -h, --help            this text\n",
            rc_label_judge_template());
}

static int parse_args(int argc, char **argv, rc_label_opts *o) {
    static const struct option opts[] = {
        {"run", required_argument, 0, 'r'},   {"reward-model", required_argument, 0, 'm'},
        {"judge", required_argument, 0, 'j'}, {"batch", required_argument, 0, 'b'},
        {"threads", required_argument, 0, 'T'}, {"overwrite", no_argument, 0, 'O'},
        {"device", required_argument, 0, 'D'}, {"dtype", required_argument, 0, 'W'},
        {"text", required_argument, 0, 'x'},
        {"help", no_argument, 0, 'h'},        {0, 0, 0, 0}};
    rc_label_opts_default(o);
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'r': o->run = optarg; break;
        case 'm': o->rm = optarg; break;
        case 'j': o->judge = optarg; break;
        case 'O': o->overwrite = 1; break;
        case 'x': if (rc_rtext_parse(optarg, &o->reward_text)) return -1; break;
        case 'D': if (rc_device_parse(optarg, &o->device)) return -1; break;
        case 'W': if (rc_wtype_parse(optarg, &o->wtype)) return -1; break;
        case 'b': if (rc_parse_int("--batch", optarg, 1, 4096, &o->batch)) return -1; break;
        case 'T': if (rc_parse_int("--threads", optarg, 0, 4096, &o->threads)) return -1; break;
        case 'h': usage(stdout); return 1;
        default: usage(stderr); return -1;
        }
    }
    if (optind < argc) return rc_fail("unexpected argument '%s' (see --help)", argv[optind]);
    if (!o->run) return rc_fail("--run DIR is required (see --help)");
    if (!!o->rm == !!o->judge) return rc_fail("give exactly one of --reward-model PATH or --judge PATH|default");
    return 0;
}

int cmd_label(int argc, char **argv) {
    rc_label_opts o;
    int r = parse_args(argc, argv, &o);
    if (r == 1) return 0;
    if (r == 0) r = rc_label_run(&o);
    if (r != 0) {
        fprintf(stderr, "recontrol label: %s\n", rc_last_error());
        return 1;
    }
    return 0;
}
