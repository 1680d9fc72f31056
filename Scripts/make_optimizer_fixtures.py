#!/usr/bin/env python3
"""Write the PyTorch golden files of BatchNormKit's optimizers and LR schedules.

Run from the repository root:  .venv/bin/python Scripts/make_optimizer_fixtures.py
(`make fixtures` runs it after make_fixtures.py.)

optimizers.safetensors -- Adam/AdamW on three free parameters, fed fixed gradients
    init.p0 [5, 7], init.p1 [7], init.p2 [3]     initial values (float32)
    grad<t>.p<i>                                 the gradient set before step t = 1…6;
                                                 their scales jump (1, 3, 0.1, 0.1, 2, 0.01)
                                                 so the amsgrad maximum matters
    <variant>.step<t>.p<i>                       the parameters after step t
    <variant>.state.exp_avg.p<i>, .exp_avg_sq.p<i>, (.max_exp_avg_sq.p<i>)
                                                 the optimizer state after step 6
    The variants and their settings are in the file's metadata
    (``<variant>`` → JSON of the keyword arguments); ``adam_lr_changes`` sets
    ``lr = 0.01 · 0.5^(t-1)`` before step t, as a schedule would.

schedules.safetensors -- float64 ``lr.<variant>`` [S + 1]: the optimizer's lr after
    0…S calls of ``scheduler.step()`` (base lr 0.1; settings in the metadata);
    for ``onecycle_momentum`` / ``onecycle_beta1`` also ``momentum.<variant>``: SGD's
    momentum / Adam's beta1 as OneCycleLR's default ``cycle_momentum`` sets them.
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import _sort_metadata  # noqa: E402  (reruns give identical bytes)

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "Tests", "BatchNormKitTests", "Fixtures")
SHAPES = [(5, 7), (7,), (3,)]
SCALES = [1.0, 3.0, 0.1, 0.1, 2.0, 0.01]

ADAM_VARIANTS = {
    "adam": ("Adam", dict(lr=0.01)),
    "adam_weight_decay": ("Adam", dict(lr=0.01, weight_decay=0.1)),
    "adam_amsgrad": ("Adam", dict(lr=0.01, betas=(0.8, 0.99), amsgrad=True)),
    "adam_lr_changes": ("Adam", dict(lr=0.01, eps=1e-6)),
    "adamw": ("AdamW", dict(lr=0.01)),
    "adamw_amsgrad": ("AdamW", dict(lr=0.02, weight_decay=0.1, amsgrad=True, eps=1e-6)),
}


def save(tensors, metadata, name):
    path = os.path.join(FIXTURES, name)
    save_file(tensors, path, metadata=metadata)
    _sort_metadata(path)
    print(f"{os.path.getsize(path):>9}  {os.path.relpath(path)}")


def make_optimizers():
    generator = torch.Generator().manual_seed(11)
    init = [torch.randn(shape, generator=generator) for shape in SHAPES]
    grads = [[torch.randn(shape, generator=generator) * scale for shape in SHAPES] for scale in SCALES]
    tensors = {f"init.p{i}": p for i, p in enumerate(init)}
    for t, step in enumerate(grads, start=1):
        tensors.update({f"grad{t}.p{i}": g for i, g in enumerate(step)})
    metadata = {}
    for name, (kind, options) in ADAM_VARIANTS.items():
        params = [torch.nn.Parameter(p.clone()) for p in init]
        optimizer = getattr(torch.optim, kind)(params, foreach=False, **options)
        for t, step in enumerate(grads, start=1):
            if name == "adam_lr_changes":
                optimizer.param_groups[0]["lr"] = 0.01 * 0.5 ** (t - 1)
            for p, g in zip(params, step):
                p.grad = g.clone()
            optimizer.step()
            tensors.update({f"{name}.step{t}.p{i}": p.detach().clone() for i, p in enumerate(params)})
        for i, p in enumerate(params):
            for key, value in optimizer.state[p].items():
                if key != "step":
                    tensors[f"{name}.state.{key}.p{i}"] = value.clone()
        metadata[name] = json.dumps({"optimizer": kind, **options})
    save(tensors, metadata, "optimizers.safetensors")


def make_schedules():
    from torch.optim import lr_scheduler as S

    def run(make, steps, optimizer_kind="SGD"):
        parameters = [torch.nn.Parameter(torch.zeros(1))]
        optimizer = (torch.optim.Adam(parameters, lr=0.1) if optimizer_kind == "Adam"
                     else torch.optim.SGD(parameters, lr=0.1, momentum=0.9))
        scheduler = make(optimizer)
        group = optimizer.param_groups[0]
        momentum = (lambda: group["betas"][0]) if optimizer_kind == "Adam" else (lambda: group["momentum"])
        lrs, momenta = [group["lr"]], [momentum()]
        for _ in range(steps):
            optimizer.step()
            scheduler.step()
            lrs.append(group["lr"])
            momenta.append(momentum())
        return torch.tensor(lrs, dtype=torch.float64), torch.tensor(momenta, dtype=torch.float64)

    variants = {
        "step": ("StepLR(step_size=3, gamma=0.5)", lambda o: S.StepLR(o, step_size=3, gamma=0.5), 12),
        "cosine": ("CosineAnnealingLR(T_max=10, eta_min=0.001)", lambda o: S.CosineAnnealingLR(o, T_max=10, eta_min=0.001), 25),
        "linear": ("LinearLR(start_factor=0.1, end_factor=1.0, total_iters=4)",
                   lambda o: S.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=4), 8),
        "onecycle": ("OneCycleLR(max_lr=0.1, total_steps=20, cycle_momentum=False)",
                     lambda o: S.OneCycleLR(o, max_lr=0.1, total_steps=20, cycle_momentum=False), 19),
        "onecycle_custom": ("OneCycleLR(max_lr=0.1, total_steps=17, pct_start=0.25, div_factor=10, final_div_factor=100, cycle_momentum=False)",
                            lambda o: S.OneCycleLR(o, max_lr=0.1, total_steps=17, pct_start=0.25, div_factor=10,
                                                   final_div_factor=100, cycle_momentum=False), 16),
        "warmup_cosine": ("SequentialLR([LinearLR(start_factor=0.01, total_iters=3), CosineAnnealingLR(T_max=7)], milestones=[3])",
                          lambda o: S.SequentialLR(o, [S.LinearLR(o, start_factor=0.01, total_iters=3),
                                                       S.CosineAnnealingLR(o, T_max=7)], milestones=[3]), 12),
        "warmup_step": ("SequentialLR([LinearLR(start_factor=0.5, total_iters=2), StepLR(step_size=2, gamma=0.1)], milestones=[2])",
                        lambda o: S.SequentialLR(o, [S.LinearLR(o, start_factor=0.5, total_iters=2),
                                                     S.StepLR(o, step_size=2, gamma=0.1)], milestones=[2]), 8),
    }
    # OneCycleLR's default cycle_momentum: SGD's momentum, Adam's beta1 (recorded as momentum.<variant>)
    cycling = {
        "onecycle_momentum": ("OneCycleLR(max_lr=0.1, total_steps=20) on SGD(momentum=0.9)",
                              lambda o: S.OneCycleLR(o, max_lr=0.1, total_steps=20), 19, "SGD"),
        "onecycle_beta1": ("OneCycleLR(max_lr=0.1, total_steps=15, pct_start=0.4, base_momentum=0.8, max_momentum=0.9) on Adam",
                           lambda o: S.OneCycleLR(o, max_lr=0.1, total_steps=15, pct_start=0.4, base_momentum=0.8,
                                                  max_momentum=0.9), 14, "Adam"),
    }
    tensors = {f"lr.{name}": run(make, steps)[0] for name, (_, make, steps) in variants.items()}
    for name, (_, make, steps, kind) in cycling.items():
        tensors[f"lr.{name}"], tensors[f"momentum.{name}"] = run(make, steps, kind)
    metadata = {name: text for name, (text, _, _) in variants.items()}
    metadata.update({name: entry[0] for name, entry in cycling.items()})
    save(tensors, metadata, "schedules.safetensors")


SECTION = "\n## Optimizers and schedules (Scripts/make_optimizer_fixtures.py)\n"


def write_readme_section():
    """Append (or replace) this script's section of Fixtures/README.md, which
    make_fixtures.py rewrites first."""
    path = os.path.join(FIXTURES, "README.md")
    text = open(path).read() if os.path.exists(path) else ""
    text = text.split(SECTION)[0].rstrip("\n") + "\n"
    lines = [SECTION, f"Written by torch {torch.__version__}; see the script's docstring for every tensor.", "",
             "| file | bytes | contents |", "|---|---|---|"]
    for name, what in [("optimizers.safetensors", "Adam/AdamW: init, six gradients, parameters after each step, final state"),
                       ("schedules.safetensors", "float64 lr per scheduler step for StepLR, CosineAnnealingLR, LinearLR, OneCycleLR, SequentialLR")]:
        lines.append(f"| `{name}` | {os.path.getsize(os.path.join(FIXTURES, name))} | {what} |")
    with open(path, "w") as handle:
        handle.write(text + "\n".join(lines) + "\n")


def main():
    torch.set_num_threads(1)
    make_optimizers()
    make_schedules()
    write_readme_section()


if __name__ == "__main__":
    main()
