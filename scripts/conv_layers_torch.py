#!/usr/bin/env python3
"""Per-layer forward time of WRN-10-2 (1×28×28, batch 64) in PyTorch CPU, from torch.profiler over
20 forwards: the counterpart of scripts/conv_layers.c. Usage: venv/bin/python scripts/conv_layers_torch.py [THREADS]"""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from peer_heap import same_heap_as_robust_eval  # noqa: E402
same_heap_as_robust_eval()  # before torch allocates: the heap settings robust-eval runs with

import torch

from wrn_torch import CCF  # noqa: E402

torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
torch.manual_seed(0)
m = CCF(10, 2, 1, 10).eval()
x = torch.rand(64, 1, 28, 28)
reps = 20
with torch.no_grad():
    for _ in range(5):
        m(x)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as p:
        for _ in range(reps):
            m(x)
print("| op | input, weight | PyTorch ms |\n|---|---|---:|")
total = 0.0
for e in sorted(p.key_averages(group_by_input_shape=True), key=lambda e: -e.self_cpu_time_total):
    if e.key in ("aten::mkldnn_convolution", "aten::leaky_relu", "aten::add") and e.count:
        ms = e.self_cpu_time_total / 1e3 / reps
        total += ms
        print(f"| {e.key} | {e.input_shapes[:2]} | {ms:.2f} |")
print(f"| convolutions, LeakyReLU and adds | | {total:.2f} |")
