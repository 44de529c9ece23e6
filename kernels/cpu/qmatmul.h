// Matrix products against weights kept in their stored type (GGML block quantizations, F16,
// BF16, F32): y (n, rows) = x (n, cols) @ W (rows, cols)^T with fp32 activations and fp32 sums.
// Blocks are unpacked in registers; the activations are never quantized.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "base/ggml_types.h"

#ifdef __cplusplus
extern "C" {
#endif

// A weight matrix in nn.Linear layout (rows = out features, cols = in features), stored row by
// row in a GGML type (RC_GGML_*): row r is row_bytes bytes at data + r * row_bytes.
// perm_hd > 0: the rows are stored in llama.cpp's per-head interleaved RoPE order (GGUF attn_q /
// attn_k): within each head of perm_hd rows, stored row 2i + j is logical (HF) row j*perm_hd/2 + i.
// Products and rc_qmat_rows_f32 always give logical rows.
typedef struct {
    const void *data;
    uint32_t type;
    int rows, cols;
    size_t row_bytes;
    int perm_hd;
} rc_qmat;

// Fills w (checks that type is computable and cols a multiple of its block). 0 / -1.
int rc_qmat_init(rc_qmat *w, const void *data, uint32_t type, int rows, int cols, int perm_hd);
// 1 when rc_qmat_init accepts the type.
int rc_qmat_type_ok(uint32_t type);
// Bytes the matrix takes in memory.
size_t rc_qmat_bytes(const rc_qmat *w);
// Logical rows [row0, row0 + n) as fp32 into dst (n, cols): the dequantize path, for callers
// that need fp32 (the CUDA upload, the embedding lookup, tests).
void rc_qmat_rows_f32(const rc_qmat *w, int row0, int n, float *dst);
// Stored row r, row k = r % hd of its head -> logical row (GGUF's interleaved Q/K order undone).
static inline int rc_qmat_head_row(int r, int k, int hd) {
    return r - k + (k % 2) * (hd / 2) + k / 2;
}
// Stored row -> logical row (the identity unless perm_hd > 0).
static inline int rc_qmat_logical_row(const rc_qmat *w, int r) {
    if (w->perm_hd <= 0) return r;
    return rc_qmat_head_row(r, r % w->perm_hd, w->perm_hd);
}

// y (n, w->rows) = x (n, w->cols) @ W^T. OpenMP over row blocks. Up to 4 tokens the blocks are
// unpacked in registers and multiplied straight into the sums (each row is read once for all
// tokens); for more tokens a panel of rows is unpacked to fp32 once and multiplied with a
// register-blocked fp32 kernel over all tokens (the weights are still read once per call).
void rc_cpu_qmatmul(float *y, const float *x, const rc_qmat *w, int n);
// Several products sharing x (q/k/v, gate/up) in one parallel region; k <= 4; every W[j] has
// the same cols.
void rc_cpu_qmatmul_multi(int k, float *const *y, const rc_qmat *const *w, const float *x, int n);

// Instruction set of the kernels, chosen at build time from what the compiler targets (the
// build uses -march=native unless RC_NATIVE=OFF): "avx512-vnni" (Q4_0/Q4_1 decode products as
// exact integer dot products against block-integer activations, kernels/cpu/qmatmul.c), "avx512"
// (AVX-512F/BW fused fp32 block kernels on top of AVX2), "avx2" (AVX2 + FMA + F16C) or
// "portable" (plain C). rc_cpu_qmatmul_limit_isa(level) caps it for every later call: 0 the best
// built in, 1 no VNNI, 2 no AVX-512, 3 portable C (tests run every level against the same
// reference).
const char *rc_cpu_qmatmul_isa(void);
void rc_cpu_qmatmul_limit_isa(int level);

#ifdef __cplusplus
}
#endif
