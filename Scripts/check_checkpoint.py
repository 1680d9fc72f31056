#!/usr/bin/env python3
"""Prove PyTorch reads a BatchNormKit checkpoint.

    python3 Scripts/check_checkpoint.py CHECKPOINT.safetensors
        [--input FILE.safetensors] [--input-key x] [--output OUT.safetensors]
        [--json] [--hidden 256,64] [--placement before|after] [--no-batchnorm]

Loads CHECKPOINT with ``safetensors.torch.load_file`` into the seed network
``MyNetwork`` (defined in make_fixtures.py) with ``load_state_dict(strict=True)``,
after setting aside a training checkpoint's ``optimizer.*`` and ``trainer.*`` entries.
It also requires exactly the model's keys (strict loading lets a missing
``num_batches_tracked`` through) and every tensor's dtype to equal the model's
(float32 parameters and running statistics, int64 ``num_batches_tracked``),
which ``load_state_dict`` alone would silently convert.

With ``--input``, runs the model in eval mode on the tensor ``--input-key``
(default ``x``) of that file and prints the logits and softmax probabilities
(``--json``: one JSON object on stdout; ``--output``: also saves ``logits`` and
``probabilities`` with save_file). If the input file holds ``logits`` too, the
largest absolute difference to them is reported.

Exit status: 0 only if the checkpoint loads cleanly (and the input, if given, runs);
1 with a message on stderr otherwise.
"""

import argparse
import json
import os
import sys

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import MyNetwork  # noqa: E402


def fail(message):
    print(f"check_checkpoint: {message}", file=sys.stderr)
    sys.exit(1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--input")
    parser.add_argument("--input-key", default="x")
    parser.add_argument("--output")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--hidden", default="256,64")
    parser.add_argument("--placement", choices=["before", "after"], default="before")
    parser.add_argument("--no-batchnorm", action="store_true")
    args = parser.parse_args()

    torch.set_default_dtype(torch.float32)
    hidden = tuple(int(size) for size in args.hidden.split(",") if size)
    model = MyNetwork(hidden=hidden, batch_norm=not args.no_batchnorm, placement=args.placement)

    try:
        state = load_file(args.checkpoint)
    except Exception as error:  # safetensors raises several types for malformed files
        fail(f"{args.checkpoint}: cannot read: {error}")
    # A training checkpoint of bnkit train is a state dict plus extras
    # (optimizer.*, trainer.*: optimizer buffers, epoch, data order); set them aside.
    extras = {name for name in state if name.startswith(("optimizer.", "trainer."))}
    state = {name: tensor for name, tensor in state.items() if name not in extras}
    expected = model.state_dict()
    # load_state_dict(strict=True) quietly accepts a missing num_batches_tracked
    # (BatchNorm's backward compatibility), so compare the key sets first.
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        fail(f"{args.checkpoint}: keys differ from MyNetwork's state_dict: missing {missing}, unexpected {unexpected}")
    wrong = [f"{name}: {tensor.dtype} (model has {expected[name].dtype})"
             for name, tensor in sorted(state.items()) if name in expected and tensor.dtype != expected[name].dtype]
    if wrong:
        fail(f"{args.checkpoint}: wrong dtypes: " + "; ".join(wrong))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        fail(f"{args.checkpoint}: load_state_dict(strict=True) failed: {error}")

    report = {"checkpoint": args.checkpoint, "loaded": True, "tensors": len(state), "training_state_entries": len(extras)}
    if args.input:
        try:
            inputs = load_file(args.input)
        except Exception as error:
            fail(f"{args.input}: cannot read: {error}")
        if args.input_key not in inputs:
            fail(f"{args.input}: no tensor named {args.input_key!r} (has {', '.join(sorted(inputs))})")
        model.eval()
        with torch.no_grad():
            try:
                logits = model(inputs[args.input_key].to(torch.float32))
            except RuntimeError as error:
                fail(f"{args.input}: forward failed: {error}")
            probabilities = torch.softmax(logits, dim=1)
        report["logits"] = logits.tolist()
        report["probabilities"] = probabilities.tolist()
        report["predictions"] = logits.argmax(dim=1).tolist()
        if "logits" in inputs and inputs["logits"].shape == logits.shape:
            report["max_abs_diff_to_input_logits"] = float((inputs["logits"] - logits).abs().max())
        if args.output:
            save_file({"logits": logits.contiguous(), "probabilities": probabilities.contiguous()}, args.output)

    if args.json:
        print(json.dumps(report))
    else:
        print(f"{args.checkpoint}: loaded {len(state)} tensors into MyNetwork (strict)"
              + (f", set aside {len(extras)} training-state entries (optimizer.*, trainer.*)" if extras else ""))
        if args.input:
            torch.set_printoptions(precision=6, sci_mode=False)
            print(f"eval logits for {args.input}[{args.input_key!r}]:\n{logits}")
            print(f"predictions: {report['predictions']}")
            if "max_abs_diff_to_input_logits" in report:
                print(f"max |logits - {args.input}['logits']| = {report['max_abs_diff_to_input_logits']:.3g}")


if __name__ == "__main__":
    main()
