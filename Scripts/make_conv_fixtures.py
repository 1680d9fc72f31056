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

cnn_state_dict.safetensors -- exactly ``save_file(model.state_dict())`` (no metadata) of a small
    ``CNN(channels=(4, 8), hidden=16)`` of Scripts/train_cnn_torch.py trained 5 SGD steps
    (lr 0.05, momentum 0.9) on random batches of 32, so running statistics are non-trivial.
cnn_eval.safetensors -- that model on x (8, 1, 28, 28) with labels (8,) I64:
    logits_eval             eval mode, no grad
    logits_train, loss_train  train mode (batch statistics), CrossEntropyLoss
    grad.<name>             the gradients of loss_train (one backward from zero grads)
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


def make_cnn():
    from train_cnn_torch import CNN
    torch.manual_seed(30)
    model = CNN(channels=(4, 8), hidden=16)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    criterion = torch.nn.CrossEntropyLoss()
    model.train()
    for _ in range(5):
        x = torch.randn(32, 1, 28, 28)
        labels = torch.randint(0, 10, (32,))
        optimizer.zero_grad(set_to_none=True)
        criterion(model(x), labels).backward()
        optimizer.step()
    path = os.path.join(FIXTURES, "cnn_state_dict.safetensors")
    save_file(model.state_dict(), path)
    yield path
    x = torch.randn(8, 1, 28, 28)
    labels = torch.randint(0, 10, (8,))
    model.eval()
    with torch.no_grad():
        logits_eval = model(x)
    state = {key: value.clone() for key, value in model.state_dict().items()}
    model.train()
    optimizer.zero_grad(set_to_none=True)
    logits_train = model(x)
    loss = criterion(logits_train, labels)
    loss.backward()
    model.load_state_dict(state)  # the file describes the saved model, not one with updated buffers
    out = {"x": x, "labels": labels, "logits_eval": logits_eval, "logits_train": logits_train, "loss_train": loss}
    out.update({f"grad.{key}": p.grad for key, p in model.named_parameters()})
    yield save("cnn_eval.safetensors", out, {"model": "cnn_state_dict.safetensors", "channels": "4,8", "hidden": 16})


def main():
    _setup()
    os.makedirs(FIXTURES, exist_ok=True)
    paths = [*make_conv(), *make_pool(), *make_cnn()]
    for path in paths:
        print(f"{os.path.getsize(path):>9}  {os.path.relpath(path)}")


if __name__ == "__main__":
    main()
