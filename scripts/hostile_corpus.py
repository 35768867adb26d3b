#!/usr/bin/env python3
"""Hostile-file corpus: builds corrupt, truncated, oversized and inconsistent files of every format
robust-eval reads (safetensors models, .npy arrays, IDX and gzip, CIFAR binaries, SVHN MAT-files,
ONNX graphs), runs the command that reads each one, and checks that every case

  - exits with a non-zero status (not a signal: no crash),
  - prints exactly one line on stderr, naming the file (or flag) and the problem,
  - finishes within 10 s and peaks under 1 GB of memory (max RSS of the process).

Standard library only (no numpy, no onnx), so it runs on a fresh machine; `.ci/run` runs it after
the unit tests. Usage: python3 scripts/hostile_corpus.py [--binary PATH] [--keep DIR] [-v]
"""
import argparse
import gzip
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUNDLED = os.path.join(ROOT, "Sources", "robust-eval", "Models", "jem-fmnist.safetensors")
TIME_LIMIT = 10.0
MEMORY_LIMIT_KB = 1024 * 1024


# ---------------------------------------------------------------- writers

def npy_bytes(descr, shape, payload, fortran=False, version=1, header_override=None):
    shape_s = "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
    header = header_override or "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, "True" if fortran else "False", shape_s)
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    h = header.encode()
    if version == 1:
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h + payload
    return b"\x93NUMPY\x02\x00" + struct.pack("<I", len(h)) + h + payload


def f32(values):
    return struct.pack("<%df" % len(values), *values)


def idx_images(n, h, w, payload=None):
    return struct.pack(">IIII", 0x803, n, h, w) + (payload if payload is not None else bytes(n * h * w))


def idx_labels(labels, n=None):
    return struct.pack(">II", 0x801, len(labels) if n is None else n) + bytes(labels)


def gz_with_trailer(data, crc=None, size=None):
    raw = gzip.compress(data)
    body, trailer = raw[:-8], raw[-8:]
    c, s = struct.unpack("<II", trailer)
    return body + struct.pack("<II", c if crc is None else crc, s if size is None else size)


def safetensors_bytes(header, data):
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


def read_safetensors(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    return json.loads(b[8:8 + n]), b[8 + n:]


# MAT level 5
def mat_header():
    text = b"MATLAB 5.0 MAT-file, hostile corpus".ljust(116, b" ")
    return text + bytes(8) + struct.pack("<H", 0x0100) + b"IM"


def mat_element(mtype, data, declared=None):
    n = len(data) if declared is None else declared
    return struct.pack("<II", mtype, n) + data + bytes((8 - len(data) % 8) % 8)


def mat_matrix(name, dims, cls, dtype, data, dims_override=None, data_declared=None):
    flags = mat_element(6, struct.pack("<II", cls, 0))
    dm = mat_element(5, struct.pack("<%di" % len(dims), *(dims_override or dims)))
    nm = mat_element(1, name.encode())
    real = mat_element(dtype, data, declared=data_declared)
    return mat_element(14, flags + dm + nm + real)


def mat_compressed(element):
    return struct.pack("<II", 15, len(zlib.compress(element))) + zlib.compress(element)


# protobuf (ONNX), by hand
def varint(v):
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_varint(num, v):
    return varint(num << 3) + varint(v)


def field_bytes(num, b):
    if isinstance(b, str):
        b = b.encode()
    return varint((num << 3) | 2) + varint(len(b)) + b


def tensor_proto(name, dims, floats=None, raw=None, external=None, dtype=1):
    out = b"".join(field_varint(1, d) for d in dims) + field_varint(2, dtype) + field_bytes(8, name)
    if floats is not None:
        out += field_bytes(4, f32(floats))
    if raw is not None:
        out += field_bytes(9, raw)
    if external is not None:
        out += b"".join(field_bytes(13, field_bytes(1, k) + field_bytes(2, v)) for k, v in external.items())
        out += field_varint(14, 1)
    return out


def value_info(name, dims):
    shape = b"".join(field_bytes(1, field_varint(1, d)) for d in dims)
    return field_bytes(1, name) + field_bytes(2, field_bytes(1, field_varint(1, 1) + field_bytes(2, shape)))


def attribute_int(name, v):
    return field_bytes(1, name) + field_varint(3, v) + field_varint(20, 2)


def node(op, inputs, outputs, name, attrs=()):
    return (b"".join(field_bytes(1, i) for i in inputs) + b"".join(field_bytes(2, o) for o in outputs)
            + field_bytes(3, name) + field_bytes(4, op) + b"".join(field_bytes(5, a) for a in attrs))


def onnx_model(nodes, initializers, outputs=("y",), opset=17, input_dims=(1, 1, 28, 28), extra_graph=b""):
    g = b"".join(field_bytes(1, n) for n in nodes) + field_bytes(2, "g")
    g += b"".join(field_bytes(5, t) for t in initializers)
    g += field_bytes(11, value_info("x", input_dims))
    g += b"".join(field_bytes(12, value_info(o, (1, 10))) for o in outputs) + extra_graph
    return field_varint(1, 8) + field_bytes(2, "hostile_corpus") + field_bytes(7, g) + field_bytes(8, field_bytes(1, "") + field_varint(2, opset))


def linear_onnx(**kw):
    w = tensor_proto("W", [10, 784], floats=[0.01] * 7840)
    b = tensor_proto("B", [10], floats=[0.0] * 10)
    nodes = [node("Flatten", ["x"], ["f"], "flatten"), node("Gemm", ["f", "W", "B"], ["y"], "fc", [attribute_int("transB", 1)])]
    return onnx_model(nodes, [w, b], **kw)


# ---------------------------------------------------------------- cases

def build(d):
    """Returns [(class, name, argv, file that must be named)]. Paths are absolute."""
    cases = []
    P = lambda *a: os.path.join(d, *a)

    def write(name, data):
        p = P(name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
        return p

    # A small valid image set (2 images 28×28) and labels, to pair with a hostile partner file.
    good_x = write("good_x.npy", npy_bytes("<f4", (2, 1, 28, 28), f32([0.5] * 1568)))
    good_y = write("good_y.npy", npy_bytes("<i8", (2,), struct.pack("<2q", 1, 2)))

    # --- safetensors models
    header, data = read_safetensors(BUNDLED)
    meta = dict(header["__metadata__"])

    def model_case(name, hdr=None, body=None, raw=None, cls="safetensors: sizes"):
        p = write("models/" + name + ".safetensors", raw if raw is not None else safetensors_bytes(hdr, body))
        cases.append((cls, "model " + name, ["eval", "--model", p, "--limit", "2"], p))

    model_case("empty", raw=b"")
    model_case("short", raw=b"\x01\x02\x03")
    model_case("header_len_huge", raw=struct.pack("<Q", 1 << 62) + b"{}")
    model_case("header_len_past_end", raw=struct.pack("<Q", 100) + b"{}")
    model_case("json_garbage", raw=struct.pack("<Q", 8) + b"{\"a\":[1,")
    model_case("json_deep", raw=(lambda h: struct.pack("<Q", len(h)) + h)(b"[" * 100000 + b"]" * 100000))
    model_case("shape_overflow", {"t": {"dtype": "F32", "shape": [1 << 32, 1 << 32], "data_offsets": [0, 16]}}, bytes(16))
    model_case("shape_2e62", {"t": {"dtype": "F32", "shape": [1 << 62, 4], "data_offsets": [0, 16]}}, bytes(16))
    model_case("shape_float_huge", {"t": {"dtype": "F32", "shape": [1e300], "data_offsets": [0, 16]}}, bytes(16))
    model_case("shape_negative", {"t": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}}, bytes(16))
    model_case("offsets_past_end", {"t": {"dtype": "F32", "shape": [4], "data_offsets": [0, 1 << 40]}}, bytes(16))
    model_case("offsets_overflow", {"t": {"dtype": "F32", "shape": [4], "data_offsets": [(1 << 63) - 1, (1 << 63) - 1]}}, bytes(16))
    model_case("offsets_overlap", {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                                   "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}, bytes(24))
    model_case("dtype_unknown", {"t": {"dtype": "Q7", "shape": [4], "data_offsets": [0, 16]}}, bytes(16))
    model_case("bytes_mismatch", {"t": {"dtype": "F32", "shape": [5], "data_offsets": [0, 16]}}, bytes(16))
    for key, value in [("width", "100000"), ("depth", "6000004"), ("num_classes", "1000000000"), ("in_channels", "0"),
                       ("width", "32"), ("depth", "202"), ("input_std", "0"), ("input_mean", "nan"), ("leak", "inf"),
                       ("width", "x")]:
        m = dict(meta)
        m[key] = value
        h = dict(header)
        h["__metadata__"] = m
        model_case("meta_%s_%s" % (key, value), h, data, cls="model plausibility")
    # NaN weights: the first F32 value of the classifier's weight.
    h = dict(header)
    off = h["class_output.weight"]["data_offsets"][0]
    body = bytearray(data)
    body[off:off + 4] = struct.pack("<f", float("nan"))
    model_case("nan_weight", h, bytes(body), cls="model plausibility")
    # A missing tensor.
    h = {k: v for k, v in header.items() if k != "class_output.bias"}
    model_case("missing_tensor", h, data, cls="model plausibility")

    # --- .npy images and labels
    def npy_case(name, payload, labels=None, cls="npy: sizes"):
        p = write("npy/" + name + ".npy", payload)
        cases.append((cls, "npy " + name, ["eval", "--images", p, "--labels", labels or good_y], p))

    def npy_label_case(name, payload, cls="npy: labels"):
        p = write("npy/" + name + ".npy", payload)
        cases.append((cls, "labels " + name, ["eval", "--images", good_x, "--labels", p], p))

    npy_case("bad_magic", b"\x93NUMPX\x01\x00" + bytes(100))
    npy_case("short", b"\x93NUM")
    npy_case("header_past_end", b"\x93NUMPY\x01\x00\xff\xff{'descr'")
    npy_case("header_v2_huge", b"\x93NUMPY\x02\x00\xff\xff\xff\x7f{'descr'")
    npy_case("dims_overflow", npy_bytes("<f4", (1 << 32, 1 << 32, 1, 1), bytes(64)))
    npy_case("dims_2e63", npy_bytes("<f4", (9223372036854775807, 2, 1, 1), bytes(64)))
    npy_case("dims_too_big_number", npy_bytes("<f4", (99999999999999999999999, 1, 28, 28), bytes(64)))
    npy_case("truncated_data", npy_bytes("<f4", (1000000, 1, 28, 28), bytes(4096)))
    npy_case("fortran", npy_bytes("<f4", (2, 1, 28, 28), f32([0.5] * 1568), fortran=True))
    npy_case("dtype_complex", npy_bytes("<c8", (2, 1, 28, 28), bytes(1568 * 8)))
    npy_case("dtype_bigendian", npy_bytes(">f4", (2, 1, 28, 28), bytes(1568 * 4)))
    npy_case("no_shape", npy_bytes("<f4", (), b"", header_override="{'descr': '<f4', 'fortran_order': False, }"))
    npy_case("rank5", npy_bytes("<f4", (1, 1, 1, 28, 28), f32([0.5] * 784)))
    npy_case("nan_pixels", npy_bytes("<f4", (2, 1, 28, 28), f32([float("nan")] * 1568)), cls="npy: values")
    npy_case("pixels_above_1", npy_bytes("<f4", (2, 1, 28, 28), f32([3.0] * 1568)), cls="npy: values")
    npy_case("zero_images", npy_bytes("<f4", (0, 1, 28, 28), b""), labels=write("npy/zero_labels.npy", npy_bytes("<i8", (0,), b"")), cls="npy: values")
    npy_case("size_32", npy_bytes("<f4", (2, 1, 32, 32), f32([0.5] * 2048)), cls="image size")
    npy_label_case("huge_label", npy_bytes("<i8", (2,), struct.pack("<2q", 1, 1 << 40)))
    npy_label_case("label_too_big", npy_bytes("<i8", (2,), struct.pack("<2q", 1, 10)))
    npy_label_case("negative_label", npy_bytes("<i8", (2,), struct.pack("<2q", 1, -1)))
    npy_label_case("fractional_label", npy_bytes("<f8", (2,), struct.pack("<2d", 1, 2.5)))
    npy_label_case("label_count", npy_bytes("<i8", (3,), struct.pack("<3q", 1, 2, 3)))
    npy_label_case("labels_2d", npy_bytes("<i8", (2, 2), struct.pack("<4q", 1, 2, 3, 4)))

    # --- IDX (mnist:DIR reads t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz])
    def idx_case(name, images=None, labels=None, gz_images=False, gz_labels=False, cls="IDX: sizes"):
        sub = P("idx", name)
        os.makedirs(sub, exist_ok=True)
        imgs = images if images is not None else idx_images(2, 28, 28)
        labs = labels if labels is not None else idx_labels([1, 2])
        ip = write("idx/%s/t10k-images-idx3-ubyte%s" % (name, ".gz" if gz_images else ""), imgs)
        lp = write("idx/%s/t10k-labels-idx1-ubyte%s" % (name, ".gz" if gz_labels else ""), labs)
        bad = ip if images is not None else lp
        cases.append((cls, "idx " + name, ["eval", "--data", "mnist:" + sub], bad))

    idx_case("bad_magic", images=struct.pack(">IIII", 0x804, 2, 28, 28) + bytes(1568))
    idx_case("short_header", images=b"\x00\x00\x08")
    idx_case("dims_overflow", images=struct.pack(">IIII", 0x803, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF) + bytes(64))
    idx_case("dims_vs_file", images=struct.pack(">IIII", 0x803, 1000000, 28, 28) + bytes(1568))
    idx_case("zero_width", images=struct.pack(">IIII", 0x803, 2, 0, 28))
    idx_case("labels_count", labels=idx_labels([1, 2, 3]))
    idx_case("labels_header_lies", labels=idx_labels([1, 2], n=0xFFFFFFFF))
    idx_case("label_11", labels=idx_labels([1, 11]))
    idx_case("gz_truncated", images=gzip.compress(idx_images(2, 28, 28))[:40], gz_images=True, cls="IDX: gzip")
    idx_case("gz_bad_crc", images=gz_with_trailer(idx_images(2, 28, 28), crc=12345), gz_images=True, cls="IDX: gzip")
    idx_case("gz_bad_isize", images=gz_with_trailer(idx_images(2, 28, 28), size=999), gz_images=True, cls="IDX: gzip")
    idx_case("gz_corrupt", images=(lambda g: g[:20] + bytes(b ^ 0x5A for b in g[20:60]) + g[60:])(gzip.compress(idx_images(2, 28, 28))),
             gz_images=True, cls="IDX: gzip")
    # A bomb: the header promises 2 images, the stream holds 200 MB of zeros (the trailer is honest).
    bomb = gzip.compress(idx_images(2, 28, 28) + bytes(200 * 1000 * 1000), compresslevel=9)
    idx_case("gz_bomb", images=bomb, gz_images=True, cls="IDX: gzip")
    # A bomb whose header and trailer agree on 4 GB: more than the file could inflate to.
    idx_case("gz_claims_4g", images=gz_with_trailer(struct.pack(">IIII", 0x803, 1, 65535, 65535) + bytes(1000), size=(16 + 65535 * 65535) & 0xFFFFFFFF),
             gz_images=True, cls="IDX: gzip")
    idx_case("gz_trailing_garbage", images=gzip.compress(idx_images(2, 28, 28)) + b"garbage!", gz_images=True, cls="IDX: gzip")
    idx_case("gz_labels_bomb", labels=gzip.compress(idx_labels([1, 2]) + bytes(50 * 1000 * 1000)), gz_labels=True, cls="IDX: gzip")

    # --- CIFAR-10 (cifar10:DIR reads test_batch.bin)
    def cifar_case(name, data, cls="CIFAR"):
        sub = P("cifar", name)
        p = write("cifar/%s/test_batch.bin" % name, data)
        cases.append((cls, "cifar " + name, ["eval", "--data", "cifar10:" + sub, "--allow-any-size"], p))

    cifar_case("empty", b"")
    cifar_case("partial_record", bytes(3073 + 100))
    cifar_case("label_200", bytes([200]) + bytes(3072))

    # --- SVHN MAT-files
    def svhn_case(name, data, cls="SVHN/MAT"):
        p = write("svhn/%s.mat" % name, data)
        cases.append((cls, "svhn " + name, ["eval", "--data", "svhn:" + p, "--allow-any-size"], p))

    x_ok = mat_matrix("X", [32, 32, 3, 2], 9, 2, bytes(32 * 32 * 3 * 2))
    y_ok = mat_matrix("y", [2, 1], 6, 9, struct.pack("<2d", 1, 2))
    svhn_case("short", b"MATLAB")
    svhn_case("big_endian", mat_header()[:126] + b"MI" + x_ok + y_ok)
    svhn_case("tag_past_end", mat_header() + struct.pack("<II", 14, 1 << 31) + bytes(64))
    svhn_case("dims_overflow", mat_header() + mat_matrix("X", [32, 32, 3, 2], 9, 2, bytes(64), dims_override=[65535, 65535, 65535, 65535]) + y_ok)
    svhn_case("dims_vs_data", mat_header() + mat_matrix("X", [32, 32, 3, 2], 9, 2, bytes(64), dims_override=[32, 32, 3, 1000]) + y_ok)
    svhn_case("data_declared_huge", mat_header() + mat_matrix("X", [32, 32, 3, 2], 9, 2, bytes(64), data_declared=1 << 31) + y_ok)
    svhn_case("missing_y", mat_header() + x_ok)
    svhn_case("y_count", mat_header() + x_ok + mat_matrix("y", [3, 1], 6, 9, struct.pack("<3d", 1, 2, 3)))
    svhn_case("label_11", mat_header() + x_ok + mat_matrix("y", [2, 1], 6, 9, struct.pack("<2d", 1, 11)))
    svhn_case("label_nan", mat_header() + x_ok + mat_matrix("y", [2, 1], 6, 9, struct.pack("<2d", 1, float("nan"))))
    svhn_case("compressed_corrupt", mat_header() + (lambda c: c[:12] + bytes(b ^ 0xFF for b in c[12:40]) + c[40:])(mat_compressed(x_ok)) + y_ok)
    svhn_case("compressed_truncated", mat_header() + (lambda c: struct.pack("<II", 15, 30) + c[8:38])(mat_compressed(x_ok)) + y_ok)
    # A compressed X whose matrix header claims 2^31 bytes of data, inflating 100 MB of zeros.
    bomb_x = struct.pack("<II", 14, (1 << 31) - 1) + mat_element(6, struct.pack("<II", 9, 0)) + mat_element(5, struct.pack("<4i", 32, 32, 3, 2)) \
        + mat_element(1, b"X") + struct.pack("<II", 2, (1 << 31) - 64) + bytes(100 * 1000 * 1000)
    svhn_case("compressed_bomb", mat_header() + mat_compressed(bomb_x) + y_ok)
    # An unneeded variable that inflates to 100 MB: skipped without inflating it.
    junk = mat_matrix("junk", [100 * 1000 * 1000, 1], 9, 2, bytes(100 * 1000 * 1000))
    svhn_case("junk_variable_then_bad_y", mat_header() + mat_compressed(junk) + x_ok + mat_matrix("y", [2, 1], 6, 9, struct.pack("<2d", 1, 12)))

    # --- ONNX graphs
    def onnx_case(name, data, cls="ONNX", extra_files=()):
        p = write("onnx/%s.onnx" % name, data)
        for fname, content in extra_files:
            write("onnx/" + fname, content)
        cases.append((cls, "onnx " + name, ["info", "--model", p], p))

    ok = linear_onnx()
    onnx_case("empty", b"")
    onnx_case("garbage", bytes(range(256)) * 4)
    onnx_case("truncated", ok[: len(ok) // 2])
    onnx_case("opset_7", linear_onnx(opset=7))
    onnx_case("two_outputs", linear_onnx(outputs=("y", "z")))
    w = tensor_proto("W", [10, 784], floats=[0.01] * 7840)
    b = tensor_proto("B", [10], floats=[0.0] * 10)
    onnx_case("unsupported_op", onnx_model([node("Flatten", ["x"], ["f"], "flatten"), node("Einsum", ["f", "W"], ["y"], "einsum_1")], [w, b]))
    onnx_case("dims_overflow", onnx_model([node("Flatten", ["x"], ["f"], "flatten"), node("Gemm", ["f", "W", "B"], ["y"], "fc")],
                                          [tensor_proto("W", [1 << 32, 1 << 32], floats=[0.0] * 4), b]))
    onnx_case("dims_vs_data", onnx_model([node("Flatten", ["x"], ["f"], "flatten"), node("Gemm", ["f", "W", "B"], ["y"], "fc")],
                                         [tensor_proto("W", [10, 784], floats=[0.0] * 4), b]))
    onnx_case("external_missing", onnx_model([node("Flatten", ["x"], ["f"], "flatten"), node("Gemm", ["f", "W", "B"], ["y"], "fc")],
                                             [tensor_proto("W", [10, 784], external={"location": "missing.bin"}), b]))
    onnx_case("external_short", onnx_model([node("Flatten", ["x"], ["f"], "flatten"), node("Gemm", ["f", "W", "B"], ["y"], "fc")],
                                           [tensor_proto("W", [10, 784], external={"location": "short.bin"}), b]),
              extra_files=[("short.bin", bytes(100))])
    onnx_case("external_escape", onnx_model([node("Flatten", ["x"], ["f"], "flatten"), node("Gemm", ["f", "W", "B"], ["y"], "fc")],
                                            [tensor_proto("W", [10, 784], external={"location": "../../../../etc/passwd"}), b]))
    bn = [tensor_proto(n, [1], floats=[1.0]) for n in ("s", "bb", "m", "v")]
    onnx_case("bn_training", onnx_model([node("BatchNormalization", ["x", "s", "bb", "m", "v"], ["n"], "bn", [attribute_int("training_mode", 1)]),
                                         node("Flatten", ["n"], ["f"], "flatten"), node("Gemm", ["f", "W", "B"], ["y"], "fc", [attribute_int("transB", 1)])],
                                        [w, b] + bn))
    onnx_case("nan_weight", onnx_model([node("Flatten", ["x"], ["f"], "flatten"), node("Gemm", ["f", "W", "B"], ["y"], "fc", [attribute_int("transB", 1)])],
                                       [tensor_proto("W", [10, 784], floats=[float("nan")] * 7840), b]))
    onnx_case("input_dims_huge", linear_onnx(input_dims=(1, 1, 1 << 40, 1 << 40)))
    nested = field_bytes(2, "g")
    for _ in range(2000):
        nested = field_bytes(1, field_bytes(5, field_bytes(1, "a") + field_bytes(6, nested)))
    onnx_case("deep_nesting", field_varint(1, 8) + field_bytes(7, nested) + field_bytes(8, field_varint(2, 17)))
    return cases


# ---------------------------------------------------------------- runner

def run_case(binary, argv, cwd):
    err = tempfile.TemporaryFile()
    t0 = time.time()
    p = subprocess.Popen([binary] + argv, stdout=subprocess.DEVNULL, stderr=err, cwd=cwd,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    killed = False
    while True:
        pid, status, usage = os.wait4(p.pid, os.WNOHANG)
        if pid != 0:
            break
        if time.time() - t0 > TIME_LIMIT:
            os.kill(p.pid, signal.SIGKILL)
            killed = True
        time.sleep(0.01)
    p.returncode = os.waitstatus_to_exitcode(status)
    err.seek(0)
    lines = [l for l in err.read().decode("utf-8", "replace").splitlines() if l.strip()]
    return p.returncode, lines, time.time() - t0, usage.ru_maxrss, killed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", help="robust-eval executable (default: build the debug one)")
    ap.add_argument("--keep", help="build the corpus in DIR and keep it")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--build-only", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.build_only:
        with open(os.path.join(a.build_only, "cases.json"), "w") as f:
            json.dump(build(a.build_only), f)
        return 0
    binary = a.binary
    if binary is None:
        subprocess.run(["swift", "build", "--product", "robust-eval"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        bindir = subprocess.run(["swift", "build", "--show-bin-path"], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()
        binary = os.path.join(bindir, "robust-eval")
    d = a.keep or tempfile.mkdtemp(prefix="hostile-corpus-")
    os.makedirs(d, exist_ok=True)
    try:
        # Built in a child process: this one stays small, so the memory a case's process shares
        # with it between fork and exec does not count towards the case's peak.
        subprocess.run([sys.executable, os.path.abspath(__file__), "--build-only", d], check=True)
        with open(os.path.join(d, "cases.json")) as f:
            cases = json.load(f)
        failures, by_class = [], {}
        worst_t, worst_m = 0.0, 0
        for cls, name, argv, named in cases:
            rc, lines, secs, rss_kb, killed = run_case(binary, argv, d)
            problems = []
            if killed:
                problems.append("did not finish within %.0f s" % TIME_LIMIT)
            elif rc == 0:
                problems.append("exit status 0")
            elif rc < 0 or rc >= 128:
                problems.append("killed by a signal (status %d): a crash" % rc)
            if rss_kb > MEMORY_LIMIT_KB:
                problems.append("peak memory %.0f MB" % (rss_kb / 1024))
            if len(lines) != 1:
                problems.append("%d lines on stderr" % len(lines))
            elif named not in lines[0]:
                problems.append("the message does not name %s" % os.path.relpath(named, d))
            worst_t, worst_m = max(worst_t, secs), max(worst_m, rss_kb)
            by_class.setdefault(cls, [0, 0])[0] += 1
            if problems:
                by_class[cls][1] += 1
                failures.append((name, problems, lines))
            if a.verbose or problems:
                msg = lines[-1] if lines else "(no stderr)"
                print("%-4s %-38s %5.2fs %5.0f MB  %s" % ("FAIL" if problems else "ok", name, secs, rss_kb / 1024,
                                                         "; ".join(problems) + " | " + msg if problems else msg.replace(d + "/", "")))
        print("hostile corpus: %d cases in %d classes, %d failed; slowest %.2f s, peak memory %.0f MB"
              % (len(cases), len(by_class), len(failures), worst_t, worst_m / 1024))
        for cls, (n, f) in sorted(by_class.items()):
            print("  %-22s %3d cases  %d failed" % (cls, n, f))
        return 1 if failures else 0
    finally:
        if not a.keep:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
