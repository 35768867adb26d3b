#!/usr/bin/env python3
"""PyTorch's SGLD step on the bundled JEM, before and after one training-mode backward pass.

bench_torch.py's SGLD-20 row times PyTorch on a freshly loaded model; inside its training
iteration the same input-gradient passes run after a backward to the weights. This prints the
milliseconds per SGLD step (batch 64, 10 clamped steps from uniform starts, the training recipe's
sampler) on a fresh model, after one forward + backward in training mode, after an Adam step, so
that the two states can be compared on one machine, same threads.

The difference between them (about 25 % on glibc's default heap) is glibc's dynamic mmap threshold:
a fresh process maps and faults in every large tensor anew until a large free raises it. The script
runs with robust-eval's heap settings (scripts/peer_heap.py), under which the states match;
PEER_HEAP=default shows the difference.

Usage: venv/bin/python scripts/torch_sgld_state.py [--threads 2] [--repeats 2]
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from peer_heap import same_heap_as_robust_eval  # noqa: E402
same_heap_as_robust_eval()  # before torch allocates: the heap settings robust-eval runs with

import torch

from bench_torch import sgld  # noqa: E402
from wrn_torch import load_robust_eval_model  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    net = load_robust_eval_model(os.path.join(here, "Sources/robust-eval/Models/jem-fmnist.safetensors"))
    net.eval()
    lo, hi = (0 - net.mean) / net.std, (1 - net.mean) / net.std
    xq = torch.rand(64, 1, 28, 28) * 2 - 1

    def timed(state):
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            sgld(net, xq, 10, clamp=(lo, hi))
            print(f"{state:34s} {(time.perf_counter() - t0) * 100:7.1f} ms per SGLD step", flush=True)

    timed("fresh model")
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net.train()
    net.class_output(net.f(torch.rand(128, 1, 28, 28))).logsumexp(1).mean().backward()
    net.eval()
    timed("after one backward to the weights")
    opt.step()
    timed("after an Adam step")


if __name__ == "__main__":
    main()
