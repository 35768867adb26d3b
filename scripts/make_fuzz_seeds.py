#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets (Fuzz/corpus/FORMAT/): small valid files of every
format and layout the readers accept, plus a few near-misses. Standard library only; the writers
are the hostile corpus's (scripts/hostile_corpus.py). Usage: python3 scripts/make_fuzz_seeds.py
"""
import gzip
import os
import struct
import sys
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hostile_corpus import (ROOT, attribute_int, f32, field_bytes, field_varint, idx_images, idx_labels, linear_onnx,  # noqa: E402
                            mat_compressed, mat_header, mat_matrix, node, npy_bytes, onnx_model, safetensors_bytes,
                            tensor_proto)

OUT = os.path.join(ROOT, "Fuzz", "corpus")


def put(fmt, name, data):
    d = os.path.join(OUT, fmt)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def attribute_ints(name, values):
    return field_bytes(1, name) + b"".join(field_varint(8, v) for v in values) + field_varint(20, 7)


def attribute_float(name, v):
    return field_bytes(1, name) + varint_key(2, 5) + struct.pack("<f", v) + field_varint(20, 1)


def varint_key(num, wire):
    from hostile_corpus import varint
    return varint((num << 3) | wire)


def main():
    # safetensors: a tiny metadata-bearing file, dtypes, and a small WRN-shaped header.
    meta = {"arch": "wrn", "depth": "10", "width": "1", "in_channels": "1", "num_classes": "2", "norm": "none",
            "leak": "0.2", "input_mean": "0.5", "input_std": "0.5"}
    put("safetensors", "tiny_f32", safetensors_bytes({"__metadata__": meta, "a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}, f32([1, 2, 3, 4])))
    put("safetensors", "dtypes", safetensors_bytes({
        "h": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}, "b": {"dtype": "BF16", "shape": [2], "data_offsets": [4, 8]},
        "d": {"dtype": "F64", "shape": [1], "data_offsets": [8, 16]}, "i": {"dtype": "I64", "shape": [1], "data_offsets": [16, 24]}},
        bytes(24)))
    put("safetensors", "empty_header", safetensors_bytes({}, b""))

    # npy: layouts and dtypes.
    put("npy", "nchw_f4", npy_bytes("<f4", (2, 1, 5, 5), f32([0.5] * 50)))
    put("npy", "nhwc_u1", npy_bytes("|u1", (2, 5, 5, 3), bytes(150)))
    put("npy", "nhw_f8", npy_bytes("<f8", (1, 4, 4), struct.pack("<16d", *([0.25] * 16))))
    put("npy", "v2_i8", npy_bytes("<i8", (2, 1, 2, 2), struct.pack("<8q", *([0] * 8)), version=2))
    put("npy", "i4_labels", npy_bytes("<i4", (3,), struct.pack("<3i", 0, 1, 2)))

    # IDX: images and labels, plain and gzip.
    put("idx", "images", idx_images(2, 4, 4, bytes(range(32))))
    put("idx", "images_gz", gzip.compress(idx_images(2, 4, 4, bytes(range(32)))))
    put("idx", "labels", idx_labels([1, 2, 3]))
    put("idx", "labels_gz", gzip.compress(idx_labels([1, 2, 3])))

    # CIFAR: one and two records.
    put("cifar", "one", bytes([3]) + bytes(range(256)) * 12)
    put("cifar", "two", (bytes([9]) + bytes(3072)) * 2)

    # SVHN: plain and compressed variables, and an extra variable.
    x = mat_matrix("X", [2, 2, 3, 2], 9, 2, bytes(range(24)))
    y = mat_matrix("y", [2, 1], 6, 9, struct.pack("<2d", 10, 3))
    put("svhn", "plain", mat_header() + x + y)
    put("svhn", "compressed", mat_header() + mat_compressed(x) + mat_compressed(y))
    put("svhn", "extra_var", mat_header() + mat_compressed(mat_matrix("z", [3, 1], 6, 9, struct.pack("<3d", 1, 2, 3))) + x + y)

    # ONNX: small graphs covering the op set and the exporter's shape chains.
    put("onnx", "linear", linear_onnx(input_dims=(1, 1, 28, 28)))
    conv_w = tensor_proto("cw", [2, 1, 3, 3], floats=[0.1] * 18)
    conv_b = tensor_proto("cb", [2], floats=[0.0, 0.1])
    bn = [tensor_proto(n, [2], floats=v) for n, v in (("s", [1, 1]), ("bb", [0, 0]), ("m", [0, 0]), ("v", [1, 1]))]
    fc_w = tensor_proto("fw", [2, 2], floats=[1, 0, 0, 1])
    fc_b = tensor_proto("fb", [2], floats=[0, 0])
    put("onnx", "conv_bn_relu_gap", onnx_model([
        node("Conv", ["x", "cw", "cb"], ["c"], "conv", [attribute_ints("pads", [1, 1, 1, 1]), attribute_ints("kernel_shape", [3, 3])]),
        node("BatchNormalization", ["c", "s", "bb", "m", "v"], ["n"], "bn"),
        node("Relu", ["n"], ["r"], "relu"),
        node("GlobalAveragePool", ["r"], ["g"], "gap"),
        node("Flatten", ["g"], ["f"], "flatten"),
        node("Gemm", ["f", "fw", "fb"], ["y"], "fc", [attribute_int("transB", 1)])],
        [conv_w, conv_b, fc_w, fc_b] + bn, input_dims=(1, 1, 6, 6)))
    shape_idx = tensor_proto("i0", [], raw=struct.pack("<q", 0), dtype=7)
    minus1 = tensor_proto("m1", [1], raw=struct.pack("<q", -1), dtype=7)
    fc2 = tensor_proto("fw2", [2, 8], floats=[0.1] * 16)
    put("onnx", "pool_shape_reshape", onnx_model([
        node("MaxPool", ["x"], ["p"], "pool", [attribute_ints("kernel_shape", [2, 2]), attribute_ints("strides", [2, 2])]),
        node("Shape", ["p"], ["sh"], "shape"),
        node("Gather", ["sh", "i0"], ["n0"], "gather", [attribute_int("axis", 0)]),
        node("Unsqueeze", ["n0"], ["n1"], "unsq", [attribute_ints("axes", [0])]),
        node("Concat", ["n1", "m1"], ["shp"], "concat", [attribute_int("axis", 0)]),
        node("Reshape", ["p", "shp"], ["fl"], "reshape"),
        node("Gemm", ["fl", "fw2", "fb"], ["y"], "fc", [attribute_int("transB", 1)])],
        [shape_idx, minus1, fc2, fc_b], opset=11, input_dims=(1, 2, 4, 4)))
    put("onnx", "sigmoid_mul_pad_avgpool", onnx_model([
        node("Sigmoid", ["x"], ["s"], "sig"),
        node("Mul", ["x", "s"], ["silu"], "silu"),
        node("Pad", ["silu", "pads"], ["pd"], "pad"),
        node("AveragePool", ["pd"], ["ap"], "avg", [attribute_ints("kernel_shape", [2, 2]), attribute_ints("strides", [2, 2])]),
        node("Flatten", ["ap"], ["f"], "flatten"),
        node("MatMul", ["f", "mw"], ["y"], "mm")],
        [tensor_proto("pads", [8], raw=struct.pack("<8q", 0, 0, 1, 1, 0, 0, 1, 1), dtype=7), tensor_proto("mw", [9, 2], floats=[0.1] * 18)],
        input_dims=(1, 1, 4, 4)))
    for name in ("bad_bn_training.onnx", "bad_dims_overflow.onnx", "bad_pad_reflect.onnx", "bad_reshape.onnx"):
        with open(os.path.join(ROOT, "Tests", "JEMCoreTests", "Fixtures", "onnx", name), "rb") as f:
            put("onnx", name[:-5], f.read())
    n = sum(len(fs) for _, _, fs in os.walk(OUT))
    print("wrote %d seeds under %s" % (n, os.path.relpath(OUT, ROOT)))


if __name__ == "__main__":
    main()
