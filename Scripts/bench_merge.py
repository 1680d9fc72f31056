#!/usr/bin/env python3
"""Merge bench JSON files of repeated runs: each case keeps the record of the run
where its median was lowest (its own bound and % of bound come with it); its
paired measurements (paired_percent_of_limit, paired_percent_of_pattern) are
every run's, pooled.

usage: bench_merge.py OUT IN [IN ...]
Works for bnkbench JSON (cases[].fast.median_s) and bench_torch.py JSON
(cases[].median_s); a case is (name, threads). The first input's header is kept,
with "merged_from" listing the inputs' dates. Standard library only.
"""
import json
import sys


PAIRED = ("paired_percent_of_limit", "paired_percent_of_pattern")


def median(case):
    return case["fast"]["median_s"] if "fast" in case else case["median_s"]


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    out, inputs = sys.argv[1], sys.argv[2:]
    docs = [json.load(open(path)) for path in inputs]
    best, order, pooled = {}, [], {}
    for doc in docs:
        for case in doc["cases"]:
            key = (case["name"], case.get("threads", 1))
            for field in PAIRED:
                pooled.setdefault((key, field), []).extend(case.get(field, []))
            if key not in best:
                order.append(key)
                best[key] = case
            elif median(case) < median(best[key]):
                best[key] = case
    merged = dict(docs[0])
    merged["cases"] = [best[k] for k in order]
    for case, key in zip(merged["cases"], order):
        for field in PAIRED:
            if pooled[(key, field)]:
                case[field] = pooled[(key, field)]
    merged["merged_from"] = [d.get("date", "") for d in docs]
    with open(out, "w") as handle:
        json.dump(merged, handle, indent=1)
    print(f"bench_merge.py: {len(order)} cases, best median of {len(docs)} runs each, to {out}")


if __name__ == "__main__":
    main()
