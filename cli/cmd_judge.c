// `recontrol judge`: the paper's win rate, two runs (or a run and the dataset's answers) judged
// pairwise with the reference's gpt4_eval.py protocol by an OpenAI-compatible endpoint or by a
// local judge model run in this process.
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/args.h"
#include "base/common.h"
#include "cli/commands.h"
#include "pipeline/judge_run.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: recontrol judge --run DIR (--against DIR2 | --against-reference)\n"
            "                       (--url URL --model NAME | --judge-model DIR|GGUF | --replay FILE.jsonl)\n"
            "                       --out PREFIX [options]\n\n"
            "The paper's win rate with the reference's gpt4_eval.py protocol: for each pair (same\n"
            "dataset item) the judge gets its system prompt and user template word for word, the two\n"
            "answers cut before \"###USER:\" and \"\\n\\nUSER:\" (\" \" when empty), in an order drawn\n"
            "per pair as random.randint(0, 1) after Python's random.seed(SEED) (and random.sample of\n"
            "--sample pairs first, as the reference draws 100), temperature 0, max_tokens 2048. The\n"
            "reply's first line must be two numbers separated by one space; a reply that is not\n"
            "scores 0 and 0, which counts as a tie (as in the reference) and is reported.\n"
            "DIR is the \"red\" run (win = its score higher), DIR2 the \"blue\" one.\n\n"
            "  --run DIR             the run judged\n"
            "  --against DIR2        the run it is compared with (paired by dataset item)\n"
            "  --against-reference   compare with the dataset's preferred answers instead\n"
            "  --url URL             OpenAI-compatible endpoint: base (\"http://host:port/v1\") or the\n"
            "                        full .../chat/completions URL (default $RECONTROL_JUDGE_URL)\n"
            "  --model NAME          the request's model (default $RECONTROL_JUDGE_MODEL)\n"
            "  --api-key-env VAR     bearer token from this environment variable (default\n"
            "                        OPENAI_API_KEY when set)\n"
            "  --judge-model PATH    a local judge instead of an endpoint: an HF directory or GGUF\n"
            "                        file run by this engine (its generation loop, greedy) on the\n"
            "                        same system + user messages rendered with its chat template;\n"
            "                        the reply is cut at its end-of-turn token or EOS, at most\n"
            "                        --max-tokens tokens (fewer when its context ends first)\n"
            "  --chat-format NAME    the local judge's chat format (vicuna, chatml, llama3; default:\n"
            "                        recognised from its chat template)\n"
            "  --device cpu|cuda     where the local judge runs (default cpu)\n"
            "  --dtype T             its CUDA weight type: f16 (default), bf16 or f32\n"
            "  --batch N             pairs the local judge answers at once (default 8)\n"
            "  --threads N           CPU threads of the local judge (default all cores)\n"
            "  --replay FILE         recorded replies {\"user\", \"reply\"} instead of an endpoint\n"
            "  --out PREFIX          PREFIX.jsonl (every reply, appended; a rerun resumes from it),\n"
            "                        PREFIX.json and PREFIX.md (the summary)\n"
            "  --seed S              Python random.seed (default 0)\n"
            "  --sample K            judge K pairs drawn with random.sample (the reference: 100);\n"
            "                        default all pairs in order\n"
            "  --retries N           retries of a failed request, exponential backoff (default 5)\n"
            "  --rpm R               at most R requests per minute (default no limit)\n"
            "  --timeout S           seconds per request (default 300)\n"
            "  --max-tokens N        the request's max_tokens (default 2048, the reference's)\n"
            "  -h, --help            this text\n");
}

int cmd_judge(int argc, char **argv) {
    static const struct option opts[] = {
        {"run", required_argument, 0, 'r'},      {"against", required_argument, 0, 'a'},
        {"against-reference", no_argument, 0, 'R'}, {"url", required_argument, 0, 'u'},
        {"model", required_argument, 0, 'm'},    {"api-key-env", required_argument, 0, 'k'},
        {"replay", required_argument, 0, 'p'},   {"out", required_argument, 0, 'o'},
        {"seed", required_argument, 0, 's'},     {"sample", required_argument, 0, 'n'},
        {"retries", required_argument, 0, 't'},  {"rpm", required_argument, 0, 'q'},
        {"timeout", required_argument, 0, 'T'},  {"max-tokens", required_argument, 0, 'M'},
        {"judge-model", required_argument, 0, 'J'}, {"chat-format", required_argument, 0, 'F'},
        {"device", required_argument, 0, 'D'},   {"dtype", required_argument, 0, 'W'},
        {"batch", required_argument, 0, 'B'},    {"threads", required_argument, 0, 'H'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    rc_judge_opts o;
    rc_judge_opts_default(&o);
    const char *key_env = NULL;
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'r': o.run = optarg; break;
        case 'a': o.against = optarg; break;
        case 'R': o.against_reference = 1; break;
        case 'u': o.url = optarg; break;
        case 'm': o.model = optarg; break;
        case 'k': key_env = optarg; break;
        case 'p': o.replay = optarg; break;
        case 'o': o.out = optarg; break;
        case 's':
            o.seed = strtoull(optarg, &end, 10);
            if (*end || optarg[0] == '-') goto bad_num;
            break;
        case 'n':
            o.sample = strtoll(optarg, &end, 10);
            if (*end || o.sample < 0) goto bad_num;
            break;
        case 't':
            o.retries = (int)strtol(optarg, &end, 10);
            if (*end || o.retries < 0 || o.retries > 100) goto bad_num;
            break;
        case 'q':
            o.rpm = strtod(optarg, &end);
            if (*end || o.rpm < 0) goto bad_num;
            break;
        case 'T':
            o.timeout_s = strtod(optarg, &end);
            if (*end || o.timeout_s <= 0) goto bad_num;
            break;
        case 'M':
            o.max_tokens = (int)strtol(optarg, &end, 10);
            if (*end || o.max_tokens < 1) goto bad_num;
            break;
        case 'J': o.judge_model = optarg; break;
        case 'F': o.chat_format = optarg; break;
        case 'D':
        case 'W':
            if (c == 'D' ? rc_device_parse(optarg, &o.device) : rc_wtype_parse(optarg, &o.wtype)) {
                fprintf(stderr, "recontrol judge: %s\n", rc_last_error());
                return 2;
            }
            break;
        case 'B':
        case 'H':
            if (c == 'B' ? rc_parse_i32("--batch", optarg, 1, 4096, &o.batch)
                         : rc_parse_i32("--threads", optarg, 0, 4096, &o.n_threads)) {
                fprintf(stderr, "recontrol judge: %s\n", rc_last_error());
                return 2;
            }
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
        continue;
    bad_num:
        fprintf(stderr, "recontrol judge: bad number '%s' (see --help)\n", optarg);
        return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "recontrol judge: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    if (!o.url && !o.replay && !o.judge_model && getenv("RECONTROL_JUDGE_URL"))
        o.url = getenv("RECONTROL_JUDGE_URL");
    if (o.judge_model && (o.url || o.replay)) {
        fprintf(stderr, "recontrol judge: --judge-model runs the judge here: drop --url / --replay\n");
        return 2;
    }
    if (!o.judge_model && (o.device != RC_DEVICE_CPU || o.chat_format)) {
        fprintf(stderr, "recontrol judge: --device and --chat-format choose how the local judge runs: "
                        "they need --judge-model\n");
        return 2;
    }
    if (!o.model && getenv("RECONTROL_JUDGE_MODEL")) o.model = getenv("RECONTROL_JUDGE_MODEL");
    if (key_env) {
        o.api_key = getenv(key_env);
        if (!o.api_key) {
            fprintf(stderr, "recontrol judge: --api-key-env %s: the variable is not set\n", key_env);
            return 2;
        }
    } else
        o.api_key = getenv("OPENAI_API_KEY");
    if (!o.run || !o.out) {
        fprintf(stderr, "recontrol judge: --run DIR and --out PREFIX are required (see --help)\n");
        return 2;
    }
    if (o.url && !o.model) {
        fprintf(stderr, "recontrol judge: --url needs --model (or $RECONTROL_JUDGE_MODEL)\n");
        return 2;
    }
    if (rc_judge_run(&o)) {
        fprintf(stderr, "recontrol judge: %s\n", rc_last_error());
        return 1;
    }
    return 0;
}
