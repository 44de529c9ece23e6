// The table of GGML tensor types (ids, names, block geometry) as ggml's type traits define them.
#include "base/ggml_types.h"

#include "base/common.h"

typedef struct {
    uint32_t id;
    const char *name;
    int elems, bytes, dequant;
} type_info;

static const type_info k_types[] = {
    {0, "F32", 1, 4, 1},          {1, "F16", 1, 2, 1},          {2, "Q4_0", 32, 18, 1},
    {3, "Q4_1", 32, 20, 1},       {6, "Q5_0", 32, 22, 1},       {7, "Q5_1", 32, 24, 1},
    {8, "Q8_0", 32, 34, 1},       {9, "Q8_1", 32, 36, 0},       {10, "Q2_K", 256, 84, 1},
    {11, "Q3_K", 256, 110, 1},    {12, "Q4_K", 256, 144, 1},    {13, "Q5_K", 256, 176, 1},
    {14, "Q6_K", 256, 210, 1},    {15, "Q8_K", 256, 292, 0},    {16, "IQ2_XXS", 256, 66, 0},
    {17, "IQ2_XS", 256, 74, 0},   {18, "IQ3_XXS", 256, 98, 0},  {19, "IQ1_S", 256, 50, 0},
    {20, "IQ4_NL", 32, 18, 0},    {21, "IQ3_S", 256, 110, 0},   {22, "IQ2_S", 256, 82, 0},
    {23, "IQ4_XS", 256, 136, 0},  {24, "I8", 1, 1, 0},          {25, "I16", 1, 2, 0},
    {26, "I32", 1, 4, 0},         {27, "I64", 1, 8, 0},         {28, "F64", 1, 8, 0},
    {29, "IQ1_M", 256, 56, 0},    {30, "BF16", 1, 2, 1},        {34, "TQ1_0", 256, 54, 0},
    {35, "TQ2_0", 256, 66, 0},    {39, "MXFP4", 32, 17, 0},
};

static const type_info *find_type(uint32_t type) {
    for (size_t i = 0; i < sizeof k_types / sizeof k_types[0]; i++)
        if (k_types[i].id == type) return &k_types[i];
    return NULL;
}

const char *rc_ggml_type_name(uint32_t type) {
    const type_info *t = find_type(type);
    return t ? t->name : "unknown";
}

int rc_ggml_type_geometry(uint32_t type, int *block_elems, int *block_bytes) {
    const type_info *t = find_type(type);
    if (!t) return rc_fail("unknown ggml tensor type id %u", type);
    *block_elems = t->elems;
    *block_bytes = t->bytes;
    return 0;
}

int rc_ggml_can_dequant(uint32_t type) {
    const type_info *t = find_type(type);
    return t && t->dequant;
}

