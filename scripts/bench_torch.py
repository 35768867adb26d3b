#!/usr/bin/env python3
"""The rows of `robust-eval bench` in PyTorch CPU: forward, training step (forward + backward to
the weights) and input gradient (backward of summed logsumexp to the input), batch 64, median of
repeats, same thread count. Prints JSON like `robust-eval bench --json`.

With --workload, the end-to-end workloads of `robust-eval bench --workload` on the same bundled JEM
file, implemented the way the reference code does them (normalised-space SGLD, torchattacks PGD, the
JEM loss with Adam, the defense's chains with BPDA gradients).

Usage: venv/bin/python scripts/bench_torch.py --threads 2 [--repeats 5] [--only wrn-16-4]
       venv/bin/python scripts/bench_torch.py --threads 2 --workload sgld,pgd,train,defend,latency
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from peer_heap import heap_note, same_heap_as_robust_eval  # noqa: E402
same_heap_as_robust_eval()  # before torch allocates: the heap settings robust-eval runs with

import torch
import torch.nn.functional as F

from wrn_torch import CCF, load_robust_eval_model  # noqa: E402

CASES = [("wrn-10-2", 1, 28), ("wrn-10-2", 3, 32), ("wrn-16-4", 1, 28), ("wrn-16-4", 3, 32), ("wrn-28-10", 3, 32)]


def median_time(repeats, fn):
    fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return sorted(ts)[len(ts) // 2]


def sgld(model, u, steps, alpha=1.0, sigma=0.01, clamp=None, labels=None):
    """Reference SGLD in the normalised space u: u <- u + alpha * grad lse f(u) + sigma * N(0, I)."""
    for _ in range(steps):
        u = u.detach().requires_grad_(True)
        z = model.class_output(model.f(u))
        e = z.gather(1, labels[:, None]).sum() if labels is not None else torch.logsumexp(z, 1).sum()
        g = torch.autograd.grad(e, u)[0]
        if clamp is not None:
            g = g.clamp(-1, 1)
        u = (u + alpha * g + sigma * torch.randn_like(u)).detach()
        if clamp is not None:
            u = torch.max(torch.min(u, clamp[1]), clamp[0])
    return u


def workloads(a, names):
    import torchattacks
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    m = load_robust_eval_model(os.path.join(here, "Sources/robust-eval/Models/jem-fmnist.safetensors"))
    m.eval()
    mean, std = m.mean, m.std
    rows = []

    def add(op, n, secs):
        rows.append({"model": "jem-fmnist", "input": "1x28x28", "batch": n, "op": op, "images_per_second": n / secs})
        print(f"{op:12s} batch {n:4d} {n / secs:9.2f} img/s ({secs:.3f} s)", file=sys.stderr)

    for name in names:
        if name == "sgld":
            x0 = torch.rand(64, 1, 28, 28)
            add("sgld20", 64, median_time(a.repeats, lambda: sgld(m, (x0 - mean) / std, 20)))
        elif name == "pgd":
            x, y = torch.rand(128, 1, 28, 28), torch.arange(128) % 10
            atk = torchattacks.PGD(m, eps=8 / 255, alpha=2 / 255, steps=10, random_start=True)

            def pgd():
                adv = atk(x, y)
                with torch.no_grad():
                    m(adv)
            add("pgd10", 128, median_time(a.repeats, pgd))
        elif name in ("train", "train10"):
            # One iteration of the bundled JEM's recipe: batch 64, 5 (train10: 10) clamped SGLD steps from a
            # 10 000-image replay buffer (5 % re-initialised), CE + p(x) + 0.1 * energy L2, Adam.
            net = load_robust_eval_model(os.path.join(here, "Sources/robust-eval/Models/jem-fmnist.safetensors"))
            opt = torch.optim.Adam(net.parameters(), lr=1e-3)
            data_x, data_y = torch.rand(1000, 1, 28, 28), torch.arange(1000) % 10
            buf = torch.rand(10000, 1, 28, 28) * 2 - 1
            lo, hi = (0 - mean) / std, (1 - mean) / std

            k = 5 if name == "train" else 10
            split = []   # (sampler seconds, rest seconds) of each timed iteration, printed on stderr

            def step():
                t0 = time.perf_counter()
                idx = torch.randint(0, 1000, (64,))
                x = (data_x[idx] - mean) / std + 0.03 * torch.randn(64, 1, 28, 28)
                bi = torch.randint(0, 10000, (64,))
                xq = buf[bi]
                re = (torch.rand(64) < 0.05).float()[:, None, None, None]
                xq = re * (torch.rand_like(xq) * 2 - 1) + (1 - re) * xq
                net.eval()
                t1 = time.perf_counter()
                xq = sgld(net, xq, k, clamp=(lo, hi))
                t2 = time.perf_counter()
                buf[bi] = xq
                net.train()
                z = net.class_output(net.f(torch.cat([x, xq])))
                zd, zq = z[:64], z[64:]
                ld, lq = torch.logsumexp(zd, 1), torch.logsumexp(zq, 1)
                loss = F.cross_entropy(zd, data_y[idx]) - (ld.mean() - lq.mean()) + 0.1 * (ld ** 2 + lq ** 2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                split.append((t2 - t1, (t1 - t0) + (time.perf_counter() - t2)))
            add("train_iter" if name == "train" else "train_iter_k10", 64, median_time(a.repeats, step))
            smp = sorted(x[0] for x in split[1:])[len(split[1:]) // 2]
            rest = sorted(x[1] for x in split[1:])[len(split[1:]) // 2]
            print(f"  inside the iteration (medians): sampler {1000 * smp / k:.1f} ms per SGLD step, the rest {1000 * rest:.0f} ms", file=sys.stderr)
        elif name == "defend":
            # The reference defense (attack_model.py): 5 chains from x + N(0, 0.03²), 10 SGLD steps,
            # logits averaged; PGD-L∞ 8/255, 10 steps, BPDA gradient at the refined points; clean and
            # adversarial predictions, as `robust-eval defend` evaluates a batch.
            x, y = torch.rand(16, 1, 28, 28), torch.arange(16) % 10

            def refined_logits(x01, need_grad):
                u = ((x01 - mean) / std).repeat_interleave(5, 0)
                u = sgld(m, u + 0.03 * torch.randn_like(u), 10)
                if need_grad:
                    u.requires_grad_(True)
                    return m.class_output(m.f(u)).view(-1, 5, 10).mean(1), u
                with torch.no_grad():
                    return m.class_output(m.f(u)).view(-1, 5, 10).mean(1), u

            def defend():
                refined_logits(x, False)[0].argmax(1)
                eps, alpha = 8 / 255, 2 / 255
                adv = (x + torch.empty_like(x).uniform_(-eps, eps)).clamp(0, 1)
                for _ in range(10):
                    z, u = refined_logits(adv, True)
                    g = torch.autograd.grad(F.cross_entropy(z, y), u)[0]
                    g = (g * std.view(1, -1, 1, 1) ** -1).view(16, 5, 1, 28, 28).sum(1)
                    adv = torch.min(torch.max(adv + alpha * g.sign(), x - eps), x + eps).clamp(0, 1).detach()
                refined_logits(adv, False)[0].argmax(1)
            add("defend", 16, median_time(a.repeats, defend))
        elif name == "defend_full":
            # The same attack through the whole defense: the exact gradient of the averaged logits
            # with respect to the input, through all 10 Langevin steps of all 5 chains
            # (torch.autograd.grad(create_graph=True) at every step), as `defend --gradient full`.
            x, y = torch.rand(16, 1, 28, 28), torch.arange(16) % 10

            def chain_logits(x01, graph):
                u = ((x01 - mean) / std).repeat_interleave(5, 0)
                u = u + 0.03 * torch.randn_like(u)
                for _ in range(10):
                    if not graph:
                        u = u.detach().requires_grad_(True)
                    e = torch.logsumexp(m.class_output(m.f(u)), 1).sum()
                    g = torch.autograd.grad(e, u, create_graph=graph)[0]
                    u = u + g + 0.01 * torch.randn_like(u)
                if not graph:
                    u = u.detach()
                return m.class_output(m.f(u)).view(-1, 5, 10).mean(1)

            def defend_full():
                chain_logits(x, False).argmax(1)
                eps, alpha = 8 / 255, 2 / 255
                adv = (x + torch.empty_like(x).uniform_(-eps, eps)).clamp(0, 1)
                for _ in range(10):
                    xa = adv.clone().requires_grad_(True)
                    g = torch.autograd.grad(F.cross_entropy(chain_logits(xa, True), y), xa)[0]
                    adv = torch.min(torch.max(adv + alpha * g.sign(), x - eps), x + eps).clamp(0, 1).detach()
                chain_logits(adv, False).argmax(1)
            add("defend_full", 16, median_time(a.repeats, defend_full))
        elif name == "latency":
            x = torch.rand(1, 1, 28, 28)

            def fwd():
                with torch.no_grad():
                    m(x)

            def grad():
                xi = x.clone().requires_grad_(True)
                torch.autograd.grad(torch.logsumexp(m(xi), 1).sum(), xi)
            add("forward_b1", 1, median_time(a.repeats * 20, fwd))
            add("input_grad_b1", 1, median_time(a.repeats * 20, grad))
        else:
            raise SystemExit(f"--workload {name!r} is unknown; expected sgld, pgd, train, train10, defend, defend_full, latency")
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--only")
    ap.add_argument("--workload")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.workload:
        rows = workloads(a, a.workload.split(","))
        print(json.dumps({"threads": a.threads, "torch": torch.__version__, "heap": heap_note(), "rows": rows}))
        return
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
    print(json.dumps({"threads": a.threads, "torch": torch.__version__, "heap": heap_note(), "rows": rows}))


if __name__ == "__main__":
    main()
