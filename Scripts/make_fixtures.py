#!/usr/bin/env python3
"""Write BatchNormKit's PyTorch golden files into Tests/BatchNormKitTests/Fixtures/.

Run from the repository root:  python3 Scripts/make_fixtures.py

Every file is written with ``safetensors.torch.save_file``; tensors are float32
unless noted (counters and labels are int64). Each fixture seeds its own RNG
(``torch.manual_seed``) and torch runs single-threaded, so reruns with the same
torch version give the same numbers. Hyperparameters are recorded in each
file's ``__metadata__``. The script also regenerates ``Fixtures/README.md``.

batchnorm1d_2d.safetensors -- ``BatchNorm1d(5)`` (eps 1e-5, momentum 0.1) on (N, C) = (7, 5)
    weight, bias            gamma/beta (random, non-trivial), never updated
    x, dy                   input (feature 3 has mean 1e3; per-feature means and
                            scales differ) and upstream gradient, (7, 5)
    y_train, dx_train, dweight_train, dbias_train
                            train-mode forward and the grads of ``(y * dy).sum()``
    running_mean_1, running_var_1        buffers after that first step
    x2, x3                  two more training-mode inputs
    running_mean_3, running_var_3, num_batches_tracked_3 (I64, shape [])
                            buffers after the third training forward
    y_train_f64, dx_train_f64, dweight_train_f64, dbias_train_f64 (F64)
                            the training step in float64 on the same inputs:
                            the exact values both float32 results are judged by
    y_eval, dx_eval, dweight_eval, dbias_eval
                            eval-mode forward of ``x`` (running stats of step 3)
                            and its grads for the same ``dy`` (fresh grads)

batchnorm1d_3d.safetensors -- the same names for ``BatchNorm1d(3)`` on (N, C, L) = (4, 3, 5)

batchnorm2d.safetensors -- the same names for ``BatchNorm2d(4)`` on (N, C, H, W) = (3, 4, 2, 3)

instancenorm1d.safetensors -- the same names for
``InstanceNorm1d(3, affine=True, track_running_stats=True)`` on (4, 3, 5)

layernorm.safetensors -- ``LayerNorm([3, 5])`` on (4, 3, 5); groupnorm.safetensors --
``GroupNorm(2, 6)`` on (3, 6, 2, 2). Both: weight, bias, x, dy, and
    y, dx, dweight, dbias           forward of ``x``, gradients for ``(y * dy).sum()``
    y_f64, … dbias_f64              the same in float64 on the same float32 inputs

batchnorm1d_cumulative.safetensors -- ``BatchNorm1d(4, momentum=None)`` (cumulative average)
    x1, x2, x3              three (6, 4) training-mode inputs
    running_mean_K, running_var_K, num_batches_tracked_K   buffers after step K = 1, 2, 3

seed_sgd.safetensors -- the seed network ``MyNetwork`` (below), two SGD steps
    (lr 0.1, momentum 0.9, dampening 0, weight_decay 5e-4, nesterov False) with
    ``CrossEntropyLoss`` on one batch, train mode both times
    init.<name>             the initial state_dict (params and buffers)
    x (32, 784) in [0, 1], labels (32,) I64 in 0..9
    loss_1, loss_2          shape [] losses of the two forwards
    grad1.<param>           parameter gradients of step 1 (before the update;
                            identical for every optimizer variant)
    step2.<name>            state_dict after the second update

seed_sgd_nesterov.safetensors -- momentum 0.9, dampening 0, weight_decay 0, nesterov True
seed_sgd_dampening.safetensors -- momentum 0.5, dampening 0.1, weight_decay 0, nesterov False
    loss_1, loss_2, step2.<name> only: start from init.*, x and labels of
    seed_sgd.safetensors (same seed, same data), to keep the fixtures small.

seed_state_dict.safetensors -- exactly ``save_file(model.state_dict())`` of a
    ``MyNetwork`` trained 20 SGD steps (lr 0.1, momentum 0.9) on random batches
    of 64, so running statistics and num_batches_tracked (= 20) are non-trivial.

seed_eval.safetensors -- that model in eval mode
    x (16, 784), logits (16, 10), probabilities (16, 10) = softmax(logits, dim=1)

``MyNetwork`` is the seed lesson's network without its final Softmax:
``layers = Sequential(Linear(784, 256), BatchNorm1d(256), ReLU(), Linear(256, 64),
BatchNorm1d(64), ReLU(), Linear(64, 10))``; state_dict names are
``layers.0.weight``, ``layers.1.running_mean``, ... ``layers.6.bias``.
"""

import copy
import json
import os
import struct
import sys

import torch
from safetensors.torch import load_file, save_file

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "BatchNormKitTests", "Fixtures")


class MyNetwork(torch.nn.Module):
    """The seed network (logits out). ``placement`` 'after' puts BatchNorm after ReLU."""

    def __init__(self, hidden=(256, 64), batch_norm=True, placement="before", inputs=784, classes=10):
        super().__init__()
        stack, width = [], inputs
        for size in hidden:
            stack.append(torch.nn.Linear(width, size))
            if not batch_norm:
                stack.append(torch.nn.ReLU())
            elif placement == "before":
                stack += [torch.nn.BatchNorm1d(size), torch.nn.ReLU()]
            else:
                stack += [torch.nn.ReLU(), torch.nn.BatchNorm1d(size)]
            width = size
        stack.append(torch.nn.Linear(width, classes))
        self.layers = torch.nn.Sequential(*stack)

    def forward(self, x):
        return self.layers(x)


def _setup():
    torch.set_default_dtype(torch.float32)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)


def _save(name, tensors, metadata=None):
    path = os.path.join(FIXTURES, name)
    tensors = {key: value.detach().contiguous().clone() for key, value in tensors.items()}
    save_file(tensors, path, metadata={key: str(value) for key, value in (metadata or {}).items()})
    _sort_metadata(path)
    return path


def _sort_metadata(path):
    """Sort ``__metadata__`` keys in the header: the Rust writer emits them in
    HashMap order, which changes from run to run. Tensor order, offsets and
    data are untouched and the header keeps its length, so the file stays
    exactly what ``save_file`` wrote apart from that order."""
    with open(path, "rb") as handle:
        blob = handle.read()
    length = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + length])
    if "__metadata__" not in header:
        return
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    assert len(text) <= length, path
    text += b" " * (length - len(text))
    with open(path + ".tmp", "wb") as handle:
        handle.write(blob[:8] + text + blob[8 + length:])
    os.replace(path + ".tmp", path)


def _batchnorm_case(name, features, shape, means, scales, seed, module=torch.nn.BatchNorm1d, label=None):
    """``module(features)`` must have affine parameters and running buffers."""
    torch.manual_seed(seed)
    bn = module(features)
    with torch.no_grad():
        bn.weight.copy_(0.5 + torch.rand(features))
        bn.bias.copy_(torch.randn(features))
    view = [1, features] + [1] * (len(shape) - 2)
    mean = torch.tensor(means, dtype=torch.float32).view(view)
    scale = torch.tensor(scales, dtype=torch.float32).view(view)

    def sample():
        return torch.randn(shape) * scale + mean

    x, dy, x2, x3 = sample(), torch.randn(shape), sample(), sample()
    out = {"weight": bn.weight, "bias": bn.bias, "x": x, "dy": dy, "x2": x2, "x3": x3}

    bn.train()
    xg = x.clone().requires_grad_(True)
    y = bn(xg)
    (y * dy).sum().backward()
    out.update(y_train=y, dx_train=xg.grad, dweight_train=bn.weight.grad, dbias_train=bn.bias.grad,
               running_mean_1=bn.running_mean.clone(), running_var_1=bn.running_var.clone())
    with torch.no_grad():
        bn(x2)
        bn(x3)
    out.update(running_mean_3=bn.running_mean, running_var_3=bn.running_var,
               num_batches_tracked_3=bn.num_batches_tracked)

    bn.eval()
    bn.zero_grad(set_to_none=True)
    xg = x.clone().requires_grad_(True)
    y = bn(xg)
    (y * dy).sum().backward()
    out.update(y_eval=y, dx_eval=xg.grad, dweight_eval=bn.weight.grad, dbias_eval=bn.bias.grad)

    # The same training step in float64 on the same float32 inputs: the exact
    # answer to compare float32 results (PyTorch's and ours) against.
    exact = module(features).double()
    with torch.no_grad():
        exact.weight.copy_(out["weight"].double())
        exact.bias.copy_(out["bias"].double())
    xd = x.double().requires_grad_(True)
    yd = exact(xd)
    (yd * dy.double()).sum().backward()
    out.update(y_train_f64=yd, dx_train_f64=xd.grad, dweight_train_f64=exact.weight.grad,
               dbias_train_f64=exact.bias.grad)
    return _save(name, out, {"module": label or f"{module.__name__}({features})", "eps": bn.eps, "momentum": bn.momentum,
                             "input_shape": list(shape)})


def make_batchnorm():
    yield _batchnorm_case("batchnorm1d_2d.safetensors", 5, (7, 5),
                          means=[0.0, -3.0, 0.5, 1e3, 10.0], scales=[1.0, 0.1, 5.0, 2.0, 0.01], seed=1)
    yield _batchnorm_case("batchnorm1d_3d.safetensors", 3, (4, 3, 5),
                          means=[2.0, -50.0, 1e3], scales=[3.0, 0.5, 4.0], seed=2)
    yield _batchnorm_case("batchnorm2d.safetensors", 4, (3, 4, 2, 3),
                          means=[0.0, 1e3, -7.0, 0.25], scales=[1.0, 3.0, 0.05, 2.0], seed=4,
                          module=torch.nn.BatchNorm2d)
    # per (sample, channel) statistics; the running buffers average them over the batch
    yield _batchnorm_case("instancenorm1d.safetensors", 3, (4, 3, 5),
                          means=[1.0, -20.0, 300.0], scales=[2.0, 0.5, 1.5], seed=7,
                          module=lambda c: torch.nn.InstanceNorm1d(c, affine=True, track_running_stats=True),
                          label="InstanceNorm1d(3, affine=True, track_running_stats=True)")

    torch.manual_seed(3)
    bn = torch.nn.BatchNorm1d(4, momentum=None)
    bn.train()
    out = {}
    scale = torch.tensor([1.0, 2.0, 0.5, 10.0])
    shift = torch.tensor([0.0, 5.0, -1.0, 100.0])
    for step in (1, 2, 3):
        x = torch.randn(6, 4) * scale + shift + step
        with torch.no_grad():
            bn(x)
        out[f"x{step}"] = x
        out[f"running_mean_{step}"] = bn.running_mean.clone()
        out[f"running_var_{step}"] = bn.running_var.clone()
        out[f"num_batches_tracked_{step}"] = bn.num_batches_tracked.clone()
    yield _save("batchnorm1d_cumulative.safetensors", out,
                {"module": "BatchNorm1d(4, momentum=None)", "eps": bn.eps, "momentum": "None"})


def _per_sample_norm_case(name, module, shape, means, scales, seed):
    """LayerNorm / GroupNorm: one forward and backward (train mode; these
    layers have no running buffers, so eval is the same), in float32 and,
    on the same float32 inputs, float64."""
    torch.manual_seed(seed)
    with torch.no_grad():
        module.weight.copy_(0.5 + torch.rand(module.weight.shape))
        module.bias.copy_(torch.randn(module.bias.shape))
    view = [1, shape[1]] + [1] * (len(shape) - 2)
    x = torch.randn(shape) * torch.tensor(scales).view(view) + torch.tensor(means).view(view)
    dy = torch.randn(shape)
    out = {"weight": module.weight.detach().clone(), "bias": module.bias.detach().clone(), "x": x, "dy": dy}
    for suffix, m, dtype in (("", module, torch.float32), ("_f64", copy.deepcopy(module).double(), torch.float64)):
        xg = x.detach().to(dtype).clone().requires_grad_(True)
        y = m(xg)
        (y * dy.to(dtype)).sum().backward()
        out.update({"y" + suffix: y, "dx" + suffix: xg.grad, "dweight" + suffix: m.weight.grad,
                    "dbias" + suffix: m.bias.grad})
    return _save(name, out, {"module": repr(module), "input_shape": list(shape)})


def make_per_sample_norms():
    # channel 1 has mean 1e3: within a LayerNorm row that is a large common offset
    yield _per_sample_norm_case("layernorm.safetensors", torch.nn.LayerNorm([3, 5]), (4, 3, 5),
                                means=[0.0, 1e3, -2.0], scales=[1.0, 0.5, 3.0], seed=5)
    yield _per_sample_norm_case("groupnorm.safetensors", torch.nn.GroupNorm(2, 6), (3, 6, 2, 2),
                                means=[0.0, 1.0, -5.0, 50.0, 0.5, 2.0], scales=[1.0, 2.0, 0.1, 3.0, 1.0, 0.5], seed=6)


SGD_VARIANTS = [
    ("seed_sgd.safetensors", dict(lr=0.1, momentum=0.9, dampening=0.0, weight_decay=5e-4, nesterov=False)),
    ("seed_sgd_nesterov.safetensors", dict(lr=0.1, momentum=0.9, dampening=0.0, weight_decay=0.0, nesterov=True)),
    ("seed_sgd_dampening.safetensors", dict(lr=0.1, momentum=0.5, dampening=0.1, weight_decay=0.0, nesterov=False)),
]


def make_sgd():
    for index, (name, options) in enumerate(SGD_VARIANTS):
        torch.manual_seed(4)
        model = MyNetwork()
        x = torch.rand(32, 784)
        labels = torch.randint(0, 10, (32,), dtype=torch.int64)
        out = {}
        if index == 0:
            out.update({f"init.{k}": v.clone() for k, v in model.state_dict().items()})
            out.update(x=x, labels=labels)
        optimizer = torch.optim.SGD(model.parameters(), **options)
        criterion = torch.nn.CrossEntropyLoss()
        model.train()
        for step in (1, 2):
            optimizer.zero_grad(set_to_none=True)
            loss = criterion(model(x), labels)
            loss.backward()
            out[f"loss_{step}"] = loss
            if step == 1 and index == 0:
                out.update({f"grad1.{k}": p.grad.clone() for k, p in model.named_parameters()})
            optimizer.step()
        out.update({f"step2.{k}": v.clone() for k, v in model.state_dict().items()})
        metadata = dict(options, loss="CrossEntropyLoss", mode="train", steps=2)
        if index > 0:
            metadata["init_from"] = SGD_VARIANTS[0][0]
        yield _save(name, out, metadata)


def make_seed_model():
    torch.manual_seed(5)
    model = MyNetwork()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    criterion = torch.nn.CrossEntropyLoss()
    model.train()
    for _ in range(20):
        x = torch.rand(64, 784)
        labels = torch.randint(0, 10, (64,), dtype=torch.int64)
        optimizer.zero_grad(set_to_none=True)
        criterion(model(x), labels).backward()
        optimizer.step()
    path = os.path.join(FIXTURES, "seed_state_dict.safetensors")
    save_file(model.state_dict(), path)
    yield path

    model.eval()
    x = torch.rand(16, 784)
    with torch.no_grad():
        logits = model(x)
    yield _save("seed_eval.safetensors", {"x": x, "logits": logits, "probabilities": torch.softmax(logits, dim=1)},
                {"model": "seed_state_dict.safetensors", "mode": "eval"})


def _describe(path):
    tensors = load_file(path)
    groups = {}
    for key, value in tensors.items():
        prefix, _, rest = key.partition(".")
        group = f"{prefix}.*" if rest and prefix in ("init", "grad1", "step2") else key
        groups.setdefault(group, []).append(value)
    parts = []
    for group in sorted(groups):
        values = groups[group]
        if group.endswith(".*"):
            parts.append(f"`{group}` ({len(values)} tensors)")
        else:
            value = values[0]
            dtype = str(value.dtype).replace("torch.", "")
            parts.append(f"`{group}` {list(value.shape)}" + ("" if dtype == "float32" else f" {dtype}"))
    return ", ".join(parts)


def write_readme(paths):
    lines = [
        "# PyTorch golden files",
        "",
        "Written by `python3 Scripts/make_fixtures.py` (see its docstring for how each",
        "value is computed) with `safetensors.torch.save_file` (`__metadata__` keys then",
        "sorted so reruns give identical bytes); do not edit by hand.",
        "",
        f"- torch {torch.__version__}, safetensors {__import__('safetensors').__version__}, "
        f"Python {sys.version.split()[0]}",
        "- float32 unless noted; `num_batches_tracked*` and `labels` are int64.",
        "- `seed_sgd_nesterov` / `seed_sgd_dampening` start from `init.*`, `x`, `labels` of `seed_sgd`.",
        "",
        "| file | bytes | tensors (shape) |",
        "|---|---|---|",
    ]
    for path in paths:
        lines.append(f"| `{os.path.basename(path)}` | {os.path.getsize(path)} | {_describe(path)} |")
    with open(os.path.join(FIXTURES, "README.md"), "w") as handle:
        handle.write("\n".join(lines) + "\n")


def main():
    _setup()
    os.makedirs(FIXTURES, exist_ok=True)
    paths = [*make_batchnorm(), *make_per_sample_norms(), *make_sgd(), *make_seed_model()]
    write_readme(paths)
    total = sum(os.path.getsize(p) for p in paths)
    for path in paths:
        print(f"{os.path.getsize(path):>9}  {os.path.relpath(path)}")
    print(f"{total:>9}  total")


if __name__ == "__main__":
    main()
