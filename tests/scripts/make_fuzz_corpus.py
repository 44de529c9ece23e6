#!/usr/bin/env python3
"""Seed corpus for tests/fuzz/fuzz_safetensors.c: a few tiny valid safetensors files (written by
the safetensors package) and hand-made invalid ones. Usage: make_fuzz_corpus.py [out_dir]"""
import os
import struct
import sys

import numpy as np
from safetensors.numpy import save

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(__file__), "..", "fuzz", "corpus_safetensors")
os.makedirs(out, exist_ok=True)


def raw(header: bytes, data: bytes = b"") -> bytes:
    return struct.pack("<Q", len(header)) + header + data


files = {
    "valid_two_f32": save({"a": np.arange(4, dtype=np.float32).reshape(2, 2),
                           "b": np.ones(3, dtype=np.float32)}),
    "valid_mixed": save({"h": np.arange(3, dtype=np.float16), "i": np.arange(2, dtype=np.int64),
                         "u": np.arange(5, dtype=np.uint8)}, metadata={"format": "pt"}),
    "valid_empty_tensor": save({"e": np.zeros((0, 4), dtype=np.float32)}),
    "bf16": raw(b'{"w":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}', b"\x80\x3f\x00\x40"),
    "empty_header": raw(b"{}"),
    "len_past_end": struct.pack("<Q", 1 << 40) + b"{}",
    "bad_json": raw(b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]'),
    "overlap": raw(b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
                   b'"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}', bytes(12)),
    "size_mismatch": raw(b'{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', bytes(8)),
    "unknown_dtype": raw(b'{"a":{"dtype":"Q4X","shape":[8],"data_offsets":[0,4]}}', bytes(4)),
    "duplicate": raw(b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},'
                     b'"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', bytes(2)),
}
for name, blob in files.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(blob)
