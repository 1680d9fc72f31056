#!/usr/bin/env python3
"""Write the convolution golden files into Tests/BatchNormKitTests/Fixtures/conv/.

Run from the repository root:  .venv/bin/python Scripts/make_conv_fixtures.py

Written with ``safetensors.torch.save_file`` (float32 unless noted), torch
single-threaded and deterministic, each case seeded with ``torch.manual_seed``;
the module's repr and the input shape are in each file's ``__metadata__``.

conv2d_<case>.safetensors -- one ``torch.nn.Conv2d`` forward and backward
    weight, bias (absent for bias=False), x, dy
    y, dx, dweight, dbias      forward of x and the gradients of ``(y * dy).sum()``
    y_f64, dx_f64, ...         the same in float64 on the same float32 values
  cases: basic        Conv2d(3, 4, 3) on (2, 3, 6, 5)
         stride2_pad  Conv2d(2, 3, 3, stride=2, padding=1) on (2, 2, 7, 6)
         dilated_groups  Conv2d(4, 6, 3, padding=2, dilation=2, groups=2, bias=False) on (2, 4, 5, 7)
         k1_stride3   Conv2d(2, 5, 1, stride=3) on (3, 2, 8, 7)

pool_<case>.safetensors -- one pooling forward and backward: x, dy, y, dx, y_f64, dx_f64
  cases: max_k2            MaxPool2d(2) on (2, 3, 5, 7)       (odd sizes: the last row/column is dropped)
         max_k3_s2_p1      MaxPool2d(3, stride=2, padding=1) on (2, 2, 7, 6)
         avg_k3_s2_p1      AvgPool2d(3, stride=2, padding=1) on (2, 2, 7, 6)
         avg_k3_s2_p1_exclude  AvgPool2d(3, stride=2, padding=1, count_include_pad=False) on (2, 2, 7, 6)
         adaptive1         AdaptiveAvgPool2d(1) on (3, 4, 5, 3)
         adaptive3         AdaptiveAvgPool2d(3) on (2, 2, 7, 5) (overlapping cells)
"""
import copy
import os
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import _setup, _sort_metadata  # noqa: E402  (shared: deterministic torch, sorted metadata)

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "BatchNormKitTests", "Fixtures", "conv")


def save(name, tensors, metadata):
    path = os.path.join(FIXTURES, name)
    tensors = {key: value.detach().contiguous().clone() for key, value in tensors.items()}
    save_file(tensors, path, metadata={key: str(value) for key, value in metadata.items()})
    _sort_metadata(path)
    return path


def module_case(name, module, shape, seed, parameters=True):
    """Forward of x, gradients of (y * dy).sum() for x and every parameter,
    in float32 and (same float32 values) float64."""
    torch.manual_seed(seed)
    module = module()
    x = torch.randn(shape)
    with torch.no_grad():
        y = module(x)
    dy = torch.randn(y.shape)
    out = {"x": x, "dy": dy}
    if parameters:
        out.update({key: value.detach().clone() for key, value in module.named_parameters()})
    for suffix, m, dtype in (("", module, torch.float32), ("_f64", copy.deepcopy(module).double(), torch.float64)):
        xg = x.detach().to(dtype).clone().requires_grad_(True)
        y = m(xg)
        (y * dy.to(dtype)).sum().backward()
        out["y" + suffix] = y
        out["dx" + suffix] = xg.grad
        for key, value in m.named_parameters():
            out["d" + key + suffix] = value.grad
    return save(name, out, {"module": repr(module), "input_shape": list(shape)})


def make_conv():
    nn = torch.nn
    yield module_case("conv2d_basic.safetensors", lambda: nn.Conv2d(3, 4, 3), (2, 3, 6, 5), seed=11)
    yield module_case("conv2d_stride2_pad.safetensors", lambda: nn.Conv2d(2, 3, 3, stride=2, padding=1), (2, 2, 7, 6), seed=12)
    yield module_case("conv2d_dilated_groups.safetensors",
                      lambda: nn.Conv2d(4, 6, 3, padding=2, dilation=2, groups=2, bias=False), (2, 4, 5, 7), seed=13)
    yield module_case("conv2d_k1_stride3.safetensors", lambda: nn.Conv2d(2, 5, 1, stride=3), (3, 2, 8, 7), seed=14)


def make_pool():
    nn = torch.nn
    cases = [
        ("max_k2", lambda: nn.MaxPool2d(2), (2, 3, 5, 7)),
        ("max_k3_s2_p1", lambda: nn.MaxPool2d(3, stride=2, padding=1), (2, 2, 7, 6)),
        ("avg_k3_s2_p1", lambda: nn.AvgPool2d(3, stride=2, padding=1), (2, 2, 7, 6)),
        ("avg_k3_s2_p1_exclude", lambda: nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False), (2, 2, 7, 6)),
        ("adaptive1", lambda: nn.AdaptiveAvgPool2d(1), (3, 4, 5, 3)),
        ("adaptive3", lambda: nn.AdaptiveAvgPool2d(3), (2, 2, 7, 5)),
    ]
    for index, (name, module, shape) in enumerate(cases):
        yield module_case(f"pool_{name}.safetensors", module, shape, seed=20 + index, parameters=False)


def main():
    _setup()
    os.makedirs(FIXTURES, exist_ok=True)
    paths = [*make_conv(), *make_pool()]
    for path in paths:
        print(f"{os.path.getsize(path):>9}  {os.path.relpath(path)}")


if __name__ == "__main__":
    main()
