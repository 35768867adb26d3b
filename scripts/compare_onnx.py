#!/usr/bin/env python3
"""ONNX import against its peers, on this machine, in one run:
  parity  — a CIFAR ResNet-18, a PreAct ResNet-18 with SiLU and F.pad, RobustBench's WRN-28-10 and a
            LeNet with MaxPool (random weights, real batch-norm statistics), exported with
            torch.onnx.export(dynamo=False, opset_version=17): robust-eval's logits against
            onnxruntime's and its input gradients (cross-entropy at the labels) against PyTorch's,
            as max |a − b| / max |b|;
  speed   — forward images/s against onnxruntime (CPU execution provider) and input-gradient
            images/s against PyTorch, same threads, batch 64, 3×32×32, ResNet-18 and WRN-28-10,
            alternating rounds, medians;
  pgd     — the bundled JEM exported to ONNX: `robust-eval pgd` through the graph executor and
            through the safetensors Wide-ResNet on the same test images, per example.

Usage: venv/bin/python scripts/compare_onnx.py [--threads 2] [--rounds 3] [--pgd-n 1000] [--json docs/results/onnx_compare.json]
Needs scripts/setup_torch_venv.sh and a release build (swift build -c release).
"""
import argparse
import copy
import csv
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from peer_heap import heap_note, same_heap_as_robust_eval  # noqa: E402
same_heap_as_robust_eval()  # before torch allocates: the heap settings robust-eval runs with

import numpy as np
import onnxruntime as ort
import torch

from bench_torch import median_time  # noqa: E402
from onnx_models import LeNet, PreActResNet18, ResNet18, RobustBenchWRN, calibrate_bn, export  # noqa: E402
from wrn_torch import load_robust_eval_model  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, ".build", "release", "robust-eval")


def rel(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


def run(args):
    r = subprocess.run([BIN] + args, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"robust-eval {' '.join(args)} failed:\n{r.stderr}")
    return r.stdout


def parity(tmp, threads):
    out = {}
    models = [("resnet18", ResNet18(), (16, 3, 32, 32)), ("preact_resnet18_silu_pad", PreActResNet18(), (16, 3, 32, 32)),
              ("robustbench_wrn_28_10", RobustBenchWRN(28, 10), (8, 3, 32, 32)), ("lenet_maxpool", LeNet(), (16, 1, 28, 28))]
    for i, (name, m, shape) in enumerate(models):
        calibrate_bn(m, shape, seed=i)
        path = os.path.join(tmp, name + ".onnx")
        export(m, path, shape)
        g = torch.Generator().manual_seed(10 + i)
        x = torch.rand(*shape, generator=g)
        y = torch.randint(0, 10, (shape[0],), generator=g)
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        z_ort = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
        def grad(model, xx):
            xx = xx.clone().requires_grad_(True)
            loss = torch.nn.functional.cross_entropy(model(xx), y, reduction="sum")
            return torch.autograd.grad(loss, xx)[0]
        g_torch = grad(m, x)
        # float64 reference: how far float32 itself is from exact (ReLU sign flips near zero).
        m64 = copy.deepcopy(m).double()
        g64 = grad(m64, x.double()).numpy()
        # and how much that exact gradient moves when the input moves by 1e-7 (float32's resolution).
        g64n = grad(m64, x.double() + 1e-7 * torch.randn(*shape, generator=g, dtype=torch.float64)).numpy()
        np.save(os.path.join(tmp, "x.npy"), x.numpy())
        np.save(os.path.join(tmp, "y.npy"), y.numpy().astype(np.int64))
        run(["predict", "--model", path, "--images", os.path.join(tmp, "x.npy"), "--labels", os.path.join(tmp, "y.npy"),
             "--out", os.path.join(tmp, "z.npy"), "--gradients", os.path.join(tmp, "g.npy"), "--threads", str(threads)])
        z = np.load(os.path.join(tmp, "z.npy"))
        gr = np.load(os.path.join(tmp, "g.npy"))
        gt = g_torch.numpy()
        per_image = [rel(gr[j], gt[j]) for j in range(shape[0])]
        out[name] = {"logits_rel_err_vs_onnxruntime": rel(z, z_ort), "input_grad_rel_err_vs_pytorch": rel(gr, gt),
                     "input_grad_rel_err_vs_pytorch_float64": rel(gr, g64),
                     "pytorch_float32_vs_float64": rel(gt, g64),
                     "float64_grad_change_under_1e-7_input_noise": rel(g64n, g64),
                     "images_within_1e-4_of_pytorch": sum(e < 1e-4 for e in per_image),
                     "batch": shape[0], "input": "x".join(map(str, shape[1:]))}
        o = out[name]
        print(f"parity {name:26s} logits vs ORT {o['logits_rel_err_vs_onnxruntime']:.1e}   input grad vs PyTorch "
              f"{o['input_grad_rel_err_vs_pytorch']:.1e} (vs float64 {o['input_grad_rel_err_vs_pytorch_float64']:.1e}; "
              f"PyTorch float32 vs float64 {o['pytorch_float32_vs_float64']:.1e}; {o['images_within_1e-4_of_pytorch']}/{shape[0]} "
              f"images within 1e-4; float64 gradient moves {o['float64_grad_change_under_1e-7_input_noise']:.1e} under 1e-7 input noise)", flush=True)
    return out


def speed(tmp, threads, rounds, repeats):
    torch.set_num_threads(threads)
    res = {}
    for name, m in [("resnet18", ResNet18()), ("robustbench_wrn_28_10", RobustBenchWRN(28, 10))]:
        calibrate_bn(m, (16, 3, 32, 32))
        path = os.path.join(tmp, name + "_speed.onnx")
        export(m, path, (64, 3, 32, 32))
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        iname = sess.get_inputs()[0].name
        x = torch.rand(64, 3, 32, 32)
        xn = x.numpy()

        def torch_grad():   # the input gradient only: no weight gradients computed
            xg = x.clone().requires_grad_(True)
            torch.autograd.grad(torch.logsumexp(m(xg), 1).sum(), xg)

        rows = {"ort_forward": [], "torch_forward": [], "torch_input_grad": [], "re_forward": [], "re_input_grad": []}
        for r in range(rounds):
            rows["ort_forward"].append(64 / median_time(repeats, lambda: sess.run(None, {iname: xn})))
            with torch.no_grad():
                rows["torch_forward"].append(64 / median_time(repeats, lambda: m(x)))
            rows["torch_input_grad"].append(64 / median_time(repeats, torch_grad))
            jpath = os.path.join(tmp, "bench.json")
            run(["bench", "--model", path, "--batch", "64", "--repeats", str(repeats), "--threads", str(threads), "--json", jpath])
            b = {row["op"]: row["images_per_second"] for row in json.load(open(jpath))["rows"]}
            rows["re_forward"].append(b["forward"])
            rows["re_input_grad"].append(b["input_grad"])
        med = {k: float(np.median(v)) for k, v in rows.items()}
        med["forward_ratio_vs_onnxruntime"] = med["re_forward"] / med["ort_forward"]
        med["input_grad_ratio_vs_pytorch"] = med["re_input_grad"] / med["torch_input_grad"]
        res[name] = med
        print(f"speed {name:22s} forward: robust-eval {med['re_forward']:.1f} img/s, onnxruntime {med['ort_forward']:.1f} "
              f"({med['forward_ratio_vs_onnxruntime']:.2f}x), PyTorch {med['torch_forward']:.1f}; input grad: robust-eval "
              f"{med['re_input_grad']:.1f}, PyTorch {med['torch_input_grad']:.1f} ({med['input_grad_ratio_vs_pytorch']:.2f}x)", flush=True)
    return res


def pgd(tmp, threads, n):
    st = os.path.join(ROOT, "Sources", "robust-eval", "Models", "jem-fmnist.safetensors")
    path = os.path.join(tmp, "jem-fmnist.onnx")
    export(load_robust_eval_model(st), path, (2, 1, 28, 28))
    out = {}
    for tag, model in [("onnx", path), ("safetensors", "jem")]:
        csvp, jp = os.path.join(tmp, f"pgd_{tag}.csv"), os.path.join(tmp, f"pgd_{tag}.json")
        t0 = time.time()
        run(["pgd", "--model", model, "--eps", "8/255", "--limit", str(n), "--threads", str(threads), "--per-example", csvp, "--json", jp])
        rep = json.load(open(jp))
        out[tag] = {"clean_accuracy": rep["clean_accuracy"], "robust_accuracy": rep["robust_accuracy"], "seconds": time.time() - t0,
                    "rows": list(csv.DictReader(open(csvp)))}
    a, b = out["onnx"].pop("rows"), out["safetensors"].pop("rows")
    out["examples_with_different_outcome"] = sum(
        1 for p, q in zip(a, b) if (p["adversarial_prediction"] == p["label"]) != (q["adversarial_prediction"] == q["label"]))
    out["n"] = n
    print(f"pgd jem: ONNX robust {out['onnx']['robust_accuracy']:.4f} ({out['onnx']['seconds']:.0f} s), safetensors "
          f"{out['safetensors']['robust_accuracy']:.4f} ({out['safetensors']['seconds']:.0f} s), "
          f"{out['examples_with_different_outcome']} of {n} examples differ", flush=True)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--pgd-n", type=int, default=1000)
    ap.add_argument("--only", default="parity,speed,pgd")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(a.threads)
    result = {"threads": a.threads, "torch": torch.__version__, "onnxruntime": ort.__version__, "heap": heap_note()}
    with tempfile.TemporaryDirectory() as tmp:
        parts = a.only.split(",")
        if "parity" in parts:
            result["parity"] = parity(tmp, a.threads)
        if "speed" in parts:
            result["speed"] = speed(tmp, a.threads, a.rounds, a.repeats)
        if "pgd" in parts:
            result["pgd"] = pgd(tmp, a.threads, a.pgd_n)
    if a.json:
        tmpj = a.json + ".tmp"
        with open(tmpj, "w") as f:
            json.dump(result, f, indent=2)
        os.replace(tmpj, a.json)


if __name__ == "__main__":
    main()
