#!/usr/bin/env python3
"""The accuracy/robustness trade-off of the JEMs measured for the default-JEM targets, as Markdown
tables and SVG scatters with the targets (≥ 90 % clean, ≥ 60 % robust) drawn in:

- tradeoff.md/.svg: clean accuracy against AutoAttack (standard, L∞ 8/255) for every model measured
  by scripts/default_jem_targets.sh (DIR/*/summary.json);
- tradeoff_pgd10.md/.svg: clean accuracy against PGD-L∞ 8/255 (10 steps, first 1 000 test images)
  for every epoch measured by scripts/epoch_tradeoff.sh (DIR/jem-epochs/eN_{eval,pgd}.json, labelled
  "epoch N") and for the bundled and experimental models (docs/results/{eval,pgd_linf}_M.json and
  runs/jem-finetune/{eval,pgd_linf}.json).

Usage: python3 scripts/tradeoff.py [DIR]   (default docs/results/targets; writes into DIR)
"""
import glob
import json
import os
import re
import sys

d = sys.argv[1] if len(sys.argv) > 1 else "docs/results/targets"
root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def write(name, text):
    tmp = os.path.join(d, name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, os.path.join(d, name))


def scatter(points, ylabel, target_y=60, target_x=90):
    """points: (label, clean %, robust %, colour)."""
    W, H, L, R, T, B = 600, 420, 60, 20, 20, 50
    xs = [p[1] for p in points] + [target_x]
    ys = [p[2] for p in points] + [target_y]
    x0, x1 = min(xs) - 2, max(xs) + 2
    y0, y1 = max(0, min(ys) - 5), min(100, max(ys) + 5)
    px = lambda x: L + (x - x0) / (x1 - x0) * (W - L - R)
    py = lambda y: H - B - (y - y0) / (y1 - y0) * (H - T - B)
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="black"/>',
           f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="black"/>',
           f'<text x="{(L + W - R) / 2}" y="{H - 12}" text-anchor="middle">clean accuracy, full test split (%)</text>',
           f'<text x="14" y="{(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 14 {(T + H - B) / 2})">{ylabel}</text>']
    for v in range(int(x0) + 1, int(x1) + 1):
        if v % 2 == 0:
            svg.append(f'<text x="{px(v):.1f}" y="{H - B + 16}" text-anchor="middle">{v}</text>')
    for v in range(int(y0) + 1, int(y1) + 1):
        if v % 10 == 0:
            svg.append(f'<text x="{L - 6}" y="{py(v) + 4:.1f}" text-anchor="end">{v}</text>')
    svg.append(f'<rect x="{px(target_x):.1f}" y="{T}" width="{W - R - px(target_x):.1f}" height="{py(target_y) - T:.1f}" fill="#2a9d8f" '
               f'fill-opacity="0.12" stroke="#2a9d8f" stroke-dasharray="4 3"/>')
    svg.append(f'<text x="{W - R - 4}" y="{T + 14}" text-anchor="end" fill="#2a9d8f">targets</text>')
    for label, x, y, colour in points:
        svg.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="4" fill="{colour}"/>')
        svg.append(f'<text x="{px(x) + 7:.1f}" y="{py(y) - 6:.1f}">{label}</text>')
    svg.append("</svg>")
    return "\n".join(svg) + "\n"


def load(p):
    return json.load(open(p)) if os.path.exists(p) else None


# 1. AutoAttack, from default_jem_targets.sh.
runs = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(d, "*", "summary.json")))]
if runs:
    lines = ["| model | clean (full test) | AutoAttack L∞ 8/255 | n | defended clean cost | targets met |",
             "|---|---:|---:|---:|---:|---|"]
    for r in runs:
        lines.append(f"| {r['model']} | {100 * r['clean_accuracy']:.2f} % | {100 * r['autoattack_accuracy']:.2f} % | {r['autoattack_n']} "
                     f"| {r['defense_clean_cost_points']:.2f} points (n = {r['defense_n']}) | {'all' if r['all_met'] else 'no'} |")
    write("tradeoff.md", "\n".join(lines) + "\n")
    write("tradeoff.svg", scatter([(r["model"], 100 * r["clean_accuracy"], 100 * r["autoattack_accuracy"], "#264653") for r in runs],
                                  "AutoAttack L∞ 8/255 (%)"))
    print("\n".join(lines))

# 2. PGD-10 over the epochs of the K = 10 run and over the other models.
rows = []  # (label, clean, robust, colour, source)
for p in sorted(glob.glob(os.path.join(d, "jem-epochs", "e*_eval.json")), key=lambda p: int(re.search(r"e(\d+)_eval", p).group(1))):
    e = int(re.search(r"e(\d+)_eval", p).group(1))
    pg = load(os.path.join(d, "jem-epochs", f"e{e}_pgd.json"))
    if pg:
        rows.append((f"epoch {e}", 100 * json.load(open(p))["accuracy"], 100 * pg["robust_accuracy"], "#e76f51", "K = 10 run, 12 epochs"))
res = os.path.join(root, "docs", "results")
for m, what in [("jem", "default JEM"), ("jem-k5", "K = 5, 9 epochs"), ("jem-k10", "K = 10, 6 epochs"), ("baseline", "classifier")]:
    ev, pg = load(os.path.join(res, f"eval_{m}.json")), load(os.path.join(res, f"pgd_linf_{m}.json"))
    if ev and pg:
        rows.append((m, 100 * ev["accuracy"], 100 * pg["robust_accuracy"], "#264653", what))
ev, pg = load(os.path.join(root, "runs", "jem-finetune", "eval.json")), load(os.path.join(root, "runs", "jem-finetune", "pgd_linf.json"))
if ev and pg:
    rows.append(("jem-finetune", 100 * ev["accuracy"], 100 * pg["robust_accuracy"], "#264653", "from the baseline, 2 epochs"))
if not rows and not runs:
    sys.exit(f"tradeoff.py: nothing to plot under {d} (run scripts/default_jem_targets.sh or scripts/epoch_tradeoff.sh first)")
if rows:
    lines = ["| model | what | clean (full test split) | PGD-L∞ 8/255, 10 steps (first 1 000) |", "|---|---|---:|---:|"]
    lines += [f"| {r[0]} | {r[4]} | {r[1]:.2f} % | {r[2]:.2f} % |" for r in rows]
    write("tradeoff_pgd10.md", "\n".join(lines) + "\n")
    # The default JEM is one of the epochs: one point, labelled with both names.
    pts, jem = [], next((r for r in rows if r[0] == "jem"), None)
    for r in rows:
        if r[0] == "jem-finetune" or (r is jem and any(q is not jem and q[1:3] == jem[1:3] for q in rows)):
            continue
        pts.append((f"{r[0]} (jem)" if jem and r is not jem and r[1:3] == jem[1:3] else r[0],) + r[1:4])
    # PGD-10 overestimates AutoAttack: the stand-in target for it is 63 %.
    write("tradeoff_pgd10.svg", scatter(pts, "PGD-L∞ 8/255, 10 steps (%)", target_y=63))
    print("\n".join(lines))
