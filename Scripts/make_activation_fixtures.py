#!/usr/bin/env python3
"""Write the activation golden file Tests/BatchNormKitTests/Fixtures/activations.safetensors.

Run from the repository root:  .venv/bin/python Scripts/make_activation_fixtures.py

    x                  (64,) float32: -12 ... 12 incl. 0 and both sides of it,
                       so saturation, the kink at 0 and large |x| are covered
    dy                 (64,) upstream gradient
    y_<name>, dx_<name>  forward of x and the gradient of (y * dy).sum()
                       for sigmoid, tanh, selu, gelu (exact), gelu_tanh
                       (approximate='tanh'), leaky_relu (0.01), leaky_relu_0.2

It reuses make_fixtures.py's deterministic setup and writer, and adds (or
replaces) this file's row in Fixtures/README.md.
"""

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import FIXTURES, _describe, _save, _setup  # noqa: E402

MODULES = {
    "sigmoid": torch.nn.Sigmoid(),
    "tanh": torch.nn.Tanh(),
    "selu": torch.nn.SELU(),
    "gelu": torch.nn.GELU(),
    "gelu_tanh": torch.nn.GELU(approximate="tanh"),
    "leaky_relu": torch.nn.LeakyReLU(),
    "leaky_relu_0.2": torch.nn.LeakyReLU(0.2),
}


def main():
    _setup()
    torch.manual_seed(9)
    x = torch.cat([torch.linspace(-12, 12, 41), torch.tensor([0.0, 1e-4, -1e-4, 0.5, -0.5]), torch.randn(18) * 3])
    dy = torch.randn(64)
    tensors = {"x": x, "dy": dy}
    for name, module in MODULES.items():
        xi = x.clone().requires_grad_(True)
        y = module(xi)
        (y * dy).sum().backward()
        tensors["y_" + name] = y
        tensors["dx_" + name] = xi.grad
    path = _save("activations.safetensors", tensors, {"torch": torch.__version__})
    readme = os.path.join(FIXTURES, "README.md")
    row = f"| `activations.safetensors` | {os.path.getsize(path)} | {_describe(path)} (Scripts/make_activation_fixtures.py) |"
    with open(readme) as handle:
        lines = [line for line in handle.read().splitlines() if "`activations.safetensors`" not in line]
    lines.append(row)
    with open(readme, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    print(f"{os.path.getsize(path):>9}  {os.path.relpath(path)}")


if __name__ == "__main__":
    main()
