#!/usr/bin/env python3
"""bnkbench's convolution cases (Benchmarks/bnkbench/ConvolutionCases.swift) in PyTorch,
single thread, side by side with BatchNormKit.

    python3 Scripts/bench_conv_torch.py [--swift-json bench-results/bench-native.json]

The same names and shapes as bnkbench (the CNN of Scripts/train_cnn_torch.py at batch 128):
  conv.forward  (128, C, H, W)→C' k3   conv(x) under torch.no_grad() (oneDNN on CPU)
  conv.backward (128, C, H, W)→C' k3   torch.autograd.grad(y, (x, weight, bias), dy) on one
                                       recorded forward: dx, dW, db (BatchNormKit's backward computes all three)
  cnn.step N=128                       zero_grad; CrossEntropyLoss(model(x), labels).backward(); SGD.step()
  cnn.inference N=128                  model.eval(); torch.inference_mode(): model(x)
  cnn.inference-folded N=128           the same network without BatchNorm (what the folded CNN computes)

Writes bench-results/bench-conv-torch.json; with the Swift JSON present prints the ratio
PyTorch time / BatchNormKit time (> 1: BatchNormKit faster). Figures mean something only on
a quiet machine (nothing else running), measured with both sides in one session.
"""
import argparse
import json
import os
import platform
import sys
import time

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_torch import compare, fmt_time, measure  # noqa: E402  (the seed bench's timing and side-by-side table)
from train_cnn_torch import CNN  # noqa: E402

BATCH = 128
IMAGE = 28


def cases(args):
    rows = []
    torch.manual_seed(0)

    def add(name, group, fn):
        if args.filter and args.filter not in name:
            return
        median, best, reps = measure(fn, min_time=args.min_time)
        rows.append({"name": name, "group": group, "median_s": median, "min_s": best, "reps": reps})
        print(f"  {name:<40} {fmt_time(median):>11}  (min {fmt_time(best)}, {reps} runs)", flush=True)

    model = CNN()
    side = IMAGE
    for conv in [m for m in model.features if isinstance(m, nn.Conv2d)]:
        label = f"({BATCH}, {conv.in_channels}, {side}, {side})→{conv.out_channels} k{conv.kernel_size[0]}"
        x = torch.randn(BATCH, conv.in_channels, side, side)
        with torch.no_grad():
            add(f"conv.forward {label}", "conv", lambda conv=conv, x=x: conv(x))
        xg = x.clone().requires_grad_(True)
        y = conv(xg)
        dy = torch.randn_like(y)
        add(f"conv.backward {label}", "conv",
            lambda conv=conv, xg=xg, y=y, dy=dy: torch.autograd.grad(y, (xg, conv.weight, conv.bias), dy, retain_graph=True))
        side = (side - conv.kernel_size[0] + 1) // 2

    x = torch.randn(BATCH, 1, IMAGE, IMAGE)
    labels = torch.randint(0, 10, (BATCH,))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    model.train()

    def step():
        optimizer.zero_grad(set_to_none=True)
        criterion(model(x), labels).backward()
        optimizer.step()
    add(f"cnn.step N={BATCH}", "cnn", step)

    model.eval()
    folded = CNN(batch_norm=False).eval()
    with torch.inference_mode():
        add(f"cnn.inference N={BATCH}", "cnn", lambda: model(x))
        add(f"cnn.inference-folded N={BATCH}", "cnn", lambda: folded(x))
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--swift-json", default="bench-results/bench-native.json")
    p.add_argument("--out", default="bench-results/bench-conv-torch.json")
    p.add_argument("--filter", default="")
    p.add_argument("--min-time", type=float, default=0.5)
    args = p.parse_args()
    torch.set_num_threads(1)
    print(f"PyTorch {torch.__version__}, 1 thread, {platform.processor() or platform.machine()}, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}")
    rows = cases(args)
    compare(rows, args.swift_json)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"framework": "pytorch", "version": torch.__version__, "threads": 1,
                   "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "cases": rows}, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
