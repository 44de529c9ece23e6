// `--device cpu|cuda` and `--dtype f16|bf16|f32` for the commands: option parsing, and the CUDA
// paths of `recontrol logits` (forward + LM head -> fp32 host logits) and `recontrol generate`
// (greedy only: batched prefill, then the device decode graph, RE-Control edit included).
// Without RC_HAVE_CUDA every CUDA entry point fails with "this binary was built without CUDA".
#pragma once
#include "engine/generate.h"
#include "engine/model.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { RC_DEVICE_CPU = 0, RC_DEVICE_CUDA = 1 };
// Weight types of the CUDA engine (same values as rc_cuda_dtype).
enum { RC_DEV_F32 = 0, RC_DEV_F16 = 1, RC_DEV_BF16 = 2 };

// "cpu" / "cuda" -> *dev. 0 / -1 (message names the accepted values).
int rc_device_parse(const char *s, int *dev);
// "f16" / "bf16" / "f32" -> *dt. 0 / -1.
int rc_device_dtype_parse(const char *s, int *dt);

// 0 when the CUDA engine can run here; -1 with "this binary was built without CUDA" or
// "no CUDA device: <reason>".
int rc_device_cuda_check(void);

// Causal LM logits on the device: ids (n) at positions 0..n-1, slot 0; out (n_out, vocab) host
// with n_out = last_only ? 1 : n. Reward models are refused (use --device cpu). 0 / -1.
int rc_device_cuda_logits(const rc_model *m, int dt, int n, const int *ids, int last_only,
                          float *out);

// Greedy generation on the device for n prompts, batch sequences at a time (prefill of the
// group, then the decode graph). gp->sample.temperature must be 0. value_path (may be NULL):
// RE-Control value network (2 or 3 linear layers) applied with alpha / steps on the device.
// out as rc_generate (EOS included, finish set). 0 / -1.
int rc_device_cuda_generate(const rc_model *m, int dt, int n, const int *const *prompts,
                            const int *prompt_lens, const rc_gen_params *gp, int batch,
                            const char *value_path, float alpha, int steps, rc_gen_output *out);

#ifdef __cplusplus
}
#endif
