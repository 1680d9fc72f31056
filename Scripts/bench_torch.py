#!/usr/bin/env python3
"""The bnkbench cases in PyTorch, at 1 and 2 threads, side by side with BatchNormKit.

Runs the same shapes as `bnkbench` (BatchNorm1d forward-train / forward-eval /
backward, Linear forward / backward of the seed network, the seed network's
training step and eval-mode inference), writes the medians to
bench-results/bench-torch.json and, when the Swift JSON exists
(bench-results/bench-native.json by default), prints both side by side with
the ratio torch_time / swift_time (> 1: BatchNormKit is faster) and the
issue's target for that case.

What is timed in PyTorch (the tensors are allocated once, outside the loop):
  bn.forward-train  bn(x) in train mode under torch.no_grad() (batch stats,
                    running-stat update, normalize: the pure kernel cost);
                    `--autograd-forward` times it with autograd recording instead
  bn.forward-eval   bn(x) in eval mode under torch.no_grad()
  bn.backward       torch.autograd.grad(y, (x, weight, bias), dy, retain_graph=True)
                    on one recorded train-mode forward: dx, dgamma, dbeta
  bn-relu.*         the same for relu(bn(x)), eager (PyTorch fuses the two only
                    under torch.compile): BatchNormKit's fused kernels
  linear.forward    lin(x) under torch.no_grad()
  linear.backward   torch.autograd.grad(y, (x, weight, bias), dy, retain_graph=True)
  step              zero_grad; CrossEntropyLoss(model(x), labels).backward(); SGD.step()
  inference         model.eval(); with torch.inference_mode(): model(x)
  inference-folded  the same without BatchNorm (Linear, ReLU, Linear, ReLU, Linear):
                    what BatchNormKit's folded network computes
  epoch             one epoch of the seed recipe (batch 128, SGD lr 0.1 momentum 0.9):
                    randperm, gather x[idx], forward, loss, zero_grad, backward,
                    step, loss.item() and the correct count per step — on the
                    Fashion-MNIST train split when /usr/share/datasets/fashion-mnist
                    exists (standardized, as `make train`), else synthetic data of
                    the same shape; one warm-up epoch, three timed
"""
import argparse
import gzip
import json
import os
import platform
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_targets import target_ratio  # noqa: E402 (the targets, shared with bench_table.py)

try:
    import torch
    import torch.nn as nn
except ImportError:  # the Makefile checks first; be explicit anyway
    print("bench_torch.py: PyTorch is not importable (pip install torch)", file=sys.stderr)
    sys.exit(2)

# The case shapes come from the bench itself (`bnkbench --list-shapes`), so
# they are listed once (Benchmarks/bnkbench/CaseSizes.swift).
BENCH = os.environ.get("BNKBENCH", ".build-native/release/bnkbench")
try:
    _SHAPES = json.loads(subprocess.run([BENCH, "--list-shapes"], check=True, capture_output=True, text=True).stdout)
except (OSError, subprocess.CalledProcessError, ValueError) as error:
    print(f"bench_torch.py: cannot read the case shapes from {BENCH} --list-shapes ({error}); "
          "build it first (make bench-native) or set BNKBENCH", file=sys.stderr)
    sys.exit(2)
BN_SHAPES = [tuple(s) for s in _SHAPES["batch_norm"]]
BN_RELU_SHAPES = [tuple(s) for s in _SHAPES.get("bn_relu", [])]
# (shape, groups): groups 1 on (N, C) is LayerNorm(C), otherwise GroupNorm(groups, C)
GN_SHAPES = [(tuple(g["shape"]), g["groups"]) for g in _SHAPES["group_norm"]]
LINEAR_SHAPES = [tuple(s) for s in _SHAPES["linear"]]
LINEAR_BATCH = _SHAPES["linear_batch"]
STEP_BATCHES = _SHAPES["step_batches"]
INFER_BATCHES = _SHAPES["inference_batches"]
EPOCH_BATCH = _SHAPES["epoch_batch"]
FASHION_MNIST = "/usr/share/datasets/fashion-mnist"

def shape_str(s):
    return "(" + ", ".join(str(d) for d in s) + ")"


def measure(fn, min_time=0.25, min_reps=7, max_reps=2000, warmup=3):
    """Median and min seconds of fn() over repeated runs after a warm-up."""
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < max_reps and (len(times) < min_reps or time.perf_counter() - start < min_time):
        t0 = time.perf_counter_ns()
        fn()
        times.append((time.perf_counter_ns() - t0) * 1e-9)
    return statistics.median(times), min(times), len(times)


def seed_network():
    return nn.Sequential(
        nn.Linear(784, 256), nn.BatchNorm1d(256), nn.ReLU(),
        nn.Linear(256, 64), nn.BatchNorm1d(64), nn.ReLU(),
        nn.Linear(64, 10))


def folded_network():
    return nn.Sequential(
        nn.Linear(784, 256), nn.ReLU(),
        nn.Linear(256, 64), nn.ReLU(),
        nn.Linear(64, 10))


_epoch_data = None


def epoch_data():
    """(X, y, description): the Fashion-MNIST train split, standardized, or synthetic."""
    global _epoch_data
    if _epoch_data is not None:
        return _epoch_data
    images = os.path.join(FASHION_MNIST, "train-images-idx3-ubyte.gz")
    labels = os.path.join(FASHION_MNIST, "train-labels-idx1-ubyte.gz")
    if os.path.exists(images) and os.path.exists(labels):
        with gzip.open(images) as f:
            raw = f.read()
        x = torch.frombuffer(bytearray(raw[16:]), dtype=torch.uint8).reshape(-1, 784).float() / 255
        with gzip.open(labels) as f:
            y = torch.frombuffer(bytearray(f.read()[8:]), dtype=torch.uint8).long()
        what = f"Fashion-MNIST train split ({FASHION_MNIST}), {len(y)} samples"
    else:
        g = torch.Generator().manual_seed(60000)
        x = torch.rand(60000, 784, generator=g)
        y = torch.randint(0, 10, (60000,), generator=g)
        what = f"synthetic 60000×784 (uniform [0, 1), random labels); {FASHION_MNIST} not found"
    x = (x - x.mean()) / x.std(unbiased=False)
    _epoch_data = (x.contiguous(), y, what + ", standardized")
    return _epoch_data


def cases(args):
    g = torch.Generator().manual_seed(0)
    out = []

    def add(name, group, fn, unit="s", per=None):
        if args.filter and args.filter not in name:
            return
        med, mn, reps = measure(fn, min_time=args.min_time)
        row = {"name": name, "group": group, "median_s": med, "min_s": mn, "reps": reps}
        if per:
            row["samples_per_s"] = per / med
        out.append(row)
        extra = f"  {per / med / 1e3:9.1f} k samples/s" if per else ""
        print(f"  {name:<34} median {med * 1e6:11.1f} µs   min {mn * 1e6:11.1f} µs  ({reps} runs){extra}", flush=True)

    def no_grad_forward(module, x):
        def run():
            with torch.no_grad():
                return module(x)
        return run

    def add_backward(name, group, module, x, dy, norm=None):
        """autograd.grad of one recorded forward of `module`: dx and the
        weight and bias of `norm` (default: the module itself). Returns the
        recorded input and the tensors differentiated for."""
        xg = x.clone().requires_grad_(True)
        y = module(xg)
        norm = norm or module
        params = (xg, norm.weight, norm.bias)
        add(name, group, lambda: torch.autograd.grad(y, params, dy, retain_graph=True))
        return xg, params

    for s in BN_SHAPES:
        c = s[1]
        x = torch.randn(*s, generator=g)
        dy = torch.randn(*s, generator=g)
        bn = nn.BatchNorm1d(c)
        bn.train()
        add(f"bn.forward-train {shape_str(s)}", "bn",
            (lambda: bn(x)) if args.autograd_forward else no_grad_forward(bn, x))
        xg, params = add_backward(f"bn.backward {shape_str(s)}", "bn", bn, x, dy)

        def fwd_bwd():
            yy = bn(xg)
            return torch.autograd.grad(yy, params, dy)
        add(f"bn.forward+backward {shape_str(s)}", "bn-extra", fwd_bwd)

        bn.eval()
        add(f"bn.forward-eval {shape_str(s)}", "bn", no_grad_forward(bn, x))

    for s in BN_RELU_SHAPES:
        c = s[1]
        x = torch.randn(*s, generator=g)
        dy = torch.randn(*s, generator=g)
        bn = nn.BatchNorm1d(c)
        bn.train()
        block = nn.Sequential(bn, nn.ReLU())
        add(f"bn-relu.forward-train {shape_str(s)}", "bn-relu", no_grad_forward(block, x))
        add_backward(f"bn-relu.backward {shape_str(s)}", "bn-relu", block, x, dy, norm=bn)

    for s, groups in GN_SHAPES:
        c = s[1]
        x = torch.randn(*s, generator=g)
        dy = torch.randn(*s, generator=g)
        layer = nn.LayerNorm(c) if groups == 1 and len(s) == 2 else nn.GroupNorm(groups, c)
        name = shape_str(s) + ("" if groups == 1 else f" in {groups} groups")
        add(f"gn.forward {name}", "gn", no_grad_forward(layer, x))
        add_backward(f"gn.backward {name}", "gn", layer, x, dy)

    for (i, o) in LINEAR_SHAPES:
        n = LINEAR_BATCH
        lin = nn.Linear(i, o)
        x = torch.randn(n, i, generator=g)
        dy = torch.randn(n, o, generator=g)
        add(f"linear.forward {i}→{o} N={n}", "linear", no_grad_forward(lin, x))
        add_backward(f"linear.backward {i}→{o} N={n}", "linear", lin, x, dy)

    for n in STEP_BATCHES:
        torch.manual_seed(0)
        model = seed_network()
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        loss_fn = nn.CrossEntropyLoss()
        x = torch.randn(n, 784, generator=g)
        labels = torch.randint(0, 10, (n,), generator=g)

        def step():
            opt.zero_grad()
            loss = loss_fn(model(x), labels)
            loss.backward()
            opt.step()
            return loss
        add(f"step N={n}", "step", step, per=n)

    for n in INFER_BATCHES:
        torch.manual_seed(0)
        model = seed_network()
        model.eval()
        x = torch.randn(n, 784, generator=g)

        def infer():
            with torch.inference_mode():
                return model(x)
        add(f"inference N={n}", "inference", infer, per=n)

        folded = folded_network()
        folded.eval()

        def infer_folded():
            with torch.inference_mode():
                return folded(x)
        add(f"inference-folded N={n}", "inference", infer_folded, per=n)

    name = "epoch N=60000"
    if not args.filter or args.filter in name:
        x_all, y_all, what = epoch_data()
        print(f"  epoch data: {what}")
        count = len(y_all)
        used = count - 1 if count % EPOCH_BATCH == 1 else count
        torch.manual_seed(0)
        model = seed_network()
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        loss_fn = nn.CrossEntropyLoss()
        g_epoch = torch.Generator().manual_seed(0)

        def epoch():
            order = torch.randperm(count, generator=g_epoch)[:used]
            total, correct = 0.0, 0
            for start in range(0, used, EPOCH_BATCH):
                idx = order[start:start + EPOCH_BATCH]
                xb, yb = x_all[idx], y_all[idx]
                logits = model(xb)
                loss = loss_fn(logits, yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
                correct += (logits.argmax(1) == yb).sum().item()
            return total / used, correct / used
        med, mn, reps = measure(epoch, min_time=0, min_reps=3, max_reps=3, warmup=1)
        out.append({"name": name, "group": "epoch", "median_s": med, "min_s": mn, "reps": reps,
                    "samples_per_s": used / med, "data": what})
        print(f"  {name:<34} median {med:11.3f} s    min {mn:11.3f} s   ({reps} runs)  "
              f"{used / med / 1e3:9.1f} k samples/s", flush=True)
    return out


def compare(torch_rows, swift_path):
    try:
        with open(swift_path) as f:
            swift = json.load(f)
    except (OSError, ValueError) as e:
        print(f"\n(no BatchNormKit results to compare: {swift_path}: {e}; run `make bench-native` first)")
        return
    fast = {}
    for c in swift.get("cases", []):
        if c.get("fast"):
            fast[(c["name"], c.get("threads", 1))] = c["fast"]["median_s"]
    met = missed = 0
    for threads in sorted({r["threads"] for r in torch_rows}):
        print(f"\nSide by side, {threads} thread(s): PyTorch {torch.__version__} vs BatchNormKit "
              f"({swift.get('build', '?')} build, {swift.get('date', '?')})")
        print(f"  ratio = PyTorch time / BatchNormKit time (> 1: BatchNormKit faster)")
        print(f"  {'case':<34} {'PyTorch':>11} {'BNKit':>11} {'ratio':>7} {'target':>7}  ok")
        for r in torch_rows:
            name = r["name"]
            if r["threads"] != threads or (name, threads) not in fast:
                continue
            t, s = r["median_s"], fast[(name, threads)]
            ratio = t / s
            r["bnkit_median_s"] = s
            r["ratio"] = ratio
            tgt = target_ratio(name, threads)
            verdict = ""
            if tgt:
                ok = ratio >= tgt
                met += ok
                missed += not ok
                verdict = "yes" if ok else "NO"
            print(f"  {name:<34} {fmt_time(t):>11} {fmt_time(s):>11} {ratio:6.2f}× "
                  f"{('%.1f×' % tgt) if tgt else '':>7}  {verdict}")
    print(f"  targets met: {met}, missed: {missed} (rule: ratio ≥ target, medians of one run)")


def fmt_time(s):
    if s < 1e-3:
        return f"{s * 1e6:.1f} µs"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--swift-json", default="bench-results/bench-native.json",
                   help="BatchNormKit results to compare with (default: %(default)s)")
    p.add_argument("--out", default="bench-results/bench-torch.json", help="where to write the JSON")
    p.add_argument("--filter", default="", help="only cases whose name contains this")
    p.add_argument("--threads", default="1,2",
                   help="comma-separated torch.set_num_threads values, each a full run (default 1,2)")
    p.add_argument("--min-time", type=float, default=0.25, help="seconds of timed runs per case (default 0.25)")
    p.add_argument("--rounds", type=int, default=1,
                   help="run every case this many times and keep each case's best median "
                        "(other jobs on a shared machine come and go; default 1)")
    p.add_argument("--autograd-forward", action="store_true",
                   help="time bn.forward-train with autograd recording instead of under no_grad")
    args = p.parse_args()

    try:
        thread_counts = [int(t) for t in args.threads.split(",")]
        assert thread_counts and all(t >= 1 for t in thread_counts)
    except (ValueError, AssertionError):
        p.error(f"--threads takes positive counts separated by commas, not {args.threads!r}")
    rows = []
    for threads in thread_counts:
        torch.set_num_threads(threads)
        print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} thread(s), "
              f"{platform.processor() or platform.machine()}, CPU capability "
              f"{torch.backends.cpu.get_cpu_capability()}")
        these = cases(args)
        for r in range(1, args.rounds):
            print(f"round {r + 1} of {args.rounds}", flush=True)
            for row, again in zip(these, cases(args)):
                if again["median_s"] < row["median_s"]:
                    again["min_s"] = min(again["min_s"], row["min_s"])
                    row.update(again)
                else:
                    row["min_s"] = min(again["min_s"], row["min_s"])
        for row in these:
            row["threads"] = threads
        rows += these
    compare(rows, args.swift_json)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"framework": "pytorch", "version": torch.__version__, "threads": thread_counts,
                   "cpu_capability": torch.backends.cpu.get_cpu_capability(), "rounds": args.rounds,
                   "forward_train_timing": "autograd" if args.autograd_forward else "no_grad",
                   "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "cases": rows}, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
