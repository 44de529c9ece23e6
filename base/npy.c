// NumPy .npy reader/writer for float arrays. Layout: "\x93NUMPY", major, minor, header length
// (u16 LE for v1, u32 LE for v2/v3), a Python dict literal {'descr','fortran_order','shape'}
// padded with spaces and '\n' to a multiple of 64 bytes, then the C-order data.
#include "base/npy.h"
#include "base/common.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define NPY_MAX_DIMS 8

int rc_npy_write_f32(const char *path, const float *data, int ndim, const int64_t *shape) {
    if (ndim < 0 || ndim > NPY_MAX_DIMS)
        return rc_fail("npy %s: %d dims not supported", path, ndim);
    char dict[512];
    size_t n =
        (size_t)snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    uint64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return rc_fail("npy %s: negative dimension %" PRId64, path, shape[i]);
        if (shape[i] && numel > (UINT64_MAX / 8) / (uint64_t)shape[i])
            return rc_fail("npy %s: shape too large", path);
        numel *= (uint64_t)shape[i];
        n += (size_t)snprintf(dict + n, sizeof dict - n, "%s%" PRId64, i ? ", " : "", shape[i]);
    }
    n += (size_t)snprintf(dict + n, sizeof dict - n, "%s), }", ndim == 1 ? "," : "");
    size_t total_hdr = 10 + n + 1; // magic+version+len, dict, '\n'
    size_t pad = (64 - total_hdr % 64) % 64;
    size_t hlen = n + pad + 1;
    size_t nbytes = (size_t)numel * 4;
    size_t flen = 10 + hlen + nbytes;
    unsigned char *buf = rc_malloc(flen, "npy file");
    if (!buf) return -1;
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (unsigned char)(hlen & 0xff);
    buf[9] = (unsigned char)(hlen >> 8);
    memcpy(buf + 10, dict, n);
    memset(buf + 10 + n, ' ', pad);
    buf[10 + hlen - 1] = '\n';
    if (nbytes) memcpy(buf + 10 + hlen, data, nbytes); // little-endian host assumed (x86, arm64)
    int rc = rc_write_file_atomic(path, buf, flen);
    free(buf);
    return rc;
}

// Finds 'key': in the dict text and returns a pointer just past the colon (and spaces).
static const char *dict_value(const char *dict, const char *key) {
    char pat[32];
    snprintf(pat, sizeof pat, "'%s'", key);
    const char *p = strstr(dict, pat);
    if (!p) {
        snprintf(pat, sizeof pat, "\"%s\"", key);
        p = strstr(dict, pat);
    }
    if (!p) return NULL;
    p += strlen(pat);
    while (*p == ' ')
        p++;
    if (*p != ':') return NULL;
    p++;
    while (*p == ' ')
        p++;
    return p;
}

int rc_npy_read_f32(const char *path, float **data, int *ndim, int64_t *shape) {
    *data = NULL;
    size_t len = 0;
    unsigned char *buf = (unsigned char *)rc_read_file(path, &len);
    if (!buf) return -1;
    int rc = -1;
    char *dict = NULL;
    if (len < 10 || memcmp(buf, "\x93NUMPY", 6) != 0) {
        rc_fail("%s: not a .npy file (bad magic)", path);
        goto out;
    }
    int major = buf[6];
    size_t hlen, hoff;
    if (major == 1) {
        hlen = (size_t)buf[8] | ((size_t)buf[9] << 8);
        hoff = 10;
    } else if (major == 2 || major == 3) {
        if (len < 12) {
            rc_fail("%s: truncated .npy header", path);
            goto out;
        }
        hlen = (size_t)buf[8] | ((size_t)buf[9] << 8) | ((size_t)buf[10] << 16) |
               ((size_t)buf[11] << 24);
        hoff = 12;
    } else {
        rc_fail("%s: .npy format version %d is not supported", path, major);
        goto out;
    }
    if (hlen > len - hoff) {
        rc_fail("%s: .npy header length %zu runs past the end of the file", path, hlen);
        goto out;
    }
    dict = rc_malloc(hlen + 1, "npy header");
    if (!dict) goto out;
    memcpy(dict, buf + hoff, hlen);
    dict[hlen] = 0;

    const char *v = dict_value(dict, "descr");
    int item;
    if (v && (!strncmp(v, "'<f4'", 5) || !strncmp(v, "\"<f4\"", 5)))
        item = 4;
    else if (v && (!strncmp(v, "'<f8'", 5) || !strncmp(v, "\"<f8\"", 5)))
        item = 8;
    else {
        rc_fail("%s: .npy dtype %.12s is not supported ('<f4' or '<f8' expected)", path,
                v ? v : "(missing)");
        goto out;
    }
    v = dict_value(dict, "fortran_order");
    if (!v || strncmp(v, "False", 5) != 0) {
        rc_fail("%s: .npy array is not C-ordered (fortran_order must be False)", path);
        goto out;
    }
    v = dict_value(dict, "shape");
    if (!v || *v != '(') {
        rc_fail("%s: .npy header has no shape tuple", path);
        goto out;
    }
    v++;
    int nd = 0;
    uint64_t numel = 1;
    for (;;) {
        while (*v == ' ')
            v++;
        if (*v == ')') break;
        if (*v < '0' || *v > '9') {
            rc_fail("%s: malformed .npy shape", path);
            goto out;
        }
        char *endp;
        unsigned long long dim = strtoull(v, &endp, 10);
        v = endp;
        if (*v == 'L') v++; // Python 2 longs
        if (nd == NPY_MAX_DIMS) {
            rc_fail("%s: .npy array has more than %d dims", path, NPY_MAX_DIMS);
            goto out;
        }
        if (dim > (1ull << 40) || (dim && numel > (1ull << 40) / dim)) {
            rc_fail("%s: .npy shape too large", path);
            goto out;
        }
        shape[nd++] = (int64_t)dim;
        numel *= dim;
        while (*v == ' ')
            v++;
        if (*v == ',')
            v++;
        else if (*v != ')') {
            rc_fail("%s: malformed .npy shape", path);
            goto out;
        }
    }
    size_t need = (size_t)numel * (size_t)item;
    if (len - hoff - hlen != need) {
        rc_fail("%s: .npy data holds %zu bytes but the shape needs %zu (truncated?)", path,
                len - hoff - hlen, need);
        goto out;
    }
    *ndim = nd;
    float *out = rc_malloc(numel ? (size_t)numel * 4 : 4, "npy data");
    if (!out) goto out;
    const unsigned char *src = buf + hoff + hlen;
    if (item == 4) {
        memcpy(out, src, need);
    } else {
        for (size_t i = 0; i < numel; i++) {
            double dv;
            memcpy(&dv, src + 8 * i, 8);
            out[i] = (float)dv;
        }
    }
    *data = out;
    rc = 0;
out:
    free(dict);
    free(buf);
    return rc;
}
