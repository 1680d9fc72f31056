"""The speed targets of issue 13, shared by bench_torch.py and bench_table.py.

target_ratio(name, threads): BatchNormKit's median must be ≤ PyTorch's median
/ ratio at that thread count (None: no target for that case there).
BOUND_TARGET: the share of the measured memory bound every bn.*, bn-relu.*
and gn.* case of at least BOUND_MIN_BYTES of working set must reach on one
thread.
"""

BOUND_TARGET = 80.0
BOUND_MIN_BYTES = 8 << 20


def target_ratio(name, threads):
    if name.startswith(("bn.", "gn.")) and ("(256, 256)" in name or "(256, 64)" in name):
        return 3.0 if threads == 1 else None
    if name.startswith("bn-relu.") and ("(4096, 1024)" in name or "(16384, 256)" in name):
        return 2.0 if threads == 1 else None
    if name.startswith("epoch"):
        return 2.0
    if name == "step N=256":
        return 1.7 if threads == 1 else None
    if name == "inference N=256":
        return 2.0 if threads == 1 else None
    return None


def bound_target_applies(case):
    """Whether a bench case (bnkbench JSON) is held to BOUND_TARGET."""
    working_set = (case.get("limit") or {}).get("working_set_bytes")
    return (case["name"].startswith(("bn.", "bn-relu.", "gn."))
            and working_set is not None and working_set >= BOUND_MIN_BYTES)
