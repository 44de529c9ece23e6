// libFuzzer target for the GGUF reader: rc_gguf_parse on arbitrary bytes must either fail with a
// message or yield metadata and tensors that lie inside the input. Every byte of each accepted
// tensor and string is read (ASan flags any range the validation let through), and the first
// row of each dequantizable tensor is converted (UBSan checks the bit manipulation).
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "base/gguf.h"
#include "kernels/cpu/dequant.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *buf = malloc(size ? size : 1); // exact-size copy: overreads are caught
    if (!buf) return 0;
    memcpy(buf, data, size);
    rc_gguf g;
    rc_fail("%s", "");
    if (rc_gguf_parse(&g, buf, size, "fuzz") == 0) {
        volatile uint8_t sink = 0;
        for (int64_t i = 0; i < g.n_kv; i++) {
            const rc_gguf_kv *kv = &g.kv[i];
            if (rc_gguf_find(&g, kv->key) == NULL) abort();
            if (kv->type == RC_GGUF_STRING)
                for (uint64_t k = 0; k < kv->str.len; k++) sink ^= (uint8_t)kv->str.ptr[k];
            if (kv->type == RC_GGUF_ARRAY && kv->arr_strs)
                for (uint64_t a = 0; a < kv->arr_n; a++)
                    for (uint64_t k = 0; k < kv->arr_strs[a].len; k++)
                        sink ^= (uint8_t)kv->arr_strs[a].ptr[k];
            uint64_t u;
            float f;
            (void)rc_gguf_get_u64(&g, kv->key, &u);
            (void)rc_gguf_get_f32(&g, kv->key, &f);
            free(rc_gguf_get_str(&g, kv->key));
        }
        for (int64_t i = 0; i < g.n_tensors; i++) {
            const rc_gguf_tensor *t = &g.tensors[i];
            const uint8_t *p = t->data;
            for (size_t k = 0; k < t->nbytes; k++) sink ^= p[k];
            if (p < buf || p + t->nbytes > buf + size) abort();
            if (rc_gguf_find_tensor(&g, t->name) == NULL) abort();
            int be, bb;
            if (rc_ggml_type_geometry(t->ggml_type, &be, &bb) != 0) abort(); // validated
            if (rc_ggml_can_dequant(t->ggml_type) && t->ne[0] <= 4096) {
                float *row = malloc(t->ne[0] * sizeof(float));
                if (row && rc_dequant_row(t->ggml_type, p, row, (int64_t)t->ne[0]) != 0) abort();
                free(row);
            }
        }
        (void)sink;
        rc_gguf_close(&g);
    } else if (rc_last_error()[0] == 0) {
        abort(); // every failure must say why
    }
    free(buf);
    return 0;
}
