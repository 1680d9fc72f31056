#!/usr/bin/env python3
"""Draw the BatchNorm lab's charts and write its report.

    .venv/bin/python Scripts/plot_report.py [DIR]      (DIR: report/ by default)

Reads DIR/summary.json and the CSVs `bnkit lab` wrote there (every number and
every verdict is computed by the Swift lab; this script only draws and lays
out), writes DIR/NN-name.png per experiment, DIR/REPORT.md and a
self-contained DIR/index.html (charts embedded as base64 PNG).
"""

import base64
import csv
import datetime
import html
import json
import math
import os
import platform
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"batchnorm": "#1f77b4", "none": "#d62728", "layernorm": "#2ca02c", "groupnorm": "#9467bd",
          "before": "#1f77b4", "after": "#ff7f0e", "batchnorm2d": "#1f77b4", "instancenorm": "#8c564b"}
LABELS = {"batchnorm": "BatchNorm", "none": "no normalization", "layernorm": "LayerNorm", "groupnorm": "GroupNorm (8 groups)",
          "before": "before ReLU (Linear→BN→ReLU)", "after": "after ReLU (Linear→ReLU→BN)"}
BADGE = {"holds": "#1a7f37", "not shown": "#9a6700", "reversed": "#cf222e"}


def rows(directory, name):
    path = os.path.join(directory, name + ".csv")
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def num(text):
    try:
        value = float(text)
    except (TypeError, ValueError):
        return math.nan
    return value


def mean_std(values):
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return math.nan, math.nan
    m = sum(values) / len(values)
    s = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return m, s


def grouped(data, key, x, y):
    """{key value: (sorted xs, means, stds)} of y over seeds."""
    table = defaultdict(lambda: defaultdict(list))
    for r in data:
        table[r[key]][num(r[x])].append(num(r[y]))
    out = {}
    for k, by_x in table.items():
        xs = sorted(by_x)
        stats = [mean_std(by_x[v]) for v in xs]
        out[k] = (xs, [s[0] for s in stats], [s[1] for s in stats])
    return out


def band(ax, xs, means, stds, key, label=None, marker="o"):
    color = COLORS.get(key)
    ax.plot(xs, means, marker=marker, color=color, label=label or LABELS.get(key, key), markersize=4)
    lo = [m - s for m, s in zip(means, stds)]
    hi = [m + s for m, s in zip(means, stds)]
    ax.fill_between(xs, lo, hi, color=color, alpha=0.2, linewidth=0)


def finish(fig, path, title):
    fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def percent_axis(ax):
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v * 100:.0f}%" if abs(v * 100 - round(v * 100)) < 1e-9 else f"{v * 100:.1f}%"))


def seeds_note(data):
    return len({r["seed"] for r in data})


# ---- one chart per experiment ------------------------------------------------

def chart_convergence(d, out):
    data = rows(d, "01-convergence")
    n = seeds_note(data)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for key, (xs, m, s) in grouped(data, "norm", "epoch", "test_accuracy").items():
        band(axes[0], xs, m, s, key)
    for key, (xs, m, s) in grouped(data, "norm", "epoch", "test_loss").items():
        band(axes[1], xs, m, s, key)
    axes[0].set(xlabel="epoch", ylabel="test accuracy", title=f"test accuracy (mean ± std, {n} seeds)")
    percent_axis(axes[0])
    axes[1].set(xlabel="epoch", ylabel="test cross-entropy (nats/sample)", title=f"test loss (mean ± std, {n} seeds)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    finish(fig, out, "1. Faster convergence: same init, same lr 0.1")


def sweep_chart(ax, data, xkey, title, xlabel):
    by = defaultdict(lambda: defaultdict(list))
    for r in data:
        by[r["norm"]][num(r[xkey])].append((num(r["test_accuracy"]), r["diverged"]))
    for key, table in by.items():
        xs = sorted(table)
        stats = [mean_std([a for a, _ in table[x]]) for x in xs]
        ax.errorbar(xs, [s[0] for s in stats], yerr=[s[1] for s in stats], marker="o", capsize=3,
                    color=COLORS.get(key), label=LABELS.get(key, key))
        for x in xs:
            diverged = sum(1 for _, dv in table[x] if dv)
            if diverged:
                ax.plot([x], [0.05], marker="x", color=COLORS.get(key), markersize=9, mew=2)
                ax.annotate(f"{diverged}/{len(table[x])} diverged", (x, 0.05), textcoords="offset points",
                            xytext=(4, 6 if key == "batchnorm" else -12), fontsize=8, color=COLORS.get(key))
    ax.set_xscale("log")
    ax.set_ylim(0, 1)
    ax.set(xlabel=xlabel, ylabel="final test accuracy", title=title)
    percent_axis(ax)
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower left")


def chart_lr(d, out):
    data = rows(d, "02-learning-rates")
    fig, ax = plt.subplots(figsize=(8, 4.5))
    sweep_chart(ax, data, "learning_rate", f"final test accuracy (mean ± std over {seeds_note(data)} seeds; × = diverged, not counted)",
                "learning rate (log scale)")
    finish(fig, out, "2. Larger learning rates")


def chart_init(d, out):
    data = rows(d, "03-initialization")
    fig, ax = plt.subplots(figsize=(8, 4.5))
    sweep_chart(ax, data, "init_scale", f"final test accuracy (mean ± std over {seeds_note(data)} seeds; × = diverged)",
                "scale of the default weight init (log scale)")
    finish(fig, out, "3. Dependence on initialization")


def chart_vanishing(d, out):
    everything = rows(d, "04-vanishing-gradients")
    data = [r for r in everything if num(r["init_scale"]) == 1]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    init = [r for r in data if r["step"] == "1"]
    for key, (xs, m, s) in grouped(init, "norm", "layer", "weight_grad_norm").items():
        axes[0].errorbar(xs, m, yerr=s, marker="o", capsize=3, color=COLORS.get(key), label=LABELS.get(key, key))
    axes[0].set_yscale("log")
    axes[0].set(xlabel="Linear layer (1 = input side; last = head)", ylabel="‖∂L/∂W‖ (Frobenius, log scale)",
                title="gradient norm per layer at the first step")
    first = [r for r in data if r["layer"] == "1"]
    for key, (xs, m, s) in grouped(first, "norm", "step", "weight_grad_norm").items():
        band(axes[1], xs, m, s, key, marker=".")
    axes[1].set_yscale("log")
    axes[1].set(xlabel="training step", ylabel="‖∂L/∂W₁‖ (log scale)", title="first layer's gradient norm during training")
    sat = [r for r in everything if math.isfinite(num(r["saturated_fraction"]))]
    per = defaultdict(lambda: defaultdict(list))
    for r in sat:
        per[(r["norm"], num(r["init_scale"]))][(r["seed"], num(r["step"]))].append(num(r["saturated_fraction"]))
    for (key, scale), table in sorted(per.items()):
        by_step = defaultdict(list)
        for (seed, step), values in table.items():
            by_step[step].append(sum(values) / len(values))
        xs = sorted(by_step)
        stats = [mean_std(by_step[x]) for x in xs]
        label = f"{LABELS.get(key, key)}, init ×{scale:g}"
        axes[2].plot(xs, [m for m, _ in stats], "-" if scale == 1 else "--", marker=".", color=COLORS.get(key), label=label)
        axes[2].fill_between(xs, [m - s for m, s in stats], [m + s for m, s in stats], color=COLORS.get(key), alpha=0.15, linewidth=0)
    axes[2].set(xlabel="training step", ylabel="saturated units (σ′ < 5 % of peak)",
                title="saturation, all hidden layers")
    percent_axis(axes[2])
    for ax in axes:
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    finish(fig, out, f"4. Deep sigmoid network: vanishing gradients (default init) and saturation ({seeds_note(data)} seeds, mean ± std)")


def small_batch_panels(data, batchnorm, labels, title, out):
    """Eval-mode accuracy per norm over batch sizes, and BatchNorm's train- vs eval-mode accuracy."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for key, (xs, m, s) in grouped(data, "norm", "batch_size", "test_accuracy").items():
        axes[0].errorbar(xs, m, yerr=s, marker="o", capsize=3, color=COLORS.get(key), label=labels.get(key, key))
    axes[0].set(xlabel="batch size (log scale)", ylabel="test accuracy (eval mode)", title="accuracy after the same samples seen")
    bn = [r for r in data if r["norm"] == batchnorm]
    for column, label, color in [("test_accuracy", "eval mode (running statistics)", "#1f77b4"),
                                 ("train_mode_accuracy", "train mode (statistics of each test batch)", "#ff7f0e")]:
        stats = grouped(bn, "norm", "batch_size", column).get(batchnorm)
        if stats:
            axes[1].errorbar(stats[0], stats[1], yerr=stats[2], marker="o", capsize=3, color=color, label=label)
    axes[1].set(xlabel="batch size (log scale)", ylabel=f"{labels.get(batchnorm, batchnorm)} test accuracy",
                title=f"{labels.get(batchnorm, batchnorm)}: train-mode vs eval-mode predictions")
    for ax in axes:
        ax.set_xscale("log", base=2)
        percent_axis(ax)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    finish(fig, out, f"{title} ({seeds_note(data)} seeds, mean ± std)")


def chart_small_batches(d, out):
    small_batch_panels(rows(d, "05-small-batches"), "batchnorm", LABELS, "5. Small batches", out)


def chart_cnn_small_batches(d, out):
    labels = {"batchnorm2d": "BatchNorm2d", "groupnorm": "GroupNorm", "instancenorm": "InstanceNorm"}
    small_batch_panels(rows(d, "11-cnn-small-batches"), "batchnorm2d", labels,
                       "11. Small batches in a CNN: BatchNorm2d vs GroupNorm vs InstanceNorm", out)


def strip(ax, groups, ylabel, title, fmt_percent=True):
    names = list(groups)
    for i, name in enumerate(names):
        values = [v for v in groups[name] if math.isfinite(v)]
        m, s = mean_std(values)
        ax.scatter([i] * len(values), values, color="#555", s=14, zorder=3, label="one seed" if i == 0 else None)
        ax.errorbar([i + 0.15], [m], yerr=[s], marker="D", color="#d62728", capsize=4, zorder=4,
                    label="mean ± std" if i == 0 else None)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, fontsize=8)
    ax.set(ylabel=ylabel, title=title)
    if fmt_percent:
        percent_axis(ax)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)


def chart_placement(d, out):
    data = rows(d, "06-placement")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    curves = grouped(data, "placement", "epoch", "test_accuracy")
    for key, (xs, m, s) in curves.items():
        band(axes[0], xs, m, s, key)
    axes[0].set(xlabel="epoch", ylabel="test accuracy", title=f"test accuracy (mean ± std, {seeds_note(data)} seeds)")
    percent_axis(axes[0])
    axes[0].grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    last = max(num(r["epoch"]) for r in data)
    final = defaultdict(list)
    for r in data:
        if num(r["epoch"]) == last:
            final[LABELS[r["placement"]].split(" (")[0]].append(num(r["test_accuracy"]))
    strip(axes[1], final, "final test accuracy", f"after epoch {last:.0f}, every seed")
    finish(fig, out, "6. Placement: BatchNorm before or after ReLU")


def chart_dropout(d, out):
    data = rows(d, "07-dropout")
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    acc, ratio = defaultdict(list), defaultdict(list)
    for r in data:
        name = r["configuration"].replace(" + ", "\n+ ")
        acc[name].append(num(r["test_accuracy"]))
        if math.isfinite(num(r["eval_var_over_running_var"])):
            ratio[name].append(num(r["eval_var_over_running_var"]))
    strip(axes[0], acc, "final test accuracy", "accuracy, every seed")
    strip(axes[1], ratio, "eval-mode variance / running_var", "variance shift at the 2nd BatchNorm (1 = none)", fmt_percent=False)
    axes[1].axhline(1, color="#888", linestyle="--", linewidth=1)
    finish(fig, out, f"7. Dropout with BatchNorm ({seeds_note(data)} seeds)")


def chart_landscape(d, out):
    data = [r for r in rows(d, "08-landscape") if not r["diverged"]]
    fig, axes = plt.subplots(1, 4, figsize=(16, 4))
    specs = [("loss_range", "max − min of L(θ − ηg) (nats)", "loss variation along the gradient", False),
             ("gradient_change", "max ‖∇L(θ − ηg) − ∇L(θ)‖", "gradient predictiveness (lower: more predictive)", False),
             ("beta_smoothness", "max ‖Δ∇L‖ / ‖ηg‖", "effective β-smoothness", False),
             ("lambda_max", "top Hessian eigenvalue", "λ_max (Lanczos)", False)]
    for ax, (column, ylabel, title, log) in zip(axes, specs):
        for key, (xs, m, s) in grouped(data, "norm", "epoch", column).items():
            band(ax, xs, m, s, key)
        ax.set(xlabel="epoch (0 = init)", ylabel=ylabel, title=title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    finish(fig, out, f"8. Landscape along the gradient (Santurkar et al. 2018), {seeds_note(data)} seeds, mean ± std")


def chart_ics(d, out):
    data = rows(d, "09-covariate-shift")
    layer = max(r["layer"] for r in data if r["quantity"] == "layer_input")
    sel = [r for r in data if r["quantity"] == "layer_input" and r["layer"] == layer]
    shift_path = os.path.join(d, "09-santurkar-ics.csv")
    shift = [r for r in rows(d, "09-santurkar-ics") if r["layer"] == layer] if os.path.exists(shift_path) else []
    fig, axes = plt.subplots(1, 3 if shift else 2, figsize=(16 if shift else 11, 4))
    if shift:
        for key, (xs, m, s) in grouped(shift, "norm", "step", "relative_gradient_change").items():
            band(axes[2], xs, m, s, key, marker=".")
        axes[2].set(xlabel="training step", ylabel="‖G′ − G‖ / ‖G‖",
                    title=f"Santurkar's ICS: Linear {layer}'s gradient after earlier layers step")
        axes[2].grid(alpha=0.3)
        axes[2].legend(fontsize=8)
    for key, (xs, m, s) in grouped(sel, "norm", "step", "mean").items():
        band(axes[0], xs, m, s, key, marker=".")
    for key, (xs, m, s) in grouped(sel, "norm", "step", "std").items():
        band(axes[1], xs, m, s, key, marker=".")
    axes[0].set(xlabel="training step", ylabel="mean of the layer's input", title=f"Linear {layer}'s input: mean")
    axes[1].set(xlabel="training step", ylabel="std of the layer's input", title=f"Linear {layer}'s input: standard deviation")
    for ax in axes[:2]:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    finish(fig, out, f"9. Internal covariate shift: what layer {layer} receives ({seeds_note(sel)} seeds, mean ± std)")


def chart_regularization(d, out):
    data = [r for r in rows(d, "10-regularization") if not r["diverged"]]
    noise = rows(d, "10-batch-noise")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for column, style in [("train_accuracy", "--"), ("test_accuracy", "-")]:
        for key, (xs, m, s) in grouped(data, "norm", "epoch", column).items():
            axes[0].plot(xs, m, style, marker="o", markersize=3, color=COLORS.get(key),
                         label=f"{LABELS.get(key, key)}, {'train' if column.startswith('train') else 'test'}")
            axes[0].fill_between(xs, [a - b for a, b in zip(m, s)], [a + b for a, b in zip(m, s)], color=COLORS.get(key), alpha=0.15)
    axes[0].set(xlabel="epoch", ylabel="accuracy (eval mode)", title="train (dashed) and test (solid) accuracy on a small training set")
    percent_axis(axes[0])
    stats = grouped(noise, "seed", "batch_size", "mean_noise")
    by_b = defaultdict(list)
    for r in noise:
        by_b[num(r["batch_size"])].append(num(r["mean_noise"]))
    xs = sorted(by_b)
    ms = [mean_std(by_b[x]) for x in xs]
    axes[1].errorbar(xs, [m for m, _ in ms], yerr=[s for _, s in ms], marker="o", capsize=3, label="measured (mean ± std over seeds)")
    axes[1].plot(xs, [1 / math.sqrt(x) for x in xs], "--", color="#888", label="1/√B")
    axes[1].set_xscale("log", base=2)
    axes[1].set_yscale("log")
    axes[1].set(xlabel="batch size B (log scale)", ylabel="RMS of (μ_B − μ)/σ (log scale)", title="noise of the batch mean, first BatchNorm")
    for ax in axes:
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    del stats
    finish(fig, out, "10. Regularization and batch-statistics noise")


CHARTS = {1: chart_convergence, 2: chart_lr, 3: chart_init, 4: chart_vanishing, 5: chart_small_batches,
          6: chart_placement, 7: chart_dropout, 8: chart_landscape, 9: chart_ics, 10: chart_regularization,
          11: chart_cnn_small_batches}


# ---- the report ----------------------------------------------------------------

def machine():
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else "report"
    summary_path = os.path.join(directory, "summary.json")
    with open(summary_path) as handle:
        summary = json.load(handle)
    date = datetime.datetime.fromtimestamp(os.path.getmtime(summary_path), datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    host = summary.get("machine") or machine()
    experiments = summary["experiments"]
    for e in experiments:
        png = os.path.join(directory, e["slug"] + ".png")
        CHARTS[e["number"]](directory, png)
        e["png"] = png
    head = (f"Mode **{summary['mode']}**; {summary['data']}; {summary['threads']} thread(s); total wall time "
            f"{summary['seconds']:.0f} s; measured {date} on {host} (shared with other jobs: wall times are not benchmarks). "
            "To fit the budget the runs use a subsample of the training split and fewer epochs than the lesson's 10 "
            "where the claim allows; each experiment's settings say exactly what it used.")
    md = ["# The BatchNorm lab", "",
          "Every claim of the seed lesson (`batchnorm-lesson.txt`), measured with BatchNormKit's own engine. "
          "Written by `make report` (`bnkit lab`, then `Scripts/plot_report.py`); every verdict is computed by the "
          "rule stated under it, never typed in.", "", head, "",
          "| # | claim (the lesson) | verdict | key figure |", "|---|---|---|---|"]
    for e in experiments:
        v = e["verdicts"][0]
        md.append(f"| {e['number']} | {e['title']}: {v['name']} | **{v['outcome']}** | {v['figure']} |")
    for e in experiments:
        md += ["", f"## {e['number']}. {e['title']}", "", f"> {e['claim']}", "", f"**Question.** {e['question']}", "",
               f"![{e['title']}]({os.path.basename(e['png'])})", ""]
        for v in e["verdicts"]:
            md.append(f"- **{v['name']}: {v['outcome']}** — {v['figure']}. *Rule:* {v['rule']}.")
        for note in e["notes"]:
            md.append(f"- {note}")
        md += ["", f"*Settings:* {e['settings']}. *Wall time:* {e['seconds']:.0f} s."]
    with open(os.path.join(directory, "REPORT.md"), "w") as handle:
        handle.write("\n".join(md) + "\n")

    def badge(outcome):
        return f'<span class="badge" style="background:{BADGE.get(outcome, "#555")}">{html.escape(outcome)}</span>'

    parts = ["<!doctype html><html lang='en'><head><meta charset='utf-8'><title>The BatchNorm lab</title><style>",
             "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#1f2328;line-height:1.45}",
             "table{border-collapse:collapse;width:100%}td,th{border:1px solid #d0d7de;padding:6px 8px;vertical-align:top;text-align:left}",
             "th{background:#f6f8fa}.badge{color:#fff;border-radius:10px;padding:1px 8px;font-size:0.85em;white-space:nowrap}",
             "blockquote{border-left:4px solid #d0d7de;margin:0.5em 0;padding:0.2em 1em;color:#57606a}",
             "img{max-width:100%;border:1px solid #eee}.meta{color:#57606a;font-size:0.9em}section{margin-top:2.5em}",
             "</style></head><body><h1>The BatchNorm lab</h1>",
             "<p>Every claim of the seed lesson, measured with BatchNormKit's own engine; every verdict is computed by the rule stated under it.</p>",
             f"<p class='meta'>{html.escape(head.replace('**', ''))}</p>",
             "<table><tr><th>#</th><th>claim</th><th>verdict</th><th>key figure</th></tr>"]
    for e in experiments:
        v = e["verdicts"][0]
        parts.append(f"<tr><td><a href='#e{e['number']}'>{e['number']}</a></td><td>{html.escape(e['title'])}: {html.escape(v['name'])}</td>"
                     f"<td>{badge(v['outcome'])}</td><td>{html.escape(v['figure'])}</td></tr>")
    parts.append("</table>")
    for e in experiments:
        with open(e["png"], "rb") as handle:
            data = base64.b64encode(handle.read()).decode()
        parts += [f"<section id='e{e['number']}'><h2>{e['number']}. {html.escape(e['title'])}</h2>",
                  f"<blockquote>{html.escape(e['claim'])}</blockquote>", f"<p><b>Question.</b> {html.escape(e['question'])}</p>",
                  f"<img alt='{html.escape(e['title'])}' src='data:image/png;base64,{data}'>", "<ul>"]
        for v in e["verdicts"]:
            parts.append(f"<li>{badge(v['outcome'])} <b>{html.escape(v['name'])}</b> — {html.escape(v['figure'])}<br>"
                         f"<span class='meta'>Rule: {html.escape(v['rule'])}</span></li>")
        for note in e["notes"]:
            parts.append(f"<li class='meta'>{html.escape(note)}</li>")
        parts += ["</ul>", f"<p class='meta'>Settings: {html.escape(e['settings'])}. Wall time: {e['seconds']:.0f} s.</p></section>"]
    parts.append("</body></html>")
    with open(os.path.join(directory, "index.html"), "w") as handle:
        handle.write("\n".join(parts) + "\n")
    print(f"wrote {len(experiments)} charts, {directory}/REPORT.md and {directory}/index.html")


if __name__ == "__main__":
    main()
