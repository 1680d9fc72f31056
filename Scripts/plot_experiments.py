#!/usr/bin/env python3
"""Plots `bnkit hessian` output: the loss Hessian's largest eigenvalues and the
test accuracy after every epoch, with and without BatchNorm.

usage: plot_experiments.py [CSV] [PNG]   (defaults: experiments/hessian.csv, experiments/hessian.png)

Needs matplotlib (the Makefile's `experiments` target installs it with pip
when it is missing); reads nothing else.
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402


def main():
    source = sys.argv[1] if len(sys.argv) > 1 else "experiments/hessian.csv"
    target = sys.argv[2] if len(sys.argv) > 2 else "experiments/hessian.png"
    with open(source, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        sys.exit(f"{source}: no measurements")
    lambdas = sorted((key for key in rows[0] if key.startswith("lambda_")), key=lambda k: int(k.split("_")[1]))

    fig, (curvature, accuracy) = plt.subplots(1, 2, figsize=(11, 4.2))
    for norm, color in (("batchnorm", "tab:blue"), ("none", "tab:orange")):
        runs = [r for r in rows if r["norm"] == norm]
        if not runs:
            continue
        epochs = [int(r["epoch"]) for r in runs]
        label = "BatchNorm" if norm == "batchnorm" else "no BatchNorm"
        for index, key in enumerate(lambdas):
            curvature.plot(epochs, [float(r[key]) for r in runs], color=color, marker="o" if index == 0 else None,
                           alpha=1.0 if index == 0 else 0.35, label=f"{label}, λ1" if index == 0 else None)
        accuracy.plot(epochs, [100 * float(r["test_accuracy"]) for r in runs], color=color, marker="o", label=label)

    curvature.set_yscale("log")
    curvature.set_xlabel("epoch")
    curvature.set_ylabel("Hessian eigenvalue (training loss, fixed batch)")
    curvature.set_title(f"largest eigenvalues (λ1 bold, λ2…λ{len(lambdas)} faint)")
    curvature.legend()
    accuracy.set_xlabel("epoch")
    accuracy.set_ylabel("test accuracy (%)")
    accuracy.set_title("Fashion-MNIST test accuracy")
    accuracy.legend()
    fig.tight_layout()
    fig.savefig(target, dpi=120)
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
