// `recontrol train`: stage 3, the value network V(o) trained with the Bellman loss on the states
// captured by `extract` and the rewards written by `label` (run-dir schema: train/activations.h).
#define _GNU_SOURCE
#include <getopt.h>
#include <limits.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "base/args.h"
#include "base/common.h"
#include "train/train.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: recontrol train --data DIR --out VALUE.safetensors [options]\n\n"
            "Trains the RE-Control value network V(o) on post-norm hidden states with the Bellman loss\n"
            "  sum_{t<T} (V(o_t) - sg[V(o_{t+1})])^2 + (V(o_T) - r)^2, summed over a batch / batch size.\n\n"
            "input (DIR, as written by `recontrol extract` and `recontrol label`):\n"
            "  DIR/acts-00000.safetensors ...   hidden [n_steps, d] F32/F16/BF16, offsets [n_seq+1] I64\n"
            "  DIR/rewards.jsonl                one {\"index\": i, \"reward\": r} per sequence\n\n"
            "options:\n"
            "  --data DIR           run directory with the shards and rewards (required)\n"
            "  --out PATH           value model to write, safetensors fc1.weight/fc1.bias/... (required);\n"
            "                       loads in PyTorch with load_state_dict\n"
            "  --preset NAME        paper3 = d->4096->4096->1 (default), paper2 = d->4096->1\n"
            "  --hidden LIST        hidden widths instead of a preset, e.g. 4096,4096 or 256\n"
            "  --epochs N           passes over the training sequences (default 100)\n"
            "  --batch-size N       sequences per Adam step (default 512)\n"
            "  --lr F               Adam learning rate (default 1e-4; betas 0.9/0.999, eps 1e-8)\n"
            "  --seed N             init, train/validation split and shuffle order (default 0)\n"
            "  --val-frac F         fraction of sequences held out for validation (default 0.1)\n"
            "  --pad-id ID          the reference's pad convention: new tokens equal to ID count as\n"
            "                       padding and a sequence keeps its first (states - that count)\n"
            "                       states, so the state emitting an EOS equal to ID is not trained on\n"
            "                       (reference: Falcon 11, Llama-3 128001, Vicuna 0 = never: all\n"
            "                       valid). Default: every stored state, the EOS step included\n"
            "  --reference-loss     the reference code's loss instead of the paper's: gradient through\n"
            "                       V(o_{t+1}) and the reward on the first step (V(o_0) - r)^2\n"
            "  --dtype fp32|bf16    compute precision; bf16 = torch.autocast-style rounding of every\n"
            "                       linear layer's operands and outputs, fp32 weights/Adam (default fp32)\n"
            "  --init PATH          start from an existing value model instead of a fresh init\n"
            "  --log PATH           JSON log of the losses (default: OUT with .train.json)\n"
            "  --chunk-rows N       states per forward/backward chunk, bounds memory (default 2048)\n"
            "  --threads N          OpenMP threads (default 0: all cores)\n"
            "  --device cpu|cuda    where to train (default cpu); cuda keeps the parameters, Adam state and\n"
            "                       one batch on the GPU and streams the states from the shards through\n"
            "                       pinned buffers, so the dataset may be larger than GPU memory\n"
            "  --checkpoint PATH    training checkpoint (default: OUT with .ckpt): parameters, Adam state,\n"
            "                       step, epoch order and position; written atomically by rank 0 at the\n"
            "                       end of every epoch\n"
            "  --checkpoint-every N also every N Adam steps (default 0: epoch ends only)\n"
            "  --no-checkpoint      write no checkpoint\n"
            "  --resume             go on from the checkpoint when there is one (else start): the final\n"
            "                       weights equal an uninterrupted run's (bit for bit on the same device\n"
            "                       and threads); a larger --epochs extends a finished training\n"
            "  --max-steps N        stop after N Adam steps in all, leaving a checkpoint and no model\n"
            "                       (for testing --resume)\n"
            "  --quiet              print only the last epoch\n"
            "  -h, --help           this help\n");
}

int cmd_train(int argc, char **argv) {
    rc_train_opts o;
    rc_train_opts_default(&o);
    const char *preset = NULL, *hidden = NULL;
    int threads = 0;
    enum { O_DATA = 256, O_OUT, O_PRESET, O_HIDDEN, O_EPOCHS, O_BS, O_LR, O_SEED, O_VAL, O_REF, O_DTYPE,
           O_INIT, O_LOG, O_CHUNK, O_THREADS, O_QUIET, O_DEVICE, O_PAD,
           O_CKPT, O_CKPT_EVERY, O_NO_CKPT, O_RESUME, O_MAX_STEPS };
    static const struct option opts[] = {
        {"data", required_argument, 0, O_DATA},     {"out", required_argument, 0, O_OUT},
        {"preset", required_argument, 0, O_PRESET}, {"hidden", required_argument, 0, O_HIDDEN},
        {"epochs", required_argument, 0, O_EPOCHS}, {"batch-size", required_argument, 0, O_BS},
        {"lr", required_argument, 0, O_LR},         {"seed", required_argument, 0, O_SEED},
        {"val-frac", required_argument, 0, O_VAL},  {"reference-loss", no_argument, 0, O_REF},
        {"dtype", required_argument, 0, O_DTYPE},   {"init", required_argument, 0, O_INIT},
        {"log", required_argument, 0, O_LOG},       {"chunk-rows", required_argument, 0, O_CHUNK},
        {"threads", required_argument, 0, O_THREADS}, {"quiet", no_argument, 0, O_QUIET},
        {"device", required_argument, 0, O_DEVICE}, {"pad-id", required_argument, 0, O_PAD},
        {"checkpoint", required_argument, 0, O_CKPT}, {"checkpoint-every", required_argument, 0, O_CKPT_EVERY},
        {"no-checkpoint", no_argument, 0, O_NO_CKPT}, {"resume", no_argument, 0, O_RESUME},
        {"max-steps", required_argument, 0, O_MAX_STEPS},
        {"help", no_argument, 0, 'h'},              {0, 0, 0, 0}};
    optind = 0; // may run in-process after another subcommand (pipeline)
    opterr = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case O_DATA: o.data_dir = optarg; break;
        case O_OUT: o.out_path = optarg; break;
        case O_PRESET: preset = optarg; break;
        case O_HIDDEN: hidden = optarg; break;
        case O_EPOCHS: bad = rc_parse_i32("--epochs", optarg, 0, RC_TRAIN_MAX_EPOCHS, &o.epochs); break;
        case O_BS: bad = rc_parse_i32("--batch-size", optarg, 1, 1 << 24, &o.batch_size); break;
        case O_LR: bad = rc_parse_real("--lr", optarg, 0, RC_TRAIN_MAX_LR, RC_RANGE_OPEN_MIN, &o.lr); break;
        case O_SEED: bad = rc_parse_u64("--seed", optarg, &o.seed); break;
        case O_PAD: bad = rc_parse_i32("--pad-id", optarg, 0, 1 << 30, &o.pad_id); break;
        case O_VAL: bad = rc_parse_real("--val-frac", optarg, 0, 1, RC_RANGE_OPEN_MAX, &o.val_frac); break;
        case O_REF: o.mode = RC_BELLMAN_REFERENCE; break;
        case O_DTYPE:
            if (!strcmp(optarg, "fp32")) o.dtype = RC_VALUE_FP32;
            else if (!strcmp(optarg, "bf16")) o.dtype = RC_VALUE_BF16;
            else bad = rc_fail("--dtype expects fp32 or bf16, got '%s'", optarg);
            break;
        case O_INIT: o.init_path = optarg; break;
        case O_LOG: o.log_path = optarg; break;
        case O_CHUNK: bad = rc_parse_i32("--chunk-rows", optarg, 1, 1 << 24, &o.chunk_rows); break;
        case O_THREADS: bad = rc_parse_i32("--threads", optarg, 0, 4096, &threads); break;
        case O_QUIET: o.quiet = 1; break;
        case O_DEVICE:
            if (!strcmp(optarg, "cpu")) o.device = 0;
            else if (!strcmp(optarg, "cuda")) o.device = 1;
            else bad = rc_fail("--device expects cpu or cuda, got '%s'", optarg);
            break;
        case O_CKPT: o.checkpoint_path = optarg; break;
        case O_CKPT_EVERY: bad = rc_parse_i32("--checkpoint-every", optarg, 0, INT32_MAX, &o.checkpoint_every); break;
        case O_NO_CKPT: o.no_checkpoint = 1; break;
        case O_RESUME: o.resume = 1; break;
        case O_MAX_STEPS: bad = rc_parse_int("--max-steps", optarg, 1, LONG_MAX, &o.max_steps); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
        if (bad) {
            fprintf(stderr, "recontrol train: %s\n", rc_last_error());
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "recontrol train: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!o.data_dir || !o.out_path) {
        fprintf(stderr, "recontrol train: --data and --out are required\n\n");
        usage(stderr);
        return 2;
    }
    if (preset && hidden) {
        fprintf(stderr, "recontrol train: give --preset or --hidden, not both\n");
        return 2;
    }
    const char *spec = hidden ? hidden : preset;
    if (spec) {
        if (preset && strcmp(preset, "paper2") && strcmp(preset, "paper3")) {
            fprintf(stderr, "recontrol train: unknown preset '%s' (paper2 or paper3)\n", preset);
            return 2;
        }
        int n = rc_value_parse_hidden(spec, o.hidden);
        if (n < 0) {
            fprintf(stderr, "recontrol train: %s\n", rc_last_error());
            return 2;
        }
        o.n_hidden = n;
    }
    if (threads > 0) omp_set_num_threads(threads);
    if (rc_train_run(&o) != 0) {
        fprintf(stderr, "recontrol train: %s\n", rc_last_error());
        return 1;
    }
    return 0;
}
