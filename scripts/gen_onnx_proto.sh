#!/usr/bin/env bash
# Regenerates Sources/ONNXProto/onnx.pb.swift from proto/onnx.proto (copied from the onnx 1.23 wheel,
# `onnx/onnx.proto`, Apache-2.0). Run once when the schema changes; the output is committed, because
# building swift-protobuf's protoc plugin takes minutes and CI should not do it on every run.
# Needs protoc (Debian: protobuf-compiler) and protoc-gen-swift built from apple/swift-protobuf 1.39.0:
#   git clone https://github.com/apple/swift-protobuf /tmp/swift-protobuf && cd /tmp/swift-protobuf
#   git checkout 1.39.0 && swift build -c release --product protoc-gen-swift
# Usage: PROTOC_GEN_SWIFT=/tmp/swift-protobuf/.build/release/protoc-gen-swift bash scripts/gen_onnx_proto.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PLUGIN=${PROTOC_GEN_SWIFT:-$(command -v protoc-gen-swift)}
protoc --plugin=protoc-gen-swift="$PLUGIN" --swift_opt=Visibility=Public \
       --proto_path=proto --swift_out=Sources/ONNXProto proto/onnx.proto
echo "wrote Sources/ONNXProto/onnx.pb.swift"
