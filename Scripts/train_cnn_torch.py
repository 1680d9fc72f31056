#!/usr/bin/env python3
"""BatchNormKit's CNN recipe in PyTorch, for the side-by-side accuracy in README's
"Convolutions" section (`bnkit train --model cnn` is the Swift side).

    python3 Scripts/train_cnn_torch.py --seeds 0 1 2 --epochs 5 --lr 0.05 --milestones 4 --csv cnn-torch.csv
    python3 Scripts/train_cnn_torch.py --evaluate cnn.safetensors   # a `bnkit train --model cnn` checkpoint

The network (BatchNormKit's `CNN`, the same state_dict names):

    features = Sequential(Conv2d(1, 32, 3), BatchNorm2d(32), ReLU(), MaxPool2d(2),
                          Conv2d(32, 64, 3), BatchNorm2d(64), ReLU(), MaxPool2d(2), Flatten())
    classifier = Sequential(Linear(1600, 128), BatchNorm1d(128), ReLU(), Linear(128, 10))

The recipe (the same defaults as `bnkit train --model cnn`): inputs standardized
with the training split's mean and std (one value for all pixels, as
`bnkit train --input-norm standardize`), SGD momentum 0.9 weight decay 5e-4,
lr 0.05 multiplied by --gamma when each --milestones epoch starts (bnkit's
--lr-milestones), batch 128, shuffled every epoch (drop_last=False), test
accuracy in eval mode after the last epoch. One thread (torch.set_num_threads(1)).

--evaluate FILE loads a BatchNormKit checkpoint into this module with
load_state_dict(strict=True) (the architecture from its metadata), applies the
input standardization it records and prints its test accuracy.
"""
import argparse
import csv
import gzip
import os
import sys
import time

import torch
import torch.nn as nn

FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


class CNN(nn.Module):
    def __init__(self, channels=(32, 64), hidden=128, classes=10, image=28, kernel=3, batch_norm=True):
        super().__init__()
        blocks, width, side = [], 1, image
        for out in channels:
            blocks += [nn.Conv2d(width, out, kernel)] + ([nn.BatchNorm2d(out)] if batch_norm else []) + [nn.ReLU(), nn.MaxPool2d(2)]
            width, side = out, (side - kernel + 1) // 2
        self.features = nn.Sequential(*blocks, nn.Flatten())
        self.classifier = nn.Sequential(nn.Linear(width * side * side, hidden),
                                        *([nn.BatchNorm1d(hidden)] if batch_norm else []), nn.ReLU(),
                                        nn.Linear(hidden, classes))

    def forward(self, x):
        return self.classifier(self.features(x))


def load_split(directory, prefix):
    with gzip.open(os.path.join(directory, f"{prefix}-images-idx3-ubyte.gz")) as f:
        raw = f.read()
    x = torch.frombuffer(bytearray(raw[16:]), dtype=torch.uint8).reshape(-1, 1, 28, 28).float() / 255
    with gzip.open(os.path.join(directory, f"{prefix}-labels-idx1-ubyte.gz")) as f:
        y = torch.frombuffer(bytearray(f.read()[8:]), dtype=torch.uint8).long()
    return x, y


def evaluate(model, x, y, batch=1000):
    model.eval()
    correct, loss = 0, 0.0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            logits = model(x[i:i + batch])
            loss += nn.functional.cross_entropy(logits, y[i:i + batch], reduction="sum").item()
            correct += (logits.argmax(1) == y[i:i + batch]).sum().item()
    return correct / len(x), loss / len(x)


def run(seed, args, train, test):
    torch.manual_seed(seed)
    model = CNN()
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    # bnkit's --lr-milestones E: lr × gamma when epoch E starts, i.e. MultiStepLR milestone E − 1 stepped per epoch
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[m - 1 for m in args.milestones], gamma=args.gamma)
    criterion = nn.CrossEntropyLoss()
    (xtr, ytr), (xte, yte) = train, test
    history = []
    for epoch in range(1, args.epochs + 1):
        model.train()
        start = time.perf_counter()
        order = torch.randperm(len(xtr))
        total, correct, seen = 0.0, 0, 0
        for i in range(0, len(xtr), args.batch_size):
            idx = order[i:i + args.batch_size]
            if len(idx) < 2:
                continue  # BatchNorm cannot train on one sample (BatchNormKit drops it too)
            xb, yb = xtr[idx], ytr[idx]
            logits = model(xb)
            loss = criterion(logits, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
            correct += (logits.argmax(1) == yb).sum().item()
            seen += len(idx)
        seconds = time.perf_counter() - start
        scheduler.step()
        accuracy, test_loss = evaluate(model, xte, yte)
        history.append((seed, epoch, total / seen, correct / seen, test_loss, accuracy, seconds))
        print(f"seed {seed} epoch {epoch}: train loss {total / seen:.4f} acc {100 * correct / seen:.2f}%  "
              f"test loss {test_loss:.4f} acc {100 * accuracy:.2f}%  ({seconds:.1f} s)", flush=True)
    return history


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=FASHION_MNIST)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--milestones", type=int, nargs="*", default=[], help="epochs (1-based) at whose start lr *= gamma")
    parser.add_argument("--gamma", type=float, default=0.1)
    parser.add_argument("--evaluate", metavar="FILE", help="test accuracy of a bnkit CNN checkpoint, then exit")
    parser.add_argument("--csv", help="write seed,epoch,train_loss,train_accuracy,test_loss,test_accuracy,seconds")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if not os.path.isdir(args.data):
        sys.exit(f"train_cnn_torch.py: no Fashion-MNIST at {args.data}")
    xtr, ytr = load_split(args.data, "train")
    xte, yte = load_split(args.data, "t10k")
    if args.evaluate:
        from safetensors import safe_open
        from safetensors.torch import load_file
        with safe_open(args.evaluate, "pt") as handle:
            meta = handle.metadata() or {}
        model = CNN(channels=tuple(int(c) for c in meta.get("channels", "32,64").split(",")),
                    hidden=int(meta.get("hidden_size", 128)), classes=int(meta.get("classes", 10)),
                    image=int(meta.get("image_size", 28)), kernel=int(meta.get("kernel_size", 3)))
        model.load_state_dict(load_file(args.evaluate), strict=True)
        mean, std = float(meta.get("input_mean", 0.0)), float(meta.get("input_std", 1.0))
        accuracy, loss = evaluate(model, (xte - mean) / std, yte)
        print(f"{args.evaluate}: test accuracy {100 * accuracy:.2f}%, loss {loss:.4f} (PyTorch, strict load)")
        return
    mean, std = xtr.mean().item(), xtr.std(unbiased=False).item()
    xtr, xte = (xtr - mean) / std, (xte - mean) / std
    print(f"torch {torch.__version__}, 1 thread; input standardized with mean {mean:.4f} std {std:.4f}; "
          f"SGD lr {args.lr} momentum {args.momentum} weight decay {args.weight_decay}, lr x{args.gamma} at epochs {args.milestones}, batch {args.batch_size}, "
          f"{args.epochs} epochs", flush=True)
    rows = []
    for seed in args.seeds:
        rows += run(seed, args, (xtr, ytr), (xte, yte))
    finals = [row[5] for row in rows if row[1] == args.epochs]
    mean_acc = sum(finals) / len(finals)
    spread = (max(finals) - min(finals)) * 100
    print(f"final test accuracy over seeds {args.seeds}: mean {100 * mean_acc:.2f}% "
          f"(min {100 * min(finals):.2f}%, max {100 * max(finals):.2f}%, spread {spread:.2f} points)")
    if args.csv:
        with open(args.csv, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["seed", "epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "seconds"])
            writer.writerows(rows)


if __name__ == "__main__":
    main()
