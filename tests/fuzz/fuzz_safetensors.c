// libFuzzer target for the safetensors header parser: rc_st_parse on arbitrary bytes must either
// fail with a message or yield tensors whose data ranges lie inside the input (every byte of each
// accepted tensor is read, so ASan flags any range the validation let through).
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "base/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    // exact-size heap copy: reads past the end are caught even for the last byte
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    rc_safetensors st;
    rc_fail("%s", ""); // clear, so that a failure without a message is caught
    if (rc_st_parse(&st, buf, size, "fuzz") == 0) {
        volatile uint8_t sink = 0;
        for (int i = 0; i < st.n_tensors; i++) {
            const rc_st_tensor *t = &st.tensors[i];
            const uint8_t *p = t->data;
            for (size_t k = 0; k < t->nbytes; k++) sink ^= p[k];
            if (rc_st_find(&st, t->name) == NULL) abort();
            size_t es = rc_dtype_size(t->dtype);
            if (es && t->nbytes % es) abort(); // sizes were validated
            if ((t->dtype == RC_DT_F32 || t->dtype == RC_DT_F16 || t->dtype == RC_DT_BF16) &&
                t->nbytes <= (1u << 20)) {
                float *out = malloc(t->nbytes / es * sizeof(float) + 1);
                if (out && rc_st_to_f32(t, out, t->nbytes / es) != 0) abort();
                free(out);
            }
        }
        (void)sink;
        rc_st_close(&st);
    } else if (rc_last_error()[0] == 0) {
        abort(); // every failure must say why
    }
    free(buf);
    return 0;
}
