#!/usr/bin/env python3
"""torchattacks 3.5.1's Square on the first N Fashion-MNIST test images of a robust-eval model, L∞ 8/255,
one restart, seed 0: robust accuracy, seconds and forward passes; the counterpart of
`robust-eval square --limit N --n-queries Q [--rescale-schedule]`.

Usage: venv/bin/python scripts/square_peer.py MODEL.safetensors N QUERIES fixed|stretched [THREADS]
(fixed: AutoAttack's schedule of p, resc_schedule=False; stretched: torchattacks' default)."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from peer_heap import same_heap_as_robust_eval  # noqa: E402
same_heap_as_robust_eval()  # before torch allocates: the heap settings robust-eval runs with

import torch
import torchattacks

from compare_torchattacks import fmnist_test  # noqa: E402
from wrn_torch import load_robust_eval_model  # noqa: E402

path, n, q, schedule = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
if schedule not in ("fixed", "stretched"):
    sys.exit(f"schedule must be fixed or stretched, got {schedule}")
torch.set_num_threads(int(sys.argv[5]) if len(sys.argv) > 5 else 2)
model = load_robust_eval_model(path).eval()
x, y = fmnist_test(n)
passes = [0, 0]


class Counting(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, v):
        passes[0] += 1
        passes[1] += v.shape[0]
        return self.m(v)


atk = torchattacks.Square(Counting(model).eval(), norm="Linf", eps=8 / 255, n_queries=q, n_restarts=1, seed=0,
                          resc_schedule=schedule == "stretched")
t = time.time()
adv = atk(x, y)
dt = time.time() - t
with torch.no_grad():
    acc = (model(adv).argmax(1) == y).float().mean().item()
print(f"torchattacks Square ({schedule} schedule), {n} images, {q} queries: robust {100 * acc:.1f} %, {dt:.1f} s, "
      f"{passes[0]} forward calls, {passes[1]} images forwarded")
