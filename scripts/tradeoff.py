#!/usr/bin/env python3
"""Clean accuracy against AutoAttack robust accuracy for every JEM measured by
scripts/default_jem_targets.sh: a Markdown table and an SVG scatter with the default-JEM targets
(≥ 90 % clean, ≥ 60 % robust) drawn in.

Usage: python3 scripts/tradeoff.py [DIR]   (default docs/results/targets; reads DIR/*/summary.json,
writes DIR/tradeoff.md and DIR/tradeoff.svg)
"""
import glob
import json
import os
import sys

d = sys.argv[1] if len(sys.argv) > 1 else "docs/results/targets"
runs = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(d, "*", "summary.json")))]
if not runs:
    sys.exit(f"tradeoff.py: no {d}/*/summary.json (run scripts/default_jem_targets.sh first)")

lines = ["| model | clean (full test) | AutoAttack L∞ 8/255 | n | defended clean cost | targets met |",
         "|---|---:|---:|---:|---:|---|"]
for r in runs:
    lines.append(f"| {r['model']} | {100 * r['clean_accuracy']:.2f} % | {100 * r['autoattack_accuracy']:.2f} % | {r['autoattack_n']} "
                 f"| {r['defense_clean_cost_points']:.2f} points (n = {r['defense_n']}) | {'all' if r['all_met'] else 'no'} |")
table = "\n".join(lines) + "\n"

# The scatter: x clean accuracy, y robust accuracy, in percent.
W, H, L, R, T, B = 560, 400, 60, 20, 20, 50
xs = [100 * r["clean_accuracy"] for r in runs] + [90]
ys = [100 * r["autoattack_accuracy"] for r in runs] + [60]
x0, x1 = min(xs) - 2, max(xs) + 2
y0, y1 = max(0, min(ys) - 5), min(100, max(ys) + 5)
px = lambda x: L + (x - x0) / (x1 - x0) * (W - L - R)
py = lambda y: H - B - (y - y0) / (y1 - y0) * (H - T - B)
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       f'<rect width="{W}" height="{H}" fill="white"/>',
       f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="black"/>',
       f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="black"/>',
       f'<text x="{(L + W - R) / 2}" y="{H - 12}" text-anchor="middle">clean accuracy, full test split (%)</text>',
       f'<text x="14" y="{(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 14 {(T + H - B) / 2})">AutoAttack L∞ 8/255 (%)</text>']
for v in range(int(x0) + 1, int(x1) + 1):
    if v % 2 == 0:
        svg.append(f'<text x="{px(v):.1f}" y="{H - B + 16}" text-anchor="middle">{v}</text>')
for v in range(int(y0) + 1, int(y1) + 1):
    if v % 10 == 0:
        svg.append(f'<text x="{L - 6}" y="{py(v) + 4:.1f}" text-anchor="end">{v}</text>')
# The target region: clean ≥ 90 and robust ≥ 60.
svg.append(f'<rect x="{px(90):.1f}" y="{T}" width="{W - R - px(90):.1f}" height="{py(60) - T:.1f}" fill="#2a9d8f" fill-opacity="0.12" '
           f'stroke="#2a9d8f" stroke-dasharray="4 3"/>')
svg.append(f'<text x="{W - R - 4}" y="{T + 14}" text-anchor="end" fill="#2a9d8f">targets</text>')
for r in runs:
    x, y = px(100 * r["clean_accuracy"]), py(100 * r["autoattack_accuracy"])
    svg.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="#264653"/>')
    svg.append(f'<text x="{x + 7:.1f}" y="{y - 6:.1f}">{r["model"]}</text>')
svg.append("</svg>")

for name, text in [("tradeoff.md", table), ("tradeoff.svg", "\n".join(svg) + "\n")]:
    tmp = os.path.join(d, name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, os.path.join(d, name))
print(table, end="")
