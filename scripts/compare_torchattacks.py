#!/usr/bin/env python3
"""Attack strength against a peer: robust-eval's PGD and torchattacks' PGD on the same weights and
the same test images, same settings. Prints both robust accuracies and writes them as JSON.

Usage: venv/bin/python scripts/compare_torchattacks.py --model Sources/robust-eval/Models/jem-fmnist.safetensors \
           [--n 1000] [--norm linf|l2] [--eps 8/255] [--steps 10] [--threads 2]
Needs scripts/setup_torch_venv.sh (torch 2.13 CPU, numpy, scipy, torchattacks --no-deps) and a
release build of robust-eval.
"""
import argparse
import gzip
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from peer_heap import heap_note, same_heap_as_robust_eval  # noqa: E402
same_heap_as_robust_eval()  # before torch allocates: the heap settings robust-eval runs with

import numpy as np
import torch

from wrn_torch import load_robust_eval_model  # noqa: E402

import torchattacks  # noqa: E402


def frac(s):
    a, _, b = s.partition("/")
    return float(a) / float(b) if b else float(a)


def fmnist_test(n):
    d = "/usr/share/datasets/fashion-mnist"
    with gzip.open(f"{d}/t10k-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)[:n]
    with gzip.open(f"{d}/t10k-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)[:n]
    return torch.tensor(x, dtype=torch.float32) / 255, torch.tensor(y, dtype=torch.long)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--norm", default="linf")
    ap.add_argument("--eps", default=None)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    eps = frac(a.eps) if a.eps else (8 / 255 if a.norm == "linf" else 0.5)
    alpha = eps / 4 if a.norm == "linf" else 2.5 * eps / a.steps
    model = load_robust_eval_model(a.model)
    x, y = fmnist_test(a.n)
    with torch.no_grad():
        clean = (model(x).argmax(1) == y).float().mean().item()
    atk = (torchattacks.PGD(model, eps=eps, alpha=alpha, steps=a.steps, random_start=True) if a.norm == "linf"
           else torchattacks.PGDL2(model, eps=eps, alpha=alpha, steps=a.steps, random_start=True))
    t0 = time.time()
    robust_correct = []
    for i in range(0, a.n, 128):
        xb, yb = x[i:i + 128], y[i:i + 128]
        adv = atk(xb, yb)
        with torch.no_grad():
            robust_correct.append((model(adv).argmax(1) == yb) & (model(xb).argmax(1) == yb))
    ta_secs = time.time() - t0
    ta_robust = torch.cat(robust_correct).float().mean().item()

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = os.path.join(here, "runs", "compare_robust_eval.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    cmd = [os.path.join(here, ".build/release/robust-eval"), "pgd", "--model", a.model, "--limit", str(a.n),
           "--norm", a.norm, "--eps", repr(eps), "--steps", str(a.steps), "--threads", str(a.threads),
           "--seed", str(a.seed), "--json", out]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    re = json.load(open(out))
    res = {"model": a.model, "n": a.n, "norm": a.norm, "eps": eps, "step": alpha, "steps": a.steps,
           "clean_accuracy_torch": clean, "clean_accuracy_robust_eval": re["clean_accuracy"],
           "robust_accuracy_torchattacks": ta_robust, "robust_accuracy_robust_eval": re["robust_accuracy"],
           "seconds_torchattacks": ta_secs, "seconds_robust_eval": re["seconds"],
           "torchattacks": torchattacks.__version__, "torch": torch.__version__, "threads": a.threads, "heap": heap_note()}
    print(json.dumps(res, indent=2))
    if a.json:
        json.dump(res, open(a.json, "w"), indent=2)


if __name__ == "__main__":
    main()
