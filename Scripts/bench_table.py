#!/usr/bin/env python3
"""The Benchmarks/README.md table, from the JSON files one measurement wrote.

usage: bench_table.py [NATIVE] [TORCH] [PORTABLE]
  defaults: bench-results/bench-native.json bench-results/bench-torch.json
            bench-results/bench-portable.json (missing files leave their columns empty)

Columns: PyTorch single-thread median; BatchNormKit native single-thread median
(rate); ratio PyTorch / BatchNormKit with ✓/✗ against the issue's target;
native 1-thread % of the measured bound (and the bound); native 2-thread median
(% of its bound); portable single-thread median; the naive reference's median
(~ = measured on the first rows and scaled). Standard library only.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_targets import target_ratio  # noqa: E402 (one list of targets, shared with bench_torch.py)


def load(path):
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        return json.load(handle)


def target(name):
    return target_ratio(name, 1)


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


def main():
    native = load(sys.argv[1] if len(sys.argv) > 1 else "bench-results/bench-native.json")
    torch = load(sys.argv[2] if len(sys.argv) > 2 else "bench-results/bench-torch.json")
    portable = load(sys.argv[3] if len(sys.argv) > 3 else "bench-results/bench-portable.json")
    if not native:
        sys.exit("bench_table.py: no native JSON")
    one, two, port = by_threads(native, 1), by_threads(native, 2), by_threads(portable, 1)
    torch_cases = {c["name"]: c for c in (torch or {}).get("cases", [])}
    print("| case | PyTorch 1T | BNKit native 1T | ratio | target | native 1T % of bound (bound) "
          "| BNKit native 2T (% bound) | BNKit portable 1T | naive reference |")
    print("|---|---:|---:|---:|---:|---|---:|---:|---:|")
    for name, case in one.items():
        t = torch_cases.get(name)
        mine = case["fast"]["median_s"]
        ratio, goal = "", target(name)
        if t:
            value = t["median_s"] / mine
            ratio = f"{value:.2f}×" + ((" ✓" if value >= goal else " ✗") if goal else "")
        limit = case.get("limit") or {}
        bound = ""
        if case.get("percent_of_limit") is not None:
            rate = limit.get("rate")
            unit = case.get("unit", "")
            shown = (f"{rate:.1f} {unit}" if rate is not None and not unit.startswith("k") else
                     f"{rate:.1f} k smp/s" if rate is not None else "")
            bound = f"{case['percent_of_limit']:.0f}% ({limit.get('kind', '')}: {shown})"
        second = two.get(name)
        second_text = ""
        if second:
            second_text = fmt_time(second["fast"]["median_s"])
            if second.get("percent_of_limit") is not None:
                second_text += f" ({second['percent_of_limit']:.0f}%)"
        p = port.get(name)
        reference = case.get("reference")
        ref_text = ""
        if reference:
            ref_text = ("~" if case.get("reference_estimated") else "") + fmt_time(reference["median_s"])
        print(f"| {name} | {fmt_time(t['median_s']) if t else ''} | {fmt_time(mine)} ({fmt_rate(case)}) | {ratio} "
              f"| {f'{goal:.1f}×' if goal else ''} | {bound} | {second_text} "
              f"| {fmt_time(p['fast']['median_s']) if p else ''} | {ref_text} |")


if __name__ == "__main__":
    main()
