"""The leaderboard's six plots, as inline SVG strings (matplotlib, Agg).

Owns: ACC and TOK against depth on the synthetic task (the depth curve), ACC against TOK per model and mode (one panel per task, an arrow from
each vanilla run to the same model's iterative runs), the accuracy-cost frontiers (ACC against TOK,
one panel per task and model with two or more settings, one line per mode, Pareto points ringed; the
points come from ``frontier``), accuracy by rounds
used (from the traces), the sawtooth of one sample (tokens in context
against tokens generated, vanilla vs iterative), and TOK/LAT distributions
over questions.  Each function returns ``None`` when no record carries the
data it needs, so the page can say so instead of drawing an empty axis.

Does not know: the page around the plots, the store, lm-eval.
"""

from __future__ import annotations

import io
import math
import re
from collections import defaultdict
from typing import Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from inftythink_eval.results import frontier as fr  # noqa: E402
from inftythink_eval.results.records import Record, natural  # noqa: E402

_MARKER_CYCLE = "os^DvP*Xph"


def marker(mode: str) -> str:
    """One marker per registered mode, in the modes' rank order (vanilla o, inftythink s, ...); others x."""
    from inftythink_eval.modes import MODES

    names = list(MODES)
    return _MARKER_CYCLE[names.index(mode) % len(_MARKER_CYCLE)] if mode in names else "x"


def _svg(fig, salt: str) -> str:
    """The figure as an inline ``<svg>`` element (ids salted so several plots can share a page)."""
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": salt, "svg.fonttype": "none"}):
        fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def _label(record: Record) -> str:
    return f"{record.model} · {record.mode}"


def _colors(records: list[Record]) -> dict[str, str]:
    models = sorted({r.model for r in records})
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {m: cycle[i % len(cycle)] for i, m in enumerate(models)}


def acc_vs_tok(records: list[Record], twin_of: Optional[dict] = None) -> Optional[str]:
    """ACC against TOK, one panel per task (the synthetic depth tasks are the depth curve's), an arrow from each
    vanilla run to the same model's iterative runs, or to its twin's (``twin_of``; default: the zoo's cards)."""
    from inftythink_eval.results.render import twins

    usable = [r for r in records if r.tok is not None and depth_of(r.task) is None]
    if not usable:
        return None
    twin_of = twins() if twin_of is None else twin_of
    tasks = sorted({r.task for r in usable}, key=natural)
    cols = min(3, len(tasks))
    rows = math.ceil(len(tasks) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    colors = _colors(usable)
    for ax, task in zip(axes.flat, tasks):
        mine = [r for r in usable if r.task == task]
        for r in mine:
            ax.errorbar(r.tok, 100 * r.acc, yerr=[[max(0.0, 100 * (r.acc - r.acc_ci[0]))], [max(0.0, 100 * (r.acc_ci[1] - r.acc))]],
                        fmt=marker(r.mode), color=colors[r.model], capsize=3, label=_label(r))
        for base in (r for r in mine if r.mode == "vanilla"):
            for other in (r for r in mine if base.model in (r.model, twin_of.get(r.model)) and r.mode != "vanilla"):
                ax.annotate("", (other.tok, 100 * other.acc), (base.tok, 100 * base.acc),
                            arrowprops={"arrowstyle": "->", "color": colors[base.model], "alpha": 0.6})
        ax.set(title=task, xlabel="TOK (mean generated tokens per sample)", ylabel="ACC %", ylim=(-3, 103))
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(tasks):]:
        ax.set_visible(False)
    unique = {}  # every panel's entries, once each (a model may appear in one panel only)
    for ax in axes.flat[:len(tasks)]:
        handles, labels = ax.get_legend_handles_labels()
        for label, handle in zip(labels, handles):
            unique.setdefault(label, handle)
    fig.legend(unique.values(), unique.keys(), loc="lower center", ncol=min(4, len(unique)), bbox_to_anchor=(0.5, -0.02 - 0.04 * math.ceil(len(unique) / 4)))
    fig.suptitle("ACC against TOK (arrows: vanilla → iterative, same model or its vanilla twin, same task)")
    fig.tight_layout()
    return _svg(fig, "acc_vs_tok")


def frontier(records: list[Record]) -> Optional[str]:
    """ACC against TOK per task and model with two or more settings: one line per mode, Pareto points ringed."""
    found = {key: [p for p in points if p.cost("tok") is not None] for key, points in fr.groups(records).items()}
    found = {key: points for key, points in found.items() if len(points) >= 2}
    if not found:
        return None
    cols = min(3, len(found))
    rows = math.ceil(len(found) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.6 * rows), squeeze=False)
    for ax, ((task, model), points) in zip(axes.flat, found.items()):
        for mode, line in fr.curves(points, "tok").items():
            ax.plot([p.cost("tok") for p in line], [100 * p.acc for p in line], marker(mode) + "-", label=mode)
        best = fr.pareto(points, "tok")
        ax.scatter([p.cost("tok") for p in best], [100 * p.acc for p in best], s=160, facecolors="none",
                   edgecolors="black", linewidths=1.2, label="Pareto (ACC vs TOK)", zorder=3)
        ax.set(title=f"{task} · {model}", xlabel="TOK (mean generated tokens per sample)", ylabel="ACC %",
               ylim=(-3, 103))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(found):]:
        ax.set_visible(False)
    fig.suptitle("Accuracy-cost frontiers: one line per mode, Pareto points ringed")
    fig.tight_layout()
    return _svg(fig, "frontier")


def accuracy_by_round(records: list[Record]) -> Optional[str]:
    usable = [r for r in records if r.rounds_hist]
    if not usable:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.8))
    colors = _colors(usable)
    for r in usable:
        xs = [h["rounds"] for h in r.rounds_hist]
        ys = [100 * h["correct"] / h["n"] if h["n"] else 0.0 for h in r.rounds_hist]
        sizes = [20 + 180 * h["n"] / max(1, max(g["n"] for g in r.rounds_hist)) for h in r.rounds_hist]
        ax.plot(xs, ys, "-", color=colors[r.model], alpha=0.5)
        ax.scatter(xs, ys, s=sizes, marker=marker(r.mode), color=colors[r.model],
                   label=f"{_label(r)} · {r.task}")
    ax.set(xlabel="rounds the sample used", ylabel="ACC % of those samples", ylim=(-3, 103),
           title="Accuracy by rounds used (marker size: number of samples)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _svg(fig, "accuracy_by_round")


def _saw_xy(calls: list) -> tuple[list[float], list[float]]:
    xs, ys, generated = [], [], 0
    for _role, prompt, output in calls:
        xs += [generated, generated + output]
        ys += [prompt, prompt + output]
        generated += output
    return xs, ys


def sawtooth_pair(records: list[Record]) -> Optional[tuple[Record, ...]]:
    """A vanilla and an iterative record of one model and task, both with a traced sample (the most rounds first)."""
    by_key = defaultdict(list)
    for r in records:
        if r.sawtooth.get("calls"):
            by_key[(r.model, r.task)].append(r)
    pairs = []
    for group in by_key.values():
        van = [r for r in group if r.mode == "vanilla"]
        its = sorted((r for r in group if r.mode != "vanilla"), key=lambda r: -len(r.sawtooth["calls"]))
        if its:
            pairs.append(tuple(van[:1]) + (its[0],))
    return max(pairs, key=lambda p: (len(p), len(p[-1].sawtooth["calls"]))) if pairs else None


def sawtooth(records: list[Record]) -> Optional[str]:
    pair = sawtooth_pair(records)
    if pair is None:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for r in pair:
        xs, ys = _saw_xy(r.sawtooth["calls"])
        ax.plot(xs, ys, marker(r.mode) + "-", markersize=3, label=f"{r.mode} (doc {r.sawtooth.get('doc_id')})")
    ax.set(xlabel="tokens generated so far (all calls)", ylabel="tokens in context",
           title=f"Sawtooth: one sample of {pair[-1].task}, {pair[-1].model}")
    ax.grid(alpha=0.3)
    ax.legend()
    return _svg(fig, "sawtooth")


def distributions(records: list[Record]) -> Optional[str]:
    series = {name: {(_label(r) + f" · {r.task}"): [s[name] for s in r.samples if s.get(name) is not None]
                     for r in records} for name in ("tok", "lat")}
    series = {name: {k: v for k, v in rows.items() if v} for name, rows in series.items()}
    if not any(series.values()):
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, (name, unit) in zip(axes, (("tok", "generated tokens per question"), ("lat", "seconds per question"))):
        rows = series[name]
        if rows:
            ax.boxplot(list(rows.values()), orientation="horizontal")
            ax.set_yticks(range(1, len(rows) + 1), list(rows.keys()), fontsize=7)
        ax.set(title=f"{name.upper()} distribution", xlabel=unit)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _svg(fig, "distributions")


def depth_of(task: str) -> Optional[int]:
    """The depth of a synthetic depth task (``inftythink_synthetic_d24`` -> 24), else None."""
    match = re.search(r"_d(\d+)$", task)
    return int(match.group(1)) if match and "synthetic" in task else None


def depth_lines(records: list[Record]) -> dict[tuple[str, str], dict[int, Record]]:
    """{(model, mode): {depth: record}} from the synthetic depth tasks: per model and mode the setting (mode
    parameters and budget, ``frontier.point_label``) measured at the most depths (a curve run, not a sweep's
    point at a few depths; ties: the latest), its latest record per depth."""
    settings = defaultdict(lambda: defaultdict(dict))
    for r in sorted(records, key=lambda r: r.date):
        depth = depth_of(r.task)
        if depth is not None:
            settings[(r.model, r.mode)][fr.point_label(r)][depth] = r
    lines = {}
    for key, by_label in settings.items():
        newest = {label: max(r.date for r in points.values()) for label, points in by_label.items()}
        lines[key] = by_label[max(by_label, key=lambda label: (len(by_label[label]), newest[label]))]
    return lines


def depth_curve(records: list[Record]) -> Optional[str]:
    """ACC and TOK against depth, one line per (model, mode) (``depth_lines``), from the synthetic depth tasks."""
    lines = depth_lines(records)
    if not lines:
        return None
    fig, (acc_ax, tok_ax) = plt.subplots(1, 2, figsize=(10, 3.8))
    colors = _colors([r for points in lines.values() for r in points.values()])
    for (model, mode), points in sorted(lines.items()):
        depths = sorted(points)
        style = dict(marker=marker(mode), color=colors[model], label=f"{model} · {mode}")
        acc_ax.plot(depths, [100 * points[d].acc for d in depths], "-", **style)
        tok_ax.plot(depths, [points[d].tok or 0 for d in depths], "-", **style)
    acc_ax.set(xscale="log", xlabel="depth (steps of the synthetic task)", ylabel="ACC %", ylim=(-3, 103),
               title="ACC by depth")
    tok_ax.set(xscale="log", yscale="log", xlabel="depth", ylabel="TOK (mean generated tokens)", title="TOK by depth")
    for ax in (acc_ax, tok_ax):
        ax.grid(alpha=0.3)
    acc_ax.legend(fontsize=7)
    fig.tight_layout()
    return _svg(fig, "depth_curve")


PLOTS = {"depth-curve": ("The depth curve: measured ACC and TOK of the CPU-scale models by depth", depth_curve),
         "acc-vs-tok": ("ACC against TOK per model and mode (the depth tasks: see the depth curve)", acc_vs_tok),
         "frontier": ("Accuracy-cost frontiers: ACC against TOK per task and model, one line per mode", frontier),
         "accuracy-by-round": ("Accuracy by round (from the traces)", accuracy_by_round),
         "sawtooth": ("The sawtooth of one sample: tokens in context against tokens generated", sawtooth),
         "distributions": ("TOK and LAT distributions over questions", distributions)}

EMPTY = {"frontier": "No task has two or more settings of one model yet: run <code>inftythink sweep</code> "
                     "(docs/leaderboard.md) to measure a frontier."}
