"""The README's data-parallel cost model, computed from `make bench-mpi`'s figures.

    python3 Scripts/mpi_cost_model.py --machine              # one JSON line: machine, date, load (bench-mpi's first line)
    python3 Scripts/mpi_cost_model.py bench-results/mpi.jsonl [--update-readme README.md]

Model (stated, not measured): one step on R ranks of a global batch B costs
    compute(B/R) + communication(R)
compute(b) = a + c*b, fitted to the measured 1-rank step times at two batch
sizes; communication = the step's collectives as ring all-reduces,
    time(n bytes) = 2(R-1)/R * n / bandwidth + 2(R-1) * latency,
for the gradient buffer (measured bytes), SyncBatchNorm's two moment
gathers (a slot of 1 + 3C Doubles per rank: they grow with R) and its two
backward sums (2C Doubles), and a 16-byte count check before each of the
five. Speedup = compute(B) / step time; efficiency = speedup / R.
Data parallelism stops paying at the first R whose efficiency is below 50 %.
"""
import json
import os
import platform
import sys
import time

RANKS = [1, 2, 4, 8, 16, 32, 64]
BATCHES = [128, 1024]
# (name, bytes/s, per-message latency s): TCP over 10 GbE; RDMA over 100 Gbit/s
NETWORKS = [("10 Gbit/s, 20 µs", 10e9 / 8, 20e-6), ("100 Gbit/s, 3 µs", 100e9 / 8, 3e-6)]
HIDDEN = [256, 64]   # the seed network's SyncBatchNorm widths
BEGIN, END = "<!-- mpi-cost-model:begin -->", "<!-- mpi-cost-model:end -->"


def machine_line():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"machine": platform.node(), "cpu": cpu, "cores": os.cpu_count(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "load": " ".join(f"{x:.1f}" for x in os.getloadavg())}


def ring(n_bytes, ranks, bandwidth, latency):
    if ranks == 1:
        return 0.0
    return 2 * (ranks - 1) / ranks * n_bytes / bandwidth + 2 * (ranks - 1) * latency


def communication(ranks, gradient_bytes, bandwidth, latency):
    syncbn = sum(ring((1 + 3 * c) * ranks * 8, ranks, bandwidth, latency) + ring(2 * c * 8, ranks, bandwidth, latency)
                 for c in HIDDEN)
    checks = 5 * ring(16, ranks, bandwidth, latency)
    return ring(gradient_bytes, ranks, bandwidth, latency) + syncbn + checks


def report(rows):
    machine = next((r for r in rows if "machine" in r), None)
    runs = [r for r in rows if "backend" in r]
    single = {r["batch"]: r["step_ms"] / 1e3 for r in runs if r["backend"] == "mpi" and r["ranks"] == 1}
    mpi2 = next((r for r in runs if r["backend"] == "mpi" and r["ranks"] == 2), None)
    if len(single) < 2 or mpi2 is None:
        sys.exit("mpi_cost_model: need 1-rank MPI steps at two batch sizes and a 2-rank MPI run")
    (b0, t0), (b1, t1) = sorted(single.items())[:2]
    per_sample = (t1 - t0) / (b1 - b0)
    fixed = max(t0 - per_sample * b0, 0.0)
    gradient_bytes = mpi2["allreduce_bytes"]
    lines = []
    if machine:
        # more than half a core busy on average in the last minute: other work shared the machine
        busy = float(str(machine["load"]).split()[0]) > 0.5 * float(machine["cores"])
        lines.append(f"Measured on {machine['machine']} ({machine['cpu']}, {machine['cores']} cores), "
                     f"{machine['date']}, load average {machine['load']} at the start "
                     + ("(a loaded, shared machine: the figures are indicative only)." if busy
                        else "(no other job running)."))
        lines.append("")
    lines += ["| backend | ranks | global batch | samples/s | step ms | all-reduce bytes | all-reduce µs |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        lines.append(f"| {r['backend']} | {r['ranks']} | {r['batch']} | {r['samples_per_second']:.0f} | {r['step_ms']:.2f} | "
                     f"{r['allreduce_bytes'] if r['ranks'] > 1 else '–'} | {r['allreduce_us'] if r['ranks'] > 1 else '–'} |")
    notes = sorted({r["note"] for r in runs if "note" in r})
    if notes:
        lines += ["", "PyTorch side: " + "; ".join(notes) + "."]
    lines += ["", f"Fitted compute per step (1 rank): {fixed * 1e3:.2f} ms + {per_sample * 1e6:.1f} µs per sample; "
              f"gradient all-reduce {gradient_bytes} bytes ({gradient_bytes // 8} Doubles: every parameter, the loss "
              "sum and the correct count) plus SyncBatchNorm's exchanges.", ""]
    verdicts = []
    for name, bandwidth, latency in NETWORKS:
        lines.append(f"Modelled speedup (efficiency) at {name}:")
        lines.append("")
        lines.append("| global batch | " + " | ".join(f"{r} ranks" for r in RANKS[1:]) + " |")
        lines.append("|---:|" + "---:|" * (len(RANKS) - 1))
        for batch in BATCHES:
            whole = fixed + per_sample * batch
            cells, stop = [], None
            for ranks in RANKS[1:]:
                step = fixed + per_sample * batch / ranks + communication(ranks, gradient_bytes, bandwidth, latency)
                speedup = whole / step
                cells.append(f"{speedup:.1f}× ({speedup / ranks:.0%})")
                if stop is None and speedup / ranks < 0.5:
                    stop = ranks
            lines.append(f"| {batch} | " + " | ".join(cells) + " |")
            verdicts.append(f"batch {batch} at {name}: " + (f"below 50 % efficiency from {stop} ranks" if stop
                                                            else "above 50 % efficiency up to 64 ranks"))
        lines.append("")
    lines.append("Where it stops paying (first rank count below 50 % efficiency): " + "; ".join(verdicts) + ".")
    return "\n".join(lines)


def main():
    if sys.argv[1:] == ["--machine"]:
        print(json.dumps(machine_line()))
        return
    with open(sys.argv[1]) as f:
        rows = [json.loads(l) for l in f if l.strip().startswith("{")]
    text = report(rows)
    print(text)
    if "--update-readme" in sys.argv:
        path = sys.argv[sys.argv.index("--update-readme") + 1]
        with open(path) as f:
            readme = f.read()
        if BEGIN not in readme or END not in readme:
            sys.exit(f"mpi_cost_model: {path} has no {BEGIN} … {END} markers")
        head, rest = readme.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        with open(path, "w") as f:
            f.write(head + BEGIN + "\n" + text + "\n" + END + tail)


if __name__ == "__main__":
    main()
