#!/usr/bin/env python3
"""The README's recipe table from Scripts/compare_recipes.sh's CSV (standard library only).

    python3 Scripts/recipe_table.py experiments/recipes.csv

Mean and sample standard deviation per recipe; the first recipe is the plain
one. Verdict rule: a recipe is "better" (or "worse") than the plain one when
its mean differs by more than the sum of the two standard deviations, else
"within the spread". The highest mean is in bold.
"""
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
recipes, seeds = {}, []
for r in rows:
    recipes.setdefault(r["recipe"], []).append(float(r["test_accuracy"]))
    if r["seed"] not in seeds:
        seeds.append(r["seed"])
plain = recipes[next(iter(recipes))]
pm, ps = statistics.mean(plain), statistics.stdev(plain)
print("| recipe | " + " | ".join(f"seed {seed}" for seed in seeds) + " | mean ± std | vs plain |")
print("|---|" + "---:|" * len(seeds) + "---:|---|")
best = max(recipes, key=lambda k: statistics.mean(recipes[k]))
for name, values in recipes.items():
    m, s = statistics.mean(values), statistics.stdev(values)
    if values is plain: verdict = "—"
    else:
        d = m - pm
        verdict = f"{d:+.2f}: " + ("better" if d > s + ps else "worse" if -d > s + ps else "within the spread")
    mark = "**" if name == best else ""
    print(f"| {mark}{name}{mark} | " + " | ".join(f"{v:.2f}%" for v in values) + f" | {m:.2f} ± {s:.2f}% | {verdict} |")
