#!/usr/bin/env python3
"""The Benchmarks/README.md table, from the JSON files one measurement wrote.

usage: bench_table.py [NATIVE] [TORCH] [PORTABLE] [PAIRS]
  defaults: bench-results/bench-native.json bench-results/bench-torch.json
            bench-results/bench-portable.json (missing files leave their columns empty)
            bench-results/pairs (make bench-report's runs: native-R.json, torch-R.json)

Columns: PyTorch 1-thread median; BatchNormKit native 1-thread median (rate);
ratio PyTorch / BatchNormKit with ✓/✗ against the issue's target
(bench_targets.py); native 1-thread % of the measured bound (✓/✗ against
BOUND_TARGET where it applies, on the median of the paired measurements where
the bench made them: see bound_percent); PyTorch and BatchNormKit at 2 threads and their
ratio; BatchNormKit's 2-thread ÷ 1-thread time; portable 1-thread median; the
naive reference's median (~ = measured on the first rows and scaled). After the
table: each epoch as a multiple of its floor (its GEMM FLOPs at the measured
FMA peak per thread) and the cases slower at 2 threads than at 1; with the
pair runs, every targeted ratio per pair (PyTorch median / BatchNormKit median
of the same pair, so a verdict the best medians give can be read against its
spread) and BatchNormKit's spread (worst / best median over the runs).
Standard library only.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_targets import BOUND_TARGET, bound_target_applies, target_ratio  # noqa: E402 (one list of targets, shared with bench_torch.py)


def load(path):
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        return json.load(handle)


def fmt_time(seconds):
    if seconds is None:
        return ""
    for scale, unit in ((1, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if seconds >= scale:
            value = seconds / scale
            return f"{value:.2f} {unit}" if value < 100 else f"{value:.1f} {unit}"
    return f"{seconds * 1e9:.0f} ns"


def fmt_rate(case):
    rate, unit = case.get("fast_rate"), case.get("unit", "")
    if rate is None:
        return ""
    if unit.startswith("k"):
        return f"{rate:.1f} k smp/s" if rate < 1000 else f"{rate:.0f} k smp/s"
    return f"{rate:.1f} {unit}"


def by_threads(doc, threads):
    if not doc:
        return {}
    return {c["name"]: c for c in doc["cases"] if c.get("threads", 1) == threads}


def median(values):
    s = sorted(values)
    return s[len(s) // 2] if len(s) % 2 else 0.5 * (s[len(s) // 2 - 1] + s[len(s) // 2])


def bound_percent(case):
    """The % of bound a verdict uses: the median of the paired measurements
    (case and bound back to back) where the bench made them, else the case's
    best median against the best bound of the run."""
    paired = case.get("paired_percent_of_limit")
    return median(paired) if paired else case.get("percent_of_limit")


def percent_text(case):
    """'% of bound (bound kind: rate)', with ✓/✗ where the bound target applies;
    then, where measured, the paired median (range) the verdict uses and the
    case against its memory pattern."""
    if case.get("percent_of_limit") is None:
        return ""
    limit = case.get("limit") or {}
    rate, unit = limit.get("rate"), case.get("unit", "")
    shown = (f"{rate:.1f} {unit}" if rate is not None and not unit.startswith("k") else
             f"{rate:.1f} k smp/s" if rate is not None else "")
    mark = ""
    if bound_target_applies(case):
        mark = " ✓" if bound_percent(case) >= BOUND_TARGET else " ✗"
    paired, pattern = case.get("paired_percent_of_limit"), case.get("paired_percent_of_pattern")
    if not paired:
        return f"{case['percent_of_limit']:.0f}%{mark} ({limit.get('kind', '')}: {shown})"
    text = (f"paired {median(paired):.0f}%{mark} ({min(paired):.0f}–{max(paired):.0f}, {len(paired)} pairs); "
            f"best {case['percent_of_limit']:.0f}% ({limit.get('kind', '')}: {shown})")
    if pattern:
        text += f"; pattern {median(pattern):.0f}%"
    return text


def ratio_text(torch_case, case, goal):
    if not torch_case or not case:
        return ""
    value = torch_case["median_s"] / case["fast"]["median_s"]
    return f"{value:.2f}×" + ((" ✓" if value >= goal else " ✗") if goal else "")


def main():
    native = load(sys.argv[1] if len(sys.argv) > 1 else "bench-results/bench-native.json")
    torch = load(sys.argv[2] if len(sys.argv) > 2 else "bench-results/bench-torch.json")
    portable = load(sys.argv[3] if len(sys.argv) > 3 else "bench-results/bench-portable.json")
    if not native:
        sys.exit("bench_table.py: no native JSON")
    one, two, port = by_threads(native, 1), by_threads(native, 2), by_threads(portable, 1)
    torch_one, torch_two = by_threads(torch, 1), by_threads(torch, 2)
    print("| case | PyTorch 1T | BNKit native 1T | ratio 1T (target) | native 1T % of bound (bound) "
          "| PyTorch 2T | BNKit native 2T (% bound) | ratio 2T (target) | 2T ÷ 1T time | BNKit portable 1T | naive reference |")
    print("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    slower = []
    for name, case in one.items():
        t1, t2, second = torch_one.get(name), torch_two.get(name), two.get(name)
        goal1, goal2 = target_ratio(name, 1), target_ratio(name, 2)
        mine = case["fast"]["median_s"]
        second_text, split = "", ""
        if second:
            second_text = fmt_time(second["fast"]["median_s"])
            if second.get("percent_of_limit") is not None:
                second_text += f" ({second['percent_of_limit']:.0f}%)"
            quotient = second["fast"]["median_s"] / mine
            split = f"{quotient:.2f}"
            if quotient > 1:
                slower.append((name, quotient))
        p = port.get(name)
        reference = case.get("reference")
        ref_text = ""
        if reference:
            ref_text = ("~" if case.get("reference_estimated") else "") + fmt_time(reference["median_s"])
        r1 = ratio_text(t1, case, goal1) + (f" ({goal1:.1f}×)" if goal1 else "")
        r2 = ratio_text(t2, second, goal2) + (f" ({goal2:.1f}×)" if goal2 and t2 and second else "")
        print(f"| {name} | {fmt_time(t1['median_s']) if t1 else ''} | {fmt_time(mine)} ({fmt_rate(case)}) | {r1} "
              f"| {percent_text(case)} | {fmt_time(t2['median_s']) if t2 else ''} | {second_text} | {r2} | {split} "
              f"| {fmt_time(p['fast']['median_s']) if p else ''} | {ref_text} |")
    print()
    # the epoch against its floor: the GEMM FLOPs of its steps at the measured FMA peak (one core per thread)
    peak = native.get("fma_peak_GFLOPs") or 0
    for threads, cases in ((1, one), (2, two)):
        for name, case in cases.items():
            flops = (case.get("limit") or {}).get("gemm_flops")
            if name.startswith("epoch") and flops and peak > 0:
                floor = flops / (peak * 1e9 * threads)
                print(f"- {name}, {threads} thread{'s' if threads > 1 else ''}: {fmt_time(case['fast']['median_s'])}, "
                      f"{case['fast']['median_s'] / floor:.2f}× its floor of {fmt_time(floor)} "
                      f"({flops / 1e9:.1f} GFLOP of GEMMs at {threads} × {peak:.1f} GFLOP/s FMA peak)")
    if two:
        if slower:
            print("- slower at 2 threads than at 1 (median, this run): "
                  + ", ".join(f"{name} {q:.2f}×" for name, q in slower))
        else:
            print("- no case is slower at 2 threads than at 1 (medians, this run)")
    pair_report(sys.argv[4] if len(sys.argv) > 4 else "bench-results/pairs")


def pair_report(directory):
    """Per-pair ratios of every case with a target, and the runs' spread."""
    rounds = sorted(int(f[len("native-"):-len(".json")]) for f in os.listdir(directory)
                    if f.startswith("native-") and f.endswith(".json")) if os.path.isdir(directory) else []
    runs = [(load(f"{directory}/native-{r}.json"), load(f"{directory}/torch-{r}.json")) for r in rounds]
    runs = [(n, t) for n, t in runs if n and t]
    if len(runs) < 2:
        return
    medians = {}
    for n, _ in runs:
        for c in n["cases"]:
            medians.setdefault((c["name"], c.get("threads", 1)), []).append(c["fast"]["median_s"])
    spreads = sorted((max(v) / min(v), k) for k, v in medians.items() if len(v) == len(runs))
    if spreads:
        middle = spreads[len(spreads) // 2][0]
        worst, (name, threads) = spreads[-1]
        print(f"- BatchNormKit's spread over the {len(runs)} runs (worst / best median of a case): median {middle:.2f}, "
              f"largest {worst:.2f} ({name}, {threads}T)")
    print(f"- targeted ratios per pair (PyTorch / BatchNormKit median of the same pair, pairs 1–{len(runs)}):")
    for threads in (1, 2):
        for c in runs[0][0]["cases"]:
            name = c["name"]
            goal = target_ratio(name, threads)
            if c.get("threads", 1) != threads or not goal:
                continue
            ratios = []
            for n, t in runs:
                mine = by_threads(n, threads).get(name)
                theirs = by_threads(t, threads).get(name)
                if mine and theirs:
                    ratios.append(theirs["median_s"] / mine["fast"]["median_s"])
            if ratios:
                held = sum(r >= goal for r in ratios)
                print(f"  - {name}, {threads}T (target {goal:.1f}×): " + ", ".join(f"{r:.2f}" for r in ratios)
                      + f" — {held} of {len(ratios)} pairs ≥ target")


if __name__ == "__main__":
    main()
