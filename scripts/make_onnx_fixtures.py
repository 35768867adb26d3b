#!/usr/bin/env python3
"""Golden fixtures for the ONNX graph executor's tests: small models exported with
torch.onnx.export(dynamo=False, opset 17), random weights and real batch-norm statistics, with
  NAME.onnx              the model;
  NAME_input.npy         a batch of pixels in [0, 1];
  NAME_logits_ort.npy    onnxruntime 1.31's logits (CPU execution provider);
  NAME_weights.npy       fixed random weights w (N×K) of the objective Σ w·logits;
  NAME_grad.npy          PyTorch's d(Σ w·logits)/dx (float64);
  NAME_tangent.npy       a direction u;
  NAME_hvp.npy           PyTorch's Hessian–vector product ∇²ₓ Σ logsumexp(logits) · u (float64).
plus wrn10_1_batch.onnx: the Wide-ResNet fixture wrn10_1_batch_model.safetensors exported to ONNX,
so a test can compare the executor with the hand-written network on the same weights.

Run:  venv/bin/python scripts/make_onnx_fixtures.py Tests/JEMCoreTests/Fixtures/onnx
Needs scripts/setup_torch_venv.sh (torch 2.13 CPU, onnx 1.23, onnxruntime 1.31).
"""
import os
import sys

import numpy as np
import onnxruntime as ort
import torch

sys.path.insert(0, os.path.dirname(__file__))
from onnx_models import LeNet, PreActResNet18, ResNet18, RobustBenchWRN, Zoo, calibrate_bn, export  # noqa: E402
from wrn_torch import load_robust_eval_model  # noqa: E402


def goldens(model, name, shape, out, seed):
    g = torch.Generator().manual_seed(seed)
    path = os.path.join(out, name + ".onnx")
    export(model, path, shape)
    x = torch.rand(*shape, generator=g)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    z = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    m64 = model.double().eval()
    x64 = x.double().requires_grad_(True)
    logits = m64(x64)
    w = torch.randn(logits.shape, generator=g, dtype=torch.float64)
    (grad,) = torch.autograd.grad((w * logits).sum(), x64)
    u = torch.randn(shape, generator=g, dtype=torch.float64)
    _, hvp = torch.autograd.functional.hvp(lambda v: torch.logsumexp(m64(v), 1).sum(), x.double(), u)
    save = lambda suffix, a: np.save(os.path.join(out, f"{name}_{suffix}.npy"), np.asarray(a, dtype=np.float32))
    save("input", x.numpy())
    save("logits_ort", z)
    save("weights", w.numpy())
    save("grad", grad.numpy())
    save("tangent", u.numpy())
    save("hvp", hvp.detach().numpy())
    err = np.abs(z - logits.detach().numpy()).max()
    print(f"{name}: {os.path.getsize(path)} bytes, |ort − torch| logits {err:.2e}")


def external_and_bad_files(out):
    """The LeNet with its weights in an external-data file, and small hand-made graphs that must be
    refused: BatchNormalization in training mode, two outputs, Pad in reflect mode, a Reshape to
    a shape that cannot hold the data, and an initializer whose dimensions overflow."""
    import onnx
    from onnx import TensorProto, helper
    m = onnx.load(os.path.join(out, "lenet.onnx"))
    onnx.save_model(m, os.path.join(out, "lenet_external.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="lenet_external.onnx.data", size_threshold=0)
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 2, 4, 4])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 2])

    def save(name, nodes, inits, outputs=(y,)):
        g = helper.make_graph(nodes, name, [x], list(outputs), inits)
        model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="make_onnx_fixtures")
        onnx.save(model, os.path.join(out, name + ".onnx"))

    c = lambda n, v: helper.make_tensor(n, TensorProto.FLOAT, [len(v)], v)
    gap = [helper.make_node("GlobalAveragePool", ["h"], ["p"]), helper.make_node("Flatten", ["p"], ["logits"])]
    save("bad_bn_training", [helper.make_node("BatchNormalization", ["input", "s", "b", "m", "v"], ["h"], training_mode=1)] + gap,
         [c("s", [1, 1]), c("b", [0, 0]), c("m", [0, 0]), c("v", [1, 1])])
    z = helper.make_tensor_value_info("other", TensorProto.FLOAT, [1, 2])
    save("two_outputs", [helper.make_node("Relu", ["input"], ["h"])] + gap + [helper.make_node("Identity", ["logits"], ["other"])], [],
         outputs=(y, z))
    save("bad_pad_reflect", [helper.make_node("Pad", ["input", "pads"], ["h"], mode="reflect")] + gap,
         [helper.make_tensor("pads", TensorProto.INT64, [8], [0, 0, 1, 1, 0, 0, 1, 1])])
    save("bad_reshape", [helper.make_node("Reshape", ["input", "shape"], ["h"])] + gap,
         [helper.make_tensor("shape", TensorProto.INT64, [4], [1, 3, 5, 2])])
    big = helper.make_tensor("w", TensorProto.FLOAT, [1], [0.0])
    del big.dims[:]
    big.dims.extend([2 ** 31 - 1, 2 ** 31 - 1, 4])
    save("bad_dims_overflow", [helper.make_node("Conv", ["input", "w"], ["h"])] + gap, [big])


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "Tests/JEMCoreTests/Fixtures/onnx"
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    models = [
        ("resnet18_tiny", ResNet18(width=4), (3, 3, 16, 16)),
        ("preact_silu_tiny", PreActResNet18(width=4), (3, 3, 16, 16)),
        ("rbwrn_tiny", RobustBenchWRN(depth=10, k=1), (3, 3, 16, 16)),
        ("lenet", LeNet(), (3, 1, 28, 28)),
        ("zoo", Zoo(), (3, 3, 16, 16)),
    ]
    for i, (name, m, shape) in enumerate(models):
        calibrate_bn(m, shape, seed=i)
        goldens(m, name, shape, out, seed=100 + i)
    # The zoo at the lowest supported opset and at the highest the exporter writes.
    for opset in (11, 20):
        m = Zoo()
        calibrate_bn(m, (3, 3, 16, 16), seed=7)
        name = f"zoo_opset{opset}"
        export(m, os.path.join(out, name + ".onnx"), (3, 3, 16, 16), opset=opset)
        x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(opset))
        sess = ort.InferenceSession(os.path.join(out, name + ".onnx"), providers=["CPUExecutionProvider"])
        np.save(os.path.join(out, name + "_input.npy"), x.numpy())
        np.save(os.path.join(out, name + "_logits_ort.npy"), sess.run(None, {"input": x.numpy()})[0])
    external_and_bad_files(out)
    fixtures = os.path.dirname(os.path.abspath(out.rstrip("/")))
    wrn = load_robust_eval_model(os.path.join(fixtures, "wrn10_1_batch_model.safetensors"))
    export(wrn, os.path.join(out, "wrn10_1_batch.onnx"), (2, 3, 9, 9))
    print("wrn10_1_batch.onnx written")


if __name__ == "__main__":
    main()
