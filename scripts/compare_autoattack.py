#!/usr/bin/env python3
"""AutoAttack strength and speed against the peer: robust-eval's `autoattack --version standard` and
torchattacks 3.5.1's four components at the original AutoAttack settings (APGD-CE 100 steps,
APGD-T 9 targets x 100 steps, FAB-T 9 targets x 100 steps, Square 5000 queries; torchattacks' own
AutoAttack class builds them with 10 steps, so they are built here one by one), on the same weights,
the same first N Fashion-MNIST test images, the same batch size and threads. Each peer component runs
only on the points still robust (per-example worst case, as MultiAttack does), in batches. The peer's Square
keeps AutoAttack's fixed schedule of p (resc_schedule=False, as AutoAttack builds it; torchattacks' default
stretches it to the budget, and the runs of this script before 2026-11-29 used that default). Square is
also run alone, by both tools, on the first --square-alone-n images (default 100). Peak memory: max RSS of each side.

Usage: venv/bin/python scripts/compare_autoattack.py --model Sources/robust-eval/Models/jem-fmnist.safetensors \
           [--n 500] [--norm linf|l2] [--eps 8/255] [--threads 2] [--batch 128] [--json out.json]
Needs scripts/setup_torch_venv.sh and a release build (swift build -c release); ROBUST_EVAL=PATH runs
another robust-eval binary (e.g. a copy, so the package can be rebuilt while this runs).
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from peer_heap import heap_note, same_heap_as_robust_eval  # noqa: E402
same_heap_as_robust_eval()  # before torch allocates: the heap settings robust-eval runs with

import torch

from wrn_torch import load_robust_eval_model  # noqa: E402
from compare_torchattacks import fmnist_test, frac  # noqa: E402

import torchattacks  # noqa: E402


def run_chain(attacks, model, x, y, batch, ckpt=None):
    """Per-example worst case: each attack only on points every earlier one left robust.
    With ckpt (a path), the state is saved after every batch and a killed run continues from it;
    seconds count only the time spent attacking."""
    st = torch.load(ckpt) if ckpt and os.path.exists(ckpt) else None
    if st is None:
        with torch.no_grad():
            robust = model(x).argmax(1) == y
        st = {"robust": robust, "rows": [], "attack": 0, "idx": None, "next": 0, "seconds": 0.0}
    robust = st["robust"]
    for ai, (name, atk) in enumerate(attacks):
        if ai < st["attack"]:
            continue
        if st["idx"] is None:
            st["idx"] = robust.nonzero().flatten()
        idx = st["idx"]
        for s in range(st["next"], len(idx), batch):
            t0 = time.time()
            b = idx[s:s + batch]
            adv = atk(x[b], y[b])
            with torch.no_grad():
                ok = model(adv).argmax(1) == y[b]
            if a_norm == "linf":
                d = (adv - x[b]).abs().flatten(1).max(1)[0]
            else:
                d = (adv - x[b]).flatten(1).norm(dim=1)
            ok = ok | (d > a_eps + 1e-5)   # a point outside the ball does not count as broken
            robust[b] = ok
            st["seconds"] += time.time() - t0
            st["next"] = s + batch
            save(st, ckpt)
        st["rows"].append({"name": name, "robust_accuracy": robust.float().mean().item(), "seconds": st["seconds"]})
        st.update(attack=ai + 1, idx=None, next=0, seconds=0.0)
        save(st, ckpt)
    return robust.float().mean().item(), st["rows"]


def save(st, ckpt):
    if ckpt:
        torch.save(st, ckpt + ".tmp")
        os.replace(ckpt + ".tmp", ckpt)


def main():
    global a_norm, a_eps
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--norm", default="linf")
    ap.add_argument("--eps", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    ap.add_argument("--state-dir", default=None,
                    help="directory for both tools' resumable state (default runs/compare_aa/<model>_<norm>_<n>): re-running continues a killed comparison")
    ap.add_argument("--square-alone-n", type=int, default=100,
                    help="Square alone (both tools) on the first this many images (0: skip); the peer's Square costs 5000 forward passes per robust image")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    a_norm = a.norm
    eps = frac(a.eps) if a.eps else (8 / 255 if a.norm == "linf" else 0.5)
    a_eps = eps
    norm = "Linf" if a.norm == "linf" else "L2"
    model = load_robust_eval_model(a.model).eval()
    x, y = fmnist_test(a.n)
    with torch.no_grad():
        clean = (model(x).argmax(1) == y).float().mean().item()
    comps = [
        ("apgd-ce", torchattacks.APGD(model, norm=norm, eps=eps, steps=100, n_restarts=1, loss="ce", seed=a.seed)),
        ("apgd-t", torchattacks.APGDT(model, norm=norm, eps=eps, steps=100, n_restarts=1, n_classes=10, seed=a.seed)),
        ("fab-t", torchattacks.FAB(model, norm=norm, eps=eps, steps=100, n_restarts=1, multi_targeted=True, n_classes=10, seed=a.seed)),
        ("square", torchattacks.Square(model, norm=norm, eps=eps, n_queries=5000, n_restarts=1, seed=a.seed, resc_schedule=False)),
    ]
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    exe = os.environ.get("ROBUST_EVAL") or os.path.join(here, ".build/release/robust-eval")
    os.makedirs(os.path.join(here, "runs"), exist_ok=True)
    sd = a.state_dir or os.path.join(here, "runs", "compare_aa",
                                     f"{os.path.basename(a.model).rsplit('.', 1)[0]}_{a.norm}_{a.n}")
    os.makedirs(sd, exist_ok=True)
    reused = [f for f in ("robust_eval_state.json", "torchattacks.pt") if os.path.exists(os.path.join(sd, f))]
    if reused:
        print(f"compare_autoattack: {sd} holds an earlier run's state ({', '.join(reused)}): what it finished is not run "
              "again, so its seconds come from that run (and its peak memory is not measured); a new --state-dir "
              "(or deleting this one) measures the current build", file=sys.stderr, flush=True)
    out = os.path.join(sd, "robust_eval.json")
    base = ["--model", a.model, "--norm", a.norm, "--eps", repr(eps), "--threads", str(a.threads),
              "--batch-size", str(a.batch), "--seed", str(a.seed)]
    common = base + ["--limit", str(a.n)]

    def child(cmd, path):
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        # robust-eval's progress lines (every ~10 s) go to a log beside the state, to follow a long run.
        with open(os.path.join(sd, "robust_eval.log"), "a") as log:
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
        if p.returncode != 0:
            raise SystemExit(f"robust-eval failed: {' '.join(cmd)}\n{p.stdout}")
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        return json.load(open(path)), max(rss, before) / 1024

    # robust-eval first: its result is known early; the peer's run is the long one.
    re_aa, re_rss = child([exe, "autoattack", "--version", "standard", "--json", out,
                           "--state", os.path.join(sd, "robust_eval_state.json")] + common, out)
    re_sq = None
    nsq = min(a.square_alone_n, a.n)
    if nsq > 0:
        out2 = out.replace(".json", "_square.json")
        re_sq, _ = child([exe, "square", "--json", out2, "--no-checks", "--limit", str(nsq),
                          "--state", os.path.join(sd, "robust_eval_square_state.json")] + base, out2)
    print(json.dumps({"robust_eval": re_aa["per_attack"], "robust_accuracy": re_aa["robust_accuracy"]}), flush=True)
    ta_robust, ta_rows = run_chain(comps, model, x, y, a.batch, os.path.join(sd, "torchattacks.pt"))
    ta_secs = sum(r["seconds"] for r in ta_rows)
    print(json.dumps({"torchattacks": ta_rows, "seconds": ta_secs}), flush=True)
    ta_sq = None
    if nsq > 0:
        r, rows = run_chain([comps[3]], model, x[:nsq], y[:nsq], a.batch, os.path.join(sd, "torchattacks_square.pt"))
        ta_sq = {"n": nsq, "robust_accuracy": r, "seconds": rows[0]["seconds"]}
        print(json.dumps({"torchattacks_square_alone": ta_sq}), flush=True)
    ta_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # the peer's process only (children are robust-eval)

    res = {
        "model": a.model, "n": a.n, "norm": a.norm, "eps": eps, "threads": a.threads, "batch": a.batch,
        "torch": torch.__version__, "torchattacks": torchattacks.__version__, "heap": heap_note(),
        "clean_accuracy_torch": clean, "clean_accuracy_robust_eval": re_aa["clean_accuracy"],
        "robust_accuracy_torchattacks": ta_robust, "robust_accuracy_robust_eval": re_aa["robust_accuracy"],
        "per_attack_torchattacks": ta_rows, "per_attack_robust_eval": re_aa["per_attack"],
        "seconds_torchattacks": ta_secs, "seconds_robust_eval": sum(r["seconds"] for r in re_aa["per_attack"]),
        "square_alone_torchattacks": ta_sq,
        "square_alone_robust_eval": None if re_sq is None else {"n": nsq, "robust_accuracy": re_sq["robust_accuracy"], "seconds": re_sq["per_attack"][0]["seconds"]},
        "peak_rss_mb_torchattacks": ta_rss, "peak_rss_mb_robust_eval": re_rss,
        "flags_robust_eval": re_aa["flags"],
    }
    print(json.dumps(res, indent=2))
    if a.json:
        with open(a.json + ".tmp", "w") as f:
            json.dump(res, f, indent=2)
        os.replace(a.json + ".tmp", a.json)


if __name__ == "__main__":
    main()
