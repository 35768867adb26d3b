#!/usr/bin/env python3
"""Markdown tables of the measured results in docs/results/ (written by scripts/report_bundled.sh),
for the README. Standard library only. Prints every table it has data for.

Usage: python3 scripts/results_tables.py [RESULTS_DIR]
"""
import json
import os
import sys

D = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "docs", "results")
MODELS = ["baseline", "jem", "jem-k5"]
JEMS = [m for m in MODELS if m != "baseline"]


def load(name):
    p = os.path.join(D, name)
    return json.load(open(p)) if os.path.exists(p) else None


def pct(v):
    return f"{100 * v:.2f} %"


def table(header, rows):
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
    for r in rows:
        print("| " + " | ".join(str(c) for c in r) + " |")
    print()


def commands():
    p = os.path.join(D, "commands.log")
    out = {}
    if os.path.exists(p):
        for line in open(p):
            name, _, rest = line.partition(" (")
            secs, _, cmd = rest.partition("): ")
            out[name] = (secs.replace(" s", ""), cmd.strip())
    return out


def main():
    cmds = commands()
    rows = []
    for m in MODELS:
        e = load(f"eval_{m}.json")
        if e:
            rows.append([m, pct(e["accuracy"]), e["n"], " ".join(f"{100 * a:.1f}" for a in e["per_class_accuracy"])])
    if rows:
        print("Clean accuracy (`robust-eval eval --model M --data fashion-mnist`):\n")
        table(["model", "test accuracy", "n", "per class (0–9), %"], rows)

    rows = []
    for m in MODELS:
        for norm, label in (("linf", "L∞ 8/255"), ("l2", "L2 0.5")):
            r = load(f"pgd_{norm}_{m}.json")
            c = load(f"compare_torchattacks_{norm}_{m}.json")
            if r:
                rows.append([m, label, pct(r["clean_accuracy"]), pct(r["robust_accuracy"]),
                             pct(c["robust_accuracy_torchattacks"]) if c else "–", r["n"], f"{r['seconds']:.1f} s",
                             f"{r['images_per_second_per_step']:.0f}"])
    if rows:
        print("PGD, 10 steps, random start, cross-entropy (L∞ step 2/255; L2 step 2.5·ε/10), first 1 000 test images:\n")
        table(["model", "threat", "clean", "robust (robust-eval)", "robust (torchattacks 3.5.1)", "n", "time", "img/s per step"], rows)

    for j in JEMS:
        rows = []
        for name in (f"pgd_linf_{j}_n200.json", f"pgd_linf_{j}.json"):
            r = load(name)
            if r:
                rows.append(["PGD-L∞ 8/255, 10 steps, CE (standard)", pct(r["robust_accuracy"]), r["n"], f"{r['seconds']:.0f} s"])
        r = load(f"pgd_strong_{j}.json")
        if r:
            rows.append(["PGD-L∞ 8/255, 100 steps, margin loss, 5 restarts", pct(r["robust_accuracy"]), r["n"], f"{r['seconds']:.0f} s"])
        r = load(f"transfer_baseline_to_{j}.json")
        if r:
            rows.append(["transfer: PGD-L∞ 8/255 crafted on the baseline", pct(r["robust_accuracy"]), r["n"], f"{r['seconds']:.0f} s"])
        if len(rows) > 1:
            print(f"Gradient-masking checks on {j} (robust accuracy under each attack; lower means a stronger attack):\n")
            table(["attack", "robust accuracy", "n", "time"], rows)

    for norm in ("linf", "l2"):
        c = load(f"curve_{norm}.json")
        if not c:
            continue
        eps = [p["eps"] for p in c["series"][0]["points"]]
        head = ["series"] + [(f"{e * 255:g}/255" if norm == "linf" else f"{e:g}") for e in eps] + ["time"]
        rows = []
        for s in c["series"]:
            name = s["model"] if s["defense"] == "none" else f"{s['model']} SGLD-{s['defense'].split(':')[0][5:]}"
            rows.append([name] + [f"{100 * p['accuracy']:.1f}" for p in s["points"]] + [f"{s.get('seconds', 0):.0f} s"])
        print(f"Robust accuracy (%) against ε, {c['attack_summary'].split(' ε=')[0]}, n = {c['n']}, total {c['seconds']:.0f} s:\n")
        table(head, rows)

    rows = []
    for m in MODELS:
        r = load(f"calibrate_{m}.json")
        if r:
            rows.append([m, pct(r["accuracy"]), pct(r["ece"]), pct(r["mce"]), f"{r['nll']:.4f}", r["n"]])
    if rows:
        print("Calibration, 20 equal-width bins (`robust-eval calibrate --model M`):\n")
        table(["model", "accuracy", "ECE", "MCE", "NLL", "n"], rows)

    for m in MODELS:
        r = load(f"ood_{m}.json")
        if not r:
            continue
        scores = list(r["sets"][0]["metrics"].keys())
        rows = [[s["name"]] + [f"{s['metrics'][k]['auroc']:.3f}" for k in scores] for s in r["sets"]]
        print(f"OOD AUROC, {m}, Fashion-MNIST test (n = {r['n']}) against each set:\n")
        table(["OOD set"] + scores, rows)

    if cmds:
        print("Commands and wall times (docs/results/commands.log):\n")
        for k, (s, c) in cmds.items():
            print(f"- `{c}` ({s} s)")


if __name__ == "__main__":
    main()
