// GGUF v2/v3 reader: header, metadata key/values, tensor infos, alignment; the file is mmapped.
// Every length and offset is checked against the file size before use.
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    RC_GGUF_UINT8 = 0, RC_GGUF_INT8 = 1, RC_GGUF_UINT16 = 2, RC_GGUF_INT16 = 3,
    RC_GGUF_UINT32 = 4, RC_GGUF_INT32 = 5, RC_GGUF_FLOAT32 = 6, RC_GGUF_BOOL = 7,
    RC_GGUF_STRING = 8, RC_GGUF_ARRAY = 9, RC_GGUF_UINT64 = 10, RC_GGUF_INT64 = 11,
    RC_GGUF_FLOAT64 = 12,
} rc_gguf_type;

typedef struct {
    const char *ptr; // not NUL-terminated: points into the mapping
    uint64_t len;
} rc_gguf_str;

typedef struct {
    char *key;         // NUL-terminated copy
    rc_gguf_type type; //
    // scalars
    union {
        uint64_t u64;
        int64_t i64;
        double f64;
        int b;
    } v;
    rc_gguf_str str;
    // arrays: element type, count, pointer to the first element in the mapping. For string
    // arrays use rc_gguf_arr_str to walk them (strings are length-prefixed, variable size).
    rc_gguf_type arr_type;
    uint64_t arr_n;
    const uint8_t *arr_data;
    const rc_gguf_str *arr_strs; // for string arrays: arr_n entries (allocated at parse time)
} rc_gguf_kv;

typedef struct {
    char *name;
    uint32_t n_dims;
    uint64_t ne[4];       // ggml order: ne[0] is the fastest-varying (row length)
    uint32_t ggml_type;   // GGML_TYPE_* id (0 F32, 1 F16, 2 Q4_0, 3 Q4_1, 8 Q8_0, 14 Q6_K, 30 BF16..)
    uint64_t offset;      // relative to the data section
    const void *data;     // absolute pointer into the mapping
    size_t nbytes;
} rc_gguf_tensor;

typedef struct {
    char path[1024];
    void *map;
    size_t map_len;
    uint32_t version;
    uint32_t alignment;
    rc_gguf_kv *kv;
    int64_t n_kv;
    rc_gguf_tensor *tensors;
    int64_t n_tensors;
} rc_gguf;

int rc_gguf_parse(rc_gguf *g, const void *buf, size_t len, const char *path_for_errors);
int rc_gguf_open(rc_gguf *g, const char *path);
void rc_gguf_close(rc_gguf *g);
const rc_gguf_kv *rc_gguf_find(const rc_gguf *g, const char *key);
const rc_gguf_tensor *rc_gguf_find_tensor(const rc_gguf *g, const char *name);
// Typed getters: 0 on success, -1 when absent or of an incompatible type (no error set when
// absent, so callers can apply defaults).
int rc_gguf_get_u64(const rc_gguf *g, const char *key, uint64_t *out);
int rc_gguf_get_f32(const rc_gguf *g, const char *key, float *out);
// Returns a malloc'd NUL-terminated copy of a string value, or NULL.
char *rc_gguf_get_str(const rc_gguf *g, const char *key);

#ifdef __cplusplus
}
#endif
