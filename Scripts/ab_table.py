#!/usr/bin/env python3
"""Ratios of an A/B run (Scripts/ab_bench.sh): per case and thread count,
old best median / new best median over the alternating rounds, the same for
the fastest single repetition (less sensitive to other jobs' load), and the
spread of each side (worst/best median over its rounds)."""
import json, sys

directory, rounds = sys.argv[1], int(sys.argv[2])
medians = {}  # (name, threads) -> {"old": [...], "new": [...]}
minimums = {}  # the same for each run's fastest repetition
for side in ("old", "new"):
    for r in range(1, rounds + 1):
        with open(f"{directory}/{side}-{r}.json") as f:
            for case in json.load(f)["cases"]:
                key = (case["name"], case["threads"])
                medians.setdefault(key, {"old": [], "new": []})[side].append(case["fast"]["median_s"])
                minimums.setdefault(key, {"old": [], "new": []})[side].append(case["fast"]["min_s"])

print("| case | threads | old best median | new best median | old/new (medians) | old/new (minima) | old spread | new spread |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
ratios = []
for (name, threads), m in sorted(medians.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    if not m["old"] or not m["new"]:
        continue
    old, new = min(m["old"]), min(m["new"])
    ratios.append(old / new)
    lo = minimums[(name, threads)]
    print(f"| {name} | {threads} | {old * 1e6:.1f} µs | {new * 1e6:.1f} µs | {old / new:.3f} "
          f"| {min(lo['old']) / min(lo['new']):.3f} | {max(m['old']) / old:.2f} | {max(m['new']) / new:.2f} |")
if ratios:
    ratios.sort()
    print(f"\n{len(ratios)} cases: median old/new {ratios[len(ratios) // 2]:.3f}, "
          f"min {ratios[0]:.3f}, max {ratios[-1]:.3f}")
