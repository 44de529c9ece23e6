// `recontrol logits`: one forward over a list of token ids; writes float32 logits [n_ids, vocab]
// as .npy (causal LM), or the rewards [1, num_labels] of the whole sequence (reward model: the
// head applied to the final post-norm state of the last token).
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "base/args.h"
#include "base/progress.h"
#include "base/safetensors.h"
#include "pipeline/codec.h"
#include "engine/backend.h"
#include "base/common.h"
#include "base/rundir_lock.h"
#include "base/npy.h"

static void logits_usage(FILE *f) {
    fprintf(f,
            "usage: recontrol logits --model PATH --ids 1,2,3 --out FILE.npy [options]\n\n"
            "Runs the model once over the token ids (positions 0..n-1, no BOS added) and writes\n"
            "a float32 .npy file:\n"
            "  causal LM     logits [n_ids, vocab_size] (row i predicts the token after ids[i])\n"
            "  reward model  rewards [1, num_labels]: the reward head on the final post-norm\n"
            "                hidden state of the LAST id (the whole sequence's reward)\n\n"
            "  --model PATH  HF model directory (config.json + safetensors) or .gguf file\n"
            "  --ids LIST    comma-separated token ids\n"
            "  --out FILE    output .npy (written atomically)\n"
            "  --last        causal LM: only the last row, [1, vocab_size]\n"
            "  --threads N   CPU threads (default: all cores)\n"
            "  --device D    cpu (default) or cuda (causal LMs; needs a CUDA build and a GPU)\n"
            "  --dtype T     --device cuda weight type: f16 (default), bf16 or f32\n"
            "  -h, --help    this text\n");
}

int cmd_logits(int argc, char **argv) {
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"ids", required_argument, 0, 'i'},
                                         {"out", required_argument, 0, 'o'},
                                         {"last", no_argument, 0, 'l'},
                                         {"threads", required_argument, 0, 't'},
                                         {"device", required_argument, 0, 'D'},
                                         {"dtype", required_argument, 0, 'T'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *model_path = NULL, *ids_str = NULL, *out_path = NULL;
    int last_only = 0, threads = 0, c;
    rc_device device = RC_DEVICE_CPU;
    rc_wtype dtype = RC_WT_F16;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hm:i:o:lt:", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model_path = optarg; break;
        case 'i': ids_str = optarg; break;
        case 'o': out_path = optarg; break;
        case 'l': last_only = 1; break;
        case 't':
            if (rc_parse_i32("--threads", optarg, 0, 4096, &threads)) {
                fprintf(stderr, "recontrol logits: %s\n", rc_last_error());
                return 2;
            }
            break;
        case 'D':
        case 'T':
            if (c == 'D' ? rc_device_parse(optarg, &device) : rc_wtype_parse(optarg, &dtype)) {
                fprintf(stderr, "recontrol logits: %s\n", rc_last_error());
                return 2;
            }
            break;
        case 'h': logits_usage(stdout); return 0;
        default: logits_usage(stderr); return 2;
        }
    }
    if (optind != argc || !model_path || !ids_str || !out_path) {
        fprintf(stderr, "recontrol logits: --model, --ids and --out are required\n\n");
        logits_usage(stderr);
        return 2;
    }
    int *ids = NULL, n = 0, rc = 1;
    rc_model m;
    memset(&m, 0, sizeof m);
    rc_backend *be = NULL;
    float *out = NULL;
    int *slots = NULL, *pos = NULL, *rows = NULL;
    if (rc_device_check(device) || rc_check_output_file("--out", out_path)) goto fail;
    if (rc_parse_id_list("--ids", ids_str, &ids, &n) || rc_model_load(model_path, &m)) goto fail;
    const rc_config *cfg = &m.cfg;
    for (int i = 0; i < n; i++)
        if (ids[i] >= cfg->vocab_size) {
            rc_fail("--ids: id %d (position %d) is outside the vocabulary (%d tokens)", ids[i], i,
                    cfg->vocab_size);
            goto fail;
        }
    if (n > cfg->max_position_embeddings)
        fprintf(stderr, "recontrol logits: warning: %d ids run past the model's context of %d positions\n",
                n, cfg->max_position_embeddings);
    const int reward = cfg->arch == RC_ARCH_REWARD;
    const int n_out = reward || last_only ? 1 : n;
    const int width = reward ? cfg->num_labels : cfg->vocab_size;
    rc_backend_opts bo = {.device = device, .wtype = dtype, .n_slots = 1, .max_len = n,
                          .max_tokens = n_out == 1 && n > 512 ? 512 : n, .n_threads = threads};
    if (rc_backend_open(&be, &m, &bo)) goto fail;
    slots = rc_calloc((size_t)n, sizeof(int), "slots");
    pos = rc_malloc(sizeof(int) * (size_t)n, "positions");
    rows = rc_malloc(sizeof(int) * (size_t)n, "rows");
    out = rc_malloc(sizeof(float) * (size_t)n_out * width, "output");
    if (!slots || !pos || !rows || !out) goto fail;
    for (int i = 0; i < n; i++) {
        pos[i] = i;
        rows[i] = n_out == 1 ? (i == n - 1 ? 0 : -1) : i;
    }
    if (rc_backend_forward(be, n, ids, slots, pos, rows)) goto fail;
    if (reward ? rc_backend_reward(be, 1, out) : rc_backend_logits(be, n_out, out)) goto fail;
    int64_t shape[2] = {n_out, width};
    if (rc_npy_write_f32(out_path, out, 2, shape)) goto fail;
    fprintf(stderr, "recontrol logits: wrote %s [%d, %d] (%s)\n", out_path, n_out, width,
            reward ? "rewards" : "logits");
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "recontrol logits: error: %s\n", rc_last_error());
done:
    free(ids), free(slots), free(pos), free(rows), free(out);
    rc_backend_close(be);
    rc_model_free(&m);
    return rc;
}
