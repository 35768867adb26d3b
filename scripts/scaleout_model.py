#!/usr/bin/env python3
"""Predicted data-parallel training efficiency (docs/PERFORMANCE.md, "Scale-out").

Model: an iteration is the rank's compute plus its communication, nothing overlapped.
  compute(N)  = T1 * b_rank / 64           (T1: one rank's seconds per iteration at batch 64)
  allreduce   = 2 (N-1)/N * G / B + 2 ceil(log2 N) * alpha   (gradients, G bytes; bandwidth-optimal
                ring for the volume, recursive doubling for the latency term, as MPI libraries switch)
  allgather   = (N-1)/N * S_global / B + ceil(log2 N) * alpha (the new SGLD samples of the global batch,
                every rank keeps the whole replay buffer)
  efficiency  = compute(N) / (compute(N) + allreduce + allgather)
Strong scaling keeps the global batch at 64 (b_rank = 64/N, possible up to N = 64); weak scaling
keeps 64 per rank (global batch 64 N).

usage: scaleout_model.py T1_SECONDS BYTES_PER_ITERATION [--bandwidth-gbit 10] [--alpha-us 20]
"""
import argparse, math

ap = argparse.ArgumentParser()
ap.add_argument("t1", type=float, help="seconds per iteration, one rank, batch 64")
ap.add_argument("bytes", type=int, help="bytes per iteration as train prints it (gradients + the global batch's samples)")
ap.add_argument("--sample-bytes", type=int, default=64 * 784 * 4, help="bytes of the global batch's samples at batch 64")
ap.add_argument("--bandwidth-gbit", type=float, default=10)
ap.add_argument("--alpha-us", type=float, default=20, help="per-message latency")
ap.add_argument("--speedup", type=float, default=1, help="compute speed of a rank relative to the measured one")
a = ap.parse_args()
B = a.bandwidth_gbit * 1e9 / 8
alpha = a.alpha_us * 1e-6
G = a.bytes - a.sample_bytes
t1 = a.t1 / a.speedup
print(f"T1 = {t1:.3f} s per iteration (batch 64), gradients {G} bytes, samples {a.sample_bytes} bytes per 64 images, "
      f"{a.bandwidth_gbit:g} Gb/s, {a.alpha_us:g} us per message")
print(f"{'ranks':>6} {'scaling':>8} {'batch/rank':>10} {'compute ms':>11} {'allreduce ms':>13} {'allgather ms':>13} {'efficiency':>10}")
for n in (8, 64, 512):
    lg = math.ceil(math.log2(n))
    for mode in ("strong", "weak"):
        if mode == "strong" and n > 64:
            print(f"{n:>6} {mode:>8} {'-':>10}   (a global batch of 64 has fewer images than ranks)")
            continue
        b = 64 / n if mode == "strong" else 64
        s_global = a.sample_bytes * (1 if mode == "strong" else n)
        comp = t1 * b / 64
        ar = 2 * (n - 1) / n * G / B + 2 * lg * alpha
        ag = (n - 1) / n * s_global / B + lg * alpha
        print(f"{n:>6} {mode:>8} {b:>10g} {1e3 * comp:>11.1f} {1e3 * ar:>13.2f} {1e3 * ag:>13.2f} {100 * comp / (comp + ar + ag):>9.1f}%")
