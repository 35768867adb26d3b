#!/usr/bin/env python3
"""The rows of `robust-eval bench` in PyTorch CPU: forward, training step (forward + backward to
the weights) and input gradient (backward of summed logsumexp to the input), batch 64, median of
repeats, same thread count. Prints JSON like `robust-eval bench --json`.

Usage: venv/bin/python scripts/bench_torch.py --threads 2 [--repeats 5] [--only wrn-16-4]
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from wrn_torch import CCF  # noqa: E402

CASES = [("wrn-10-2", 1, 28), ("wrn-10-2", 3, 32), ("wrn-16-4", 1, 28), ("wrn-16-4", 3, 32), ("wrn-28-10", 3, 32)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--only")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    rows = []
    for arch, c, s in CASES:
        if a.only and arch != a.only:
            continue
        _, d, k = arch.split("-")
        m = CCF(int(d), int(k), c, 10)
        x = torch.rand(a.batch, c, s, s)
        y = torch.arange(a.batch) % 10
        opt = torch.optim.SGD(m.parameters(), lr=0.0)

        def forward():
            m.eval()
            with torch.no_grad():
                m(x)

        def train_step():
            m.train()
            opt.zero_grad(set_to_none=False)
            F.cross_entropy(m(x), y).backward()

        def input_grad():
            m.eval()
            xi = x.clone().requires_grad_(True)
            torch.autograd.grad(torch.logsumexp(m(xi), 1).sum(), xi)

        for name, fn in [("forward", forward), ("train_step", train_step), ("input_grad", input_grad)]:
            fn()
            ts = []
            for _ in range(a.repeats):
                t0 = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - t0)
            med = sorted(ts)[len(ts) // 2]
            rows.append({"model": arch, "input": f"{c}x{s}x{s}", "batch": a.batch, "op": name,
                         "images_per_second": a.batch / med})
            print(f"{arch:10s} {c}x{s}x{s} {name:11s} {a.batch / med:9.1f} img/s", file=sys.stderr)
    print(json.dumps({"threads": a.threads, "torch": torch.__version__, "rows": rows}))


if __name__ == "__main__":
    main()
