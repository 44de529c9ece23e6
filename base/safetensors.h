// safetensors: an mmapped reader (header validated: length, JSON, dtypes, shapes, offsets in
// range and non-overlapping) and a writer (atomic: temp file + rename). Format: u64 LE header
// length N, N bytes of JSON {name: {dtype, shape, data_offsets:[begin,end]}, "__metadata__": {}},
// then the data buffer.
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    RC_DT_F32 = 0,
    RC_DT_F16,
    RC_DT_BF16,
    RC_DT_I64,
    RC_DT_I32,
    RC_DT_U8,
    RC_DT_OTHER, // a dtype that parses but the engine does not compute with (e.g. F64, I8)
} rc_dtype;

#define RC_ST_MAX_DIMS 8

typedef struct {
    char *name;
    rc_dtype dtype;
    char dtype_str[16]; // as written in the file ("F32", ...)
    int ndim;
    int64_t shape[RC_ST_MAX_DIMS];
    const void *data; // points into the mapping
    size_t nbytes;
} rc_st_tensor;

typedef struct {
    char path[1024];
    void *map;
    size_t map_len;
    rc_st_tensor *tensors;
    int n_tensors;
} rc_safetensors;

size_t rc_dtype_size(rc_dtype dt); // 0 for RC_DT_OTHER

// Parses a safetensors image already in memory (used by the fuzzer and by open). The tensors
// point into buf, which must outlive st. 0 / -1 with a message naming what is wrong.
int rc_st_parse(rc_safetensors *st, const void *buf, size_t len, const char *path_for_errors);
int rc_st_open(rc_safetensors *st, const char *path); // mmaps path, then parses
void rc_st_close(rc_safetensors *st);
const rc_st_tensor *rc_st_find(const rc_safetensors *st, const char *name);

// Converts a tensor of any float dtype (F32/F16/BF16) to fp32 (n = element count).
int rc_st_to_f32(const rc_st_tensor *t, float *out, size_t n);

// Writer: collect tensors (data copied by pointer; must stay valid until write), then write.
typedef struct {
    const char *name;
    rc_dtype dtype;
    int ndim;
    int64_t shape[RC_ST_MAX_DIMS];
    const void *data;
} rc_st_entry;

// Writes entries to path atomically; metadata is an optional NULL-terminated key/value list.
int rc_st_write(const char *path, const rc_st_entry *entries, int n, const char *const *metadata_kv);

// Reads the "__metadata__" object of a safetensors file's header: value of key (malloc'd), or
// NULL with an error when absent.
char *rc_st_read_metadata(const char *path, const char *key);

#ifdef __cplusplus
}
#endif
