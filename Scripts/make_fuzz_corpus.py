#!/usr/bin/env python3
"""Writes the small valid seed files of `make fuzz` under Fuzz/corpus/ (stdlib only).

libFuzzer mutates from these; valid files let it reach the checks past the
header at once. Sizes stay tiny (a few hundred bytes) so mutations are cheap.
Run from the repository root: python3 Scripts/make_fuzz_corpus.py
"""
import gzip, json, os, struct

ROOT = os.path.join(os.path.dirname(__file__), "..", "Fuzz", "corpus")


def write(target, name, data):
    os.makedirs(os.path.join(ROOT, target), exist_ok=True)
    with open(os.path.join(ROOT, target, name), "wb") as f:
        f.write(data)


def idx(dims, payload):
    return bytes([0, 0, 8, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + bytes(payload)


def safetensors(tensors, metadata=None):
    """tensors: name -> (dtype, shape, raw bytes); laid out as safetensors.torch.save_file does."""
    rank = {"F64": 8, "I64": 8, "F32": 4, "I32": 4, "BF16": 2, "F16": 2, "U8": 1}
    order = sorted(tensors, key=lambda n: (-rank[tensors[n][0]], n.encode()))
    header, offset, body = {}, 0, b""
    if metadata:
        header["__metadata__"] = metadata
    for name in order:
        dtype, shape, raw = tensors[name]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        body += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + body


def f32(values):
    return struct.pack("<%df" % len(values), *values)


def seed_state(widths, norm, placement):
    """A SeedNetwork state dict: Linear, BatchNorm1d, ReLU blocks, as Checkpoint+Layout.swift lays them out."""
    tensors, index = {}, 0
    for k, (inputs, outputs) in enumerate(zip(widths, widths[1:])):
        tensors[f"layers.{index}.weight"] = ("F32", [outputs, inputs], f32([0.1 * ((i % 7) - 3) for i in range(outputs * inputs)]))
        tensors[f"layers.{index}.bias"] = ("F32", [outputs], f32([0.0] * outputs))
        if k == len(widths) - 2:
            break
        index += 1
        if norm:
            bn = index if placement == "before" else index + 1
            for name, value in [("weight", 1.0), ("bias", 0.0), ("running_mean", 0.0), ("running_var", 1.0)]:
                tensors[f"layers.{bn}.{name}"] = ("F32", [outputs], f32([value] * outputs))
            tensors[f"layers.{bn}.num_batches_tracked"] = ("I64", [], struct.pack("<q", 3))
            index += 2
        else:
            index += 1
    return tensors


def architecture(widths, norm, placement):
    return {"architecture": "SeedNetwork", "input_size": str(widths[0]), "hidden_sizes": ",".join(map(str, widths[1:-1])),
            "classes": str(widths[-1]), "norm": "batchnorm" if norm else "none", "placement": placement}


# IDX: raw and gzip, images (3-d) and labels (1-d)
write("idx", "labels-4.idx", idx([4], [0, 1, 2, 9]))
write("idx", "images-2x2x2.idx.gz", gzip.compress(idx([2, 2, 2], range(8)), mtime=0))
write("idx", "matrix-3x2.idx", idx([3, 2], [5] * 6))

# safetensors: every dtype the reader decodes, a 0-d tensor, an empty tensor, metadata
write("safetensors", "dtypes.safetensors", safetensors({
    "a": ("F64", [2], struct.pack("<2d", 1.5, -2)), "b": ("I64", [], struct.pack("<q", 7)),
    "c": ("I32", [3], struct.pack("<3i", 1, 2, 3)), "d": ("BF16", [2], b"\x80\x3f\x00\x40"),
    "e": ("F32", [0, 4], b"")}, {"k": "v"}))

# checkpoints: placement after, no BatchNorm, PyTorch-style without metadata, with input standardization
w = [5, 3, 2]
write("checkpoint", "after-5-3-2.safetensors", safetensors(seed_state(w, True, "after"), architecture(w, True, "after")))
write("checkpoint", "none-5-3-2.safetensors", safetensors(seed_state(w, False, "before"), architecture(w, False, "before")))
write("checkpoint", "standardized-5-3-2.safetensors", safetensors(
    seed_state(w, True, "before"), {**architecture(w, True, "before"), "input_mean": "0.286", "input_std": "0.353"}))
write("checkpoint", "pytorch-after-5-3-2.safetensors", safetensors(seed_state(w, True, "after")))

# cli: newline-separated arguments for the in-process bnkit target
for name, words in {
    "train": ["train", "--epochs", "1", "--batch-size", "4"],
    "train-none": ["train", "--epochs", "1", "--norm", "none", "--lr", "10", "--checkpoint", "out.safetensors"],
    "train-ranks": ["train", "--epochs", "1", "--ranks", "2", "--batch-size", "8", "--metrics", "m.jsonl", "--placement", "after"],
    "train-input": ["train", "--epochs", "2", "--input-norm", "none", "--weight-decay", "0.01", "--momentum", "0", "--seed", "3"],
    "eval": ["eval", "--checkpoint", "c.safetensors", "--batch-size", "5"],
    "eval-scale": ["eval", "--checkpoint", "c.safetensors", "--input-mean", "0.3", "--input-std", "0.2"],
}.items():
    write("cli", name, "\n".join(words).encode())
