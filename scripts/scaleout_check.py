#!/usr/bin/env python3
"""Checks that sharding cannot change a result: for each command, one process, --batch-size 7,
--threads 1, --shard 1/2 + 2/2 + merge, and mpirun -n 2 (over TCP) must write the same per-example
CSV, adversarial set and JSON report (timings aside).

usage: scripts/scaleout_check.py [--bin PATH] [--n 200] [--commands pgd,autoattack,defend] [--quick]
"""
import argparse, json, os, shutil, subprocess, sys, tempfile, time

ap = argparse.ArgumentParser()
ap.add_argument("--bin", default=".build/release/robust-eval")
ap.add_argument("--n", type=int, default=200)
ap.add_argument("--commands", default="pgd,autoattack,defend")
ap.add_argument("--quick", action="store_true", help="cheap attack settings (for the test suite)")
ap.add_argument("--no-mpi", action="store_true")
args = ap.parse_args()
B = os.path.abspath(args.bin)
env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_btl="tcp,self",
           OMPI_MCA_rmaps_base_oversubscribe="1")

q = args.quick
COMMANDS = {
    # command: (arguments, outputs: json / csv / adversarials / other files)
    "pgd": (["pgd"] + (["--steps", "3"] if q else []), True, True),
    "transfer": (["transfer"] + (["--steps", "3"] if q else []), True, True),
    "eval": (["eval"], False, False),
    "apgd": (["apgd"] + (["--steps", "5"] if q else []), True, True),
    "square": (["square", "--n-queries", "30" if q else "300"], True, True),
    # The identity of the outputs does not depend on the attack budgets, so the full runs use
    # shortened ones (five runs of each command): AutoAttack standard with 20 iterations and 500
    # queries; the defense with 3 SGLD steps, 5 APGD steps, 2 evaluation runs, 20 Square queries
    # and without the transfer attack (the same AutoAttack machinery, checked above and by --quick).
    "autoattack": (["autoattack"] + (["--n-iter", "4", "--n-queries", "20", "--n-target-classes", "2"] if q else ["--n-iter", "20", "--n-queries", "500"]), True, True),
    "defend": (["defend", "--sgld-steps", "2" if q else "3", "--steps", "3" if q else "5", "--eval-runs", "2",
                "--n-queries", "10" if q else "20", "--chains", "2"]
               # transfer runs full AutoAttack on the bare model per point (the quick run covers it)
               + ([] if q else ["--attacks", "apgd-ce,apgd-dlr,bpda,square"]), True, True),
    "calibrate": (["calibrate", "--refine", "2", "--chains", "2"], False, False),
    "ood": (["ood", "--ood", "uniform", "--ood", "permuted"], False, False),
    "curve": (["curve", "--eps", "0,2/255,8/255", "--steps", "3" if q else "10", "--series", "jem:none", "--series", "jem:1"], False, False),
}

def strip(o):
    if isinstance(o, dict):
        return {k: strip(v) for k, v in o.items() if "second" not in k}
    if isinstance(o, list):
        return [strip(v) for v in o]
    return o

def run(cmd, cwd):
    t = time.time()
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"FAILED ({p.returncode}): {' '.join(cmd)}\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    return time.time() - t

def outputs(name, tag, csv, adv):
    if name == "curve":
        return ["--out", tag]
    o = ["--json", tag + ".json"]
    if csv: o += ["--per-example", tag + ".csv"]
    if adv: o += ["--save-adversarials", tag + ".npy"]
    return o

def files(name, tag, csv, adv):
    if name == "curve":
        return [tag + ".json", tag + ".csv"]
    return [tag + ".json"] + ([tag + ".csv"] if csv else []) + ([tag + ".npy", tag + ".labels.npy"] if adv else [])

def same(a, b):
    if a.endswith(".json"):
        return strip(json.load(open(a))) == strip(json.load(open(b)))
    return open(a, "rb").read() == open(b, "rb").read()

failed = 0
work = tempfile.mkdtemp(prefix="scaleout-")
for name in args.commands.split(","):
    base, csv, adv = COMMANDS[name]
    common = base + ["--limit", str(args.n), "--seed", "3"]
    d = os.path.join(work, name); os.makedirs(d)
    variants = {"one": [], "batch7": ["--batch-size", "7"], "threads1": ["--threads", "1"]}
    secs = {}
    for tag, extra in variants.items():
        secs[tag] = run([B] + common + extra + outputs(name, tag, csv, adv), d)
    for i in (1, 2):
        part = outputs(name, f"part{i}", csv, adv)
        if name != "curve":
            part = ["--json", f"part{i}.json"] + (["--save-adversarials", f"part{i}.npy"] if adv else [])
        run([B] + common + ["--shard", f"{i}/2"] + part, d)
    merge_out = ["--out", "merged"] if name == "curve" else outputs(name, "merged", csv, adv)
    run([B, "merge", "part2.json" if name != "curve" else "part2.json", "part1.json"] + merge_out, d)
    checks = ["batch7", "threads1", "merged"]
    if not args.no_mpi:
        secs["mpi2"] = run(["mpirun", "-n", "2", B] + common + outputs(name, "mpi2", csv, adv), d)
        checks.append("mpi2")
    for tag in checks:
        for fa, fb in zip(files(name, "one", csv, adv), files(name, tag, csv, adv)):
            ok = same(os.path.join(d, fa), os.path.join(d, fb))
            if not ok:
                failed += 1
                print(f"DIFFERENT {name}: {fa} vs {fb} (in {d})")
    acc = strip(json.load(open(os.path.join(d, "one.json"))))
    key = next((k for k in ("robust_accuracy", "accuracy", "ece") if k in acc), None)
    print(f"{name:11s} n={args.n}: one process, batch 7, 1 thread, 2 shards + merge{', mpirun -n 2' if not args.no_mpi else ''}: "
          f"{'identical' if failed == 0 else 'see above'}" + (f" ({key} {acc[key]:.4f})" if key else "")
          + f"; {secs['one']:.1f} s one process" + (f", {secs['mpi2']:.1f} s mpirun -n 2" if 'mpi2' in secs else ""))
    sys.stdout.flush()
if failed:
    print(f"{failed} output(s) differ; files kept in {work}")
    sys.exit(1)
shutil.rmtree(work)
print("all identical")
