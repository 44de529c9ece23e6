// A small C interface over libsentencepiece (C++). The model proto is edited on load so that
// SentencePiece adds no dummy "▁" prefix: the caller applies HF's Metaspace rule itself. The proto
// is edited at the protobuf wire level (no generated headers are needed): ModelProto field 3 is
// NormalizerSpec, whose field 3 is add_dummy_prefix. rc_spm_build_proto writes a minimal
// ModelProto (pieces, BPE trainer spec with byte_fallback, identity normaliser) from a GGUF vocab.
#include "tokenizer/spm.h"

#include <sentencepiece_processor.h>

#include <cstring>
#include <string>
#include <vector>

#include "base/common.h"

struct rc_spm {
    sentencepiece::SentencePieceProcessor sp;
};

namespace {

// Reads a varint at p (bounded by end); returns false on malformed input.
bool read_varint(const uint8_t *&p, const uint8_t *end, uint64_t *v) {
    uint64_t r = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (p >= end) return false;
        uint8_t b = *p++;
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            return true;
        }
    }
    return false;
}

void put_varint(std::string &out, uint64_t v) {
    while (v >= 0x80) {
        out.push_back((char)(0x80 | (v & 0x7f)));
        v >>= 7;
    }
    out.push_back((char)v);
}

// Skips one field of the given wire type; false when malformed.
bool skip_field(const uint8_t *&p, const uint8_t *end, int wt) {
    uint64_t v;
    switch (wt) {
    case 0: return read_varint(p, end, &v);
    case 1: if (end - p < 8) return false; p += 8; return true;
    case 5: if (end - p < 4) return false; p += 4; return true;
    case 2:
        if (!read_varint(p, end, &v) || (uint64_t)(end - p) < v) return false;
        p += v;
        return true;
    default: return false;
    }
}

// Copies the message [p, end) dropping field `drop`, then appends field `drop` = value (varint).
bool rewrite_bool(const uint8_t *p, const uint8_t *end, uint32_t drop, int value, std::string &out) {
    while (p < end) {
        const uint8_t *start = p;
        uint64_t tag;
        if (!read_varint(p, end, &tag)) return false;
        if (!skip_field(p, end, (int)(tag & 7))) return false;
        if ((tag >> 3) != drop) out.append((const char *)start, (size_t)(p - start));
    }
    put_varint(out, (uint64_t)drop << 3);
    put_varint(out, value ? 1 : 0);
    return true;
}

// ModelProto with NormalizerSpec.add_dummy_prefix forced to false.
bool disable_dummy_prefix(const std::string &in, std::string &out) {
    const uint8_t *p = (const uint8_t *)in.data(), *end = p + in.size();
    bool seen = false;
    while (p < end) {
        const uint8_t *start = p;
        uint64_t tag;
        if (!read_varint(p, end, &tag)) return false;
        int wt = (int)(tag & 7);
        if ((tag >> 3) == 3 && wt == 2) {
            uint64_t n;
            if (!read_varint(p, end, &n) || (uint64_t)(end - p) < n) return false;
            std::string sub;
            if (!rewrite_bool(p, p + n, 3, 0, sub)) return false;
            p += n;
            put_varint(out, (3 << 3) | 2);
            put_varint(out, sub.size());
            out += sub;
            seen = true;
            continue;
        }
        if (!skip_field(p, end, wt)) return false;
        out.append((const char *)start, (size_t)(p - start));
    }
    if (!seen) { // no NormalizerSpec at all: add one with add_dummy_prefix = false
        std::string sub;
        put_varint(sub, 3 << 3);
        put_varint(sub, 0);
        put_varint(out, (3 << 3) | 2);
        put_varint(out, sub.size());
        out += sub;
    }
    return true;
}

void put_bytes_field(std::string &out, uint32_t field, const std::string &s) {
    put_varint(out, ((uint64_t)field << 3) | 2);
    put_varint(out, s.size());
    out += s;
}

rc_spm *load_serialized(const std::string &raw, const char *what) {
    std::string edited;
    if (!disable_dummy_prefix(raw, edited)) {
        rc_fail("%s: not a SentencePiece model (malformed protobuf)", what);
        return nullptr;
    }
    rc_spm *s = new (std::nothrow) rc_spm;
    if (!s) {
        rc_fail("out of memory loading %s", what);
        return nullptr;
    }
    auto st = s->sp.LoadFromSerializedProto(edited);
    if (!st.ok()) {
        rc_fail("%s: sentencepiece could not load the model: %s", what, st.ToString().c_str());
        delete s;
        return nullptr;
    }
    return s;
}

} // namespace

extern "C" {

rc_spm *rc_spm_load_file(const char *path) {
    size_t len = 0;
    char *buf = rc_read_file(path, &len);
    if (!buf) return nullptr;
    std::string raw(buf, len);
    free(buf);
    return load_serialized(raw, path);
}

rc_spm *rc_spm_build_proto(int n, const char *const *pieces, const uint32_t *piece_lens,
                           const float *scores, const int *types, const char *what) {
    std::string proto;
    for (int i = 0; i < n; i++) {
        std::string sp;
        put_bytes_field(sp, 1, std::string(pieces[i], piece_lens[i]));
        float sc = scores ? scores[i] : 0.0f;
        uint32_t bits;
        memcpy(&bits, &sc, 4);
        put_varint(sp, (2 << 3) | 5);
        for (int k = 0; k < 4; k++) sp.push_back((char)((bits >> (8 * k)) & 0xff));
        // SentencePiece.Type: NORMAL 1, UNKNOWN 2, CONTROL 3, USER_DEFINED 4, BYTE 6, UNUSED 5
        // (the GGUF token_type values are the same numbers).
        int ty = types ? types[i] : 1;
        if (ty < 1 || ty > 6) ty = 1;
        put_varint(sp, 3 << 3);
        put_varint(sp, (uint64_t)ty);
        put_bytes_field(proto, 1, sp);
    }
    std::string trainer; // model_type (3) = BPE (2), byte_fallback (35) = true
    put_varint(trainer, 3 << 3);
    put_varint(trainer, 2);
    put_varint(trainer, 35 << 3);
    put_varint(trainer, 1);
    put_bytes_field(proto, 2, trainer);
    std::string norm; // name "identity", add_dummy_prefix (3) true (removed again on load),
    // remove_extra_whitespaces (4) false, escape_whitespaces (5) true
    put_bytes_field(norm, 1, "identity");
    put_varint(norm, 3 << 3);
    put_varint(norm, 1);
    put_varint(norm, 4 << 3);
    put_varint(norm, 0);
    put_varint(norm, 5 << 3);
    put_varint(norm, 1);
    put_bytes_field(proto, 3, norm);
    return load_serialized(proto, what);
}

void rc_spm_free(rc_spm *s) { delete s; }

int rc_spm_size(const rc_spm *s) { return s->sp.GetPieceSize(); }

const char *rc_spm_piece(const rc_spm *s, int id, size_t *len) {
    const std::string &p = s->sp.IdToPiece(id);
    *len = p.size();
    return p.c_str();
}

int rc_spm_is_byte(const rc_spm *s, int id) { return s->sp.IsByte(id); }
int rc_spm_is_control(const rc_spm *s, int id) { return s->sp.IsControl(id); }
int rc_spm_is_unknown(const rc_spm *s, int id) { return s->sp.IsUnknown(id); }

int rc_spm_encode(const rc_spm *s, const char *text, size_t len, rc_ivec *out) {
    std::vector<int> ids;
    auto st = s->sp.Encode(absl::string_view(text, len), &ids);
    if (!st.ok()) return rc_fail("sentencepiece encode failed: %s", st.ToString().c_str());
    for (int id : ids)
        if (rc_ivec_push(out, id)) return -1;
    return 0;
}

} // extern "C"
