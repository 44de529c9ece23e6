// `recontrol extract` (stage 1): argument parsing for pipeline/extract.c's rc_extract_run.
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/args.h"
#include "base/common.h"
#include "cli/commands.h"
#include "engine/backend.h"
#include "engine/control.h"
#include "engine/generate.h"
#include "pipeline/stages.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: recontrol extract [--model PATH] --data FILE --out DIR [options]\n\n"
            "Stage 1 of RE-Control: greedy rollouts for every prompt and the final post-norm hidden\n"
            "state (the state before the LM head) of every valid step, as ragged safetensors shards.\n"
            "Step 0 is the state at the last prompt position; a sequence's steps run up to and\n"
            "including the one that emits EOS (n_states = n_new_tokens).\n\n"
            "  --model PATH            HF directory (config.json + safetensors) or .gguf (default:\n"
            "                          the default model, see `recontrol setup`)\n"
            "  --data FILE             JSONL or JSONL.gz prompts\n"
            "  --format hh|shp|plain|ids  hh: {\"chosen\"} (HH-RLHF; prompt = chosen with \"Human:\"\n"
            "                          -> \"Human: \", cut after the last \"Assistant:\"); shp:\n"
            "                          {\"history\"} (prompt = \"Human: \" + history + \"\\nAssistant:\");\n"
            "                          plain: {\"prompt\"}; ids: {\"ids\": [token ids]} (default hh)\n"
            "  --turn-prefix S         the turn prefix of hh/shp prompts instead of \"Human: \" (the\n"
            "                          reference uses \"User: \" for Llama-3 and Falcon)\n"
            "  --chat                  put the prompt in the model's chat format (one user turn +\n"
            "                          the assistant opening); its turn end stops like EOS. The\n"
            "                          responses keep the unwrapped prompt\n"
            "  --out DIR               run directory (created; resumed when it holds a partial run)\n"
            "  --max-new-tokens N      new tokens per prompt (default 128)\n"
            "  --batch N               sequences decoded together (default 32)\n"
            "  --max-prompt-tokens N   longer prompts are skipped and reported (default 512)\n"
            "  --dtype fp32|fp16|bf16  stored state precision (default bf16)\n"
            "  --limit N               use the first N dataset records only\n"
            "  --shard-size N          sequences per shard (default 256)\n"
            "  --no-acts               responses only (no hidden-state shards)\n"
            "  --value-model FILE      RE-Control: edit each state by gradient ascent on this value\n"
            "  --step-size A           ... step size alpha (default 0.5)\n"
            "  --steps N               ... number of ascent steps (default 30)\n"
            "  --eos-id ID             an extra end-of-sequence token id (repeatable)\n"
            "  --threads N             CPU threads (default: all)\n"
            "  --device cpu|cuda       where the model runs (default cpu); cuda needs a CUDA build\n"
            "                          and a GPU (the states are copied off the device while the\n"
            "                          next step runs)\n"
            "  --weight-dtype T        --device cuda weight type: f16 (default), bf16 or f32\n"
            "  --overwrite             discard what DIR holds (shards, responses, rewards, label and\n"
            "                          eval files) instead of resuming\n"
            "  -h, --help              this text\n\n"
            "Writes DIR/extract.json (settings, totals), DIR/acts-NNNNN.safetensors (hidden\n"
            "[n_steps, d], offsets [n_seq+1] I64; metadata first_seq, n_seq), DIR/responses-NNNNN.jsonl\n"
            "({index, item, line, prompt, response, n_tokens, finish, prompt_ids, tokens}) and, when\n"
            "done, DIR/responses.jsonl. Progress with tok/s and ETA goes to stderr.\n");
}

static int parse_args(int argc, char **argv, rc_extract_opts *o) {
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},       {"data", required_argument, 0, 'd'},
        {"format", required_argument, 0, 'f'},      {"out", required_argument, 0, 'o'},
        {"max-new-tokens", required_argument, 0, 'n'}, {"batch", required_argument, 0, 'b'},
        {"max-prompt-tokens", required_argument, 0, 'p'}, {"dtype", required_argument, 0, 't'},
        {"limit", required_argument, 0, 'l'},       {"shard-size", required_argument, 0, 's'},
        {"no-acts", no_argument, 0, 'A'},           {"value-model", required_argument, 0, 'v'},
        {"step-size", required_argument, 0, 'a'},   {"steps", required_argument, 0, 'k'},
        {"eos-id", required_argument, 0, 'e'},      {"threads", required_argument, 0, 'T'},
        {"chat", no_argument, 0, 'c'},              {"overwrite", no_argument, 0, 'O'},
        {"device", required_argument, 0, 'D'},      {"weight-dtype", required_argument, 0, 'W'},
        {"turn-prefix", required_argument, 0, 'P'},
        {"help", no_argument, 0, 'h'},              {0, 0, 0, 0}};
    rc_extract_opts_default(o);
    int c;
    long v;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': o->model = optarg; break;
        case 'd': o->data = optarg; break;
        case 'f': o->format = optarg; break;
        case 'o': o->out = optarg; break;
        case 't': o->dtype = optarg; break;
        case 'v': o->value_model = optarg; break;
        case 'P': o->turn_prefix = optarg; break;
        case 'c': o->chat = 1; break;
        case 'A': o->no_acts = 1; break;
        case 'O': o->overwrite = 1; break;
        case 'D': if (rc_device_parse(optarg, &o->device)) return -1; break;
        case 'W': if (rc_wtype_parse(optarg, &o->wtype)) return -1; break;
        case 'n': if (rc_parse_int("--max-new-tokens", optarg, 1, RC_MAX_NEW_TOKENS, &o->max_new)) return -1; break;
        case 'b': if (rc_parse_int("--batch", optarg, 1, 4096, &o->batch)) return -1; break;
        case 'p': if (rc_parse_int("--max-prompt-tokens", optarg, 1, RC_MAX_NEW_TOKENS, &o->max_prompt)) return -1; break;
        case 'l': if (rc_parse_int("--limit", optarg, 0, 1L << 40, &o->limit)) return -1; break;
        case 's': if (rc_parse_int("--shard-size", optarg, 1, 1 << 24, &o->shard_size)) return -1; break;
        case 'k': if (rc_parse_int("--steps", optarg, 0, RC_CONTROL_MAX_STEPS, &o->steps)) return -1; break;
        case 'T': if (rc_parse_int("--threads", optarg, 0, 4096, &o->threads)) return -1; break;
        case 'e':
            if (rc_parse_int("--eos-id", optarg, 0, 1L << 30, &v)) return -1;
            if (o->n_extra_eos >= RC_MAX_EOS) return rc_fail("at most %d --eos-id", RC_MAX_EOS);
            o->extra_eos[o->n_extra_eos++] = (int)v;
            break;
        case 'a':
            if (rc_parse_real("--step-size", optarg, 0, RC_CONTROL_MAX_STEP_SIZE, 0, &o->step_size))
                return -1;
            break;
        case 'h': usage(stdout); return 1;
        default: usage(stderr); return -1;
        }
    }
    if (optind < argc) return rc_fail("unexpected argument '%s' (see --help)", argv[optind]);
    if (!o->data) return rc_fail("--data FILE is required (see --help)");
    if (!o->out) return rc_fail("--out DIR is required (see --help)");
    if (strcmp(o->dtype, "fp32") && strcmp(o->dtype, "fp16") && strcmp(o->dtype, "bf16"))
        return rc_fail("--dtype must be fp32, fp16 or bf16, got '%s'", o->dtype);
    return 0;
}

int cmd_extract(int argc, char **argv) {
    rc_extract_opts o;
    int r = parse_args(argc, argv, &o);
    if (r == 1) return 0;
    if (r == 0) r = rc_extract_run(&o);
    if (r != 0) {
        fprintf(stderr, "recontrol extract: %s\n", rc_last_error());
        return 1;
    }
    return 0;
}
