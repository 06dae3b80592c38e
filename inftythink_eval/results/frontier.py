"""Accuracy-cost frontiers: which settings of a model buy accuracy most cheaply, per task.

Owns: the points of a frontier (one per stored setting of a model on a task: its mode, the mode
parameters that tell it apart and the ``max_gen_toks`` budget; the latest record of each), their costs
(TOK, LAT, peak context, and KV tokens where the per-question samples carry ``kv_tokens``), the Pareto
set per cost (no other point has at least the ACC at no more cost, and is better in one), the curves
(one per mode, by cost), and the equal-accuracy table: for each mode, the least cost at which one of
its points reaches a target ACC (default: the best vanilla point's), with paired bootstrap 95%
intervals over the questions both points scored, of the ACC and cost differences against the target
point.  Also the plain-text report ``inftythink sweep`` prints.  Pure functions of ``Record`` lists.

Does not know: where records come from, files, lm-eval, Markdown or plots (``render``, ``plots``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Optional

from inftythink_eval.results import stats
from inftythink_eval.results.records import Record, natural, shown_params

# (cost name, column heading, digits); kv_tokens is read from the per-question samples when present
COSTS = (("tok", "TOK", 0), ("lat", "LAT s", 2), ("peak_ctx", "peak ctx", 0), ("kv_tokens", "KV tokens", 0))
BUDGET_KEY = "max_gen_toks"
EPS = 1e-9


@dataclass(frozen=True)
class Point:
    """One setting of one model on one task, as measured by its latest record."""

    record: Record
    label: str   # "summarize eta=64 max_rounds=4", "vanilla max_gen_toks=256"

    @property
    def mode(self) -> str:
        return self.record.mode

    @property
    def acc(self) -> float:
        return self.record.acc

    def cost(self, name: str) -> Optional[float]:
        """The record's mean cost; for a cost the record has no field for, the mean over its questions."""
        value = getattr(self.record, name, None)
        return value if value is not None else stats.mean([s.get(name) for s in self.record.samples])

    def per_question(self, name: str) -> dict:
        """{doc_id: value} of ``acc`` or a cost, over the questions that carry it."""
        return {s["doc_id"]: s[name] for s in self.record.samples if s.get(name) is not None}


def point_label(record: Record) -> str:
    """The mode, the parameters that tell the run apart (``records.shown_params``) and its ``max_gen_toks``."""
    params = dict(shown_params(record))
    budget = (record.lm_eval_args.get("gen_kwargs") or {}).get(BUDGET_KEY)
    if budget is not None:
        params[BUDGET_KEY] = budget
    return " ".join([record.mode] + [f"{k}={v}" for k, v in params.items()])


def groups(records: list[Record], least: int = 2) -> dict[tuple[str, str], list[Point]]:
    """{(task, model): points} for every task and model with at least ``least`` distinct settings; each setting's
    latest record.  Results first (CI baselines, runs with ``--limit``, after them), then by task in natural
    order (depths by number), then model; points by mode, then TOK."""
    latest: dict[tuple[str, str], dict[str, Record]] = defaultdict(dict)
    for record in sorted(records, key=lambda r: r.date):
        latest[(record.task, record.model)][point_label(record)] = record
    out = {}
    limited = {key: any(r.limit is not None for r in by_label.values()) for key, by_label in latest.items()}
    for key in sorted(latest, key=lambda k: (limited[k], natural(k[0]), k[1])):
        points = [Point(r, label) for label, r in latest[key].items()]
        if len(points) >= least:
            out[key] = sorted(points, key=lambda p: (p.mode != "vanilla", p.mode, _or_inf(p.cost("tok")), p.label))
    return out


def _or_inf(value: Optional[float]) -> float:
    return float("inf") if value is None else value


def costs_of(points: list[Point]) -> list[str]:
    """The costs at least one point measured (``kv_tokens`` only where records carry it)."""
    return [name for name, _h, _d in COSTS if any(p.cost(name) is not None for p in points)]


def dominates(a: Point, b: Point, cost: str) -> bool:
    """``a`` has at least ``b``'s ACC at no more cost, and is strictly better in one of the two."""
    ca, cb = a.cost(cost), b.cost(cost)
    if ca is None or cb is None:
        return False
    return a.acc >= b.acc - EPS and ca <= cb + EPS and (a.acc > b.acc + EPS or ca < cb - EPS)


def pareto(points: list[Point], cost: str = "tok") -> list[Point]:
    """The points no other point dominates on (higher ACC, lower ``cost``); points without the cost are left out."""
    measured = [p for p in points if p.cost(cost) is not None]
    return [p for p in measured if not any(dominates(q, p, cost) for q in measured if q is not p)]


def curves(points: list[Point], cost: str = "tok") -> dict[str, list[Point]]:
    """{mode: its points with the cost, by increasing cost}: one line per mode."""
    out: dict[str, list[Point]] = defaultdict(list)
    for p in sorted((p for p in points if p.cost(cost) is not None), key=lambda p: (p.cost(cost), p.acc)):
        out[p.mode].append(p)
    return dict(out)


def target_point(points: list[Point]) -> Optional[Point]:
    """The best vanilla point (highest ACC; the cheaper on TOK at a tie), or None without a vanilla point."""
    vanilla = [p for p in points if p.mode == "vanilla"]
    return min(vanilla, key=lambda p: (-p.acc, _or_inf(p.cost("tok")), p.label)) if vanilla else None


def paired(ref: Point, other: Point, name: str, iters: int) -> Optional[tuple[float, float, float]]:
    """(mean of other - ref, low, high) of ``name`` per question over the questions both carry; None if none."""
    a, b = ref.per_question(name), other.per_question(name)
    shared = sorted(set(a) & set(b), key=str)
    if not shared:
        return None
    return stats.paired_bootstrap([a[d] for d in shared], [b[d] for d in shared], iters=iters)


@dataclass(frozen=True)
class EqualRow:
    """One (mode, cost) cell of the equal-accuracy table."""

    mode: str
    cost: str
    point: Optional[Point]             # the mode's cheapest point reaching the target; None: not reached
    best: Point                        # the mode's most accurate point (shown when the target is not reached)
    d_acc: Optional[tuple]             # point - target point: ACC (delta, low, high) over shared questions
    d_cost: Optional[tuple]            # point - target point: the cost per question (delta, low, high)


def equal_accuracy(points: list[Point], target: Optional[float] = None, iters: int = 2000
                   ) -> tuple[Optional[Point], Optional[float], list[EqualRow]]:
    """(reference point, target ACC, rows): per mode and cost, the least cost at which the mode reaches the target.

    The target is ``target`` (a proportion) or the best vanilla point's ACC; the reference point for the
    paired intervals is the best vanilla point (with an explicit target and no vanilla point: the most
    accurate point).  No target and no vanilla point: (None, None, [])."""
    ref = target_point(points)
    if target is None and ref is None:
        return None, None, []
    ref = ref or max(points, key=lambda p: (p.acc, -_or_inf(p.cost("tok"))))
    goal = ref.acc if target is None else target
    rows, memo = [], {}

    def delta(point: Point, name: str):  # the cheapest point is often the same for several costs
        if (point.label, name) not in memo:
            memo[(point.label, name)] = paired(ref, point, name, iters)
        return memo[(point.label, name)]

    by_mode: dict[str, list[Point]] = defaultdict(list)
    for p in points:
        by_mode[p.mode].append(p)
    for mode, mine in by_mode.items():
        best = max(mine, key=lambda p: (p.acc, -_or_inf(p.cost("tok"))))
        for cost in costs_of(points):
            reached = [p for p in mine if p.acc >= goal - EPS and p.cost(cost) is not None]
            point = min(reached, key=lambda p: (p.cost(cost), -p.acc, p.label)) if reached else None
            rows.append(EqualRow(mode, cost, point, best, delta(point, "acc") if point else None,
                                 delta(point, cost) if point else None))
    return ref, goal, rows


# --- text shared by the terminal report and the Markdown section (``render``) ----------------------------------
def _num(value: Optional[float], digits: int) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}" if digits == 0 or abs(value) >= 10 else f"{value:.{digits}f}"


def _interval(triple: Optional[tuple], scale: float, digits: int) -> str:
    if triple is None:
        return "–"
    d, lo, hi = (scale * v for v in triple)
    return f"{d:+,.{digits}f} [{lo:+,.{digits}f}, {hi:+,.{digits}f}]"


def point_rows(points: list[Point]) -> tuple[tuple, list[dict]]:
    """(columns, rows) of the points table; ``Pareto`` lists the costs on which the point is Pareto-optimal."""
    costs = costs_of(points)
    heads = {name: (head, digits) for name, head, digits in COSTS}
    on = {p.label: [heads[c][0] for c in costs if p in pareto(points, c)] for p in points}
    columns = ("mode", "point", "ACC (95% CI)", *(heads[c][0] for c in costs), "n×k", "Pareto on")
    rows = []
    for p in points:
        r = p.record
        row = {"mode": p.mode, "point": p.label,
               "ACC (95% CI)": f"{100 * r.acc:.1f} ({100 * r.acc_ci[0]:.1f}–{100 * r.acc_ci[1]:.1f})",
               "n×k": f"{r.n_questions}×{r.samples_per_question}", "Pareto on": " · ".join(on[p.label])}
        row.update({heads[c][0]: _num(p.cost(c), heads[c][1]) for c in costs})
        rows.append(row)
    return columns, rows


EQUAL_COLUMNS = ("mode", "cost", "least cost at target", "at point", "ACC", "ΔACC pts vs reference (95%)",
                 "Δcost vs reference (95%)")


def equal_rows(rows: list[EqualRow]) -> list[dict]:
    heads = {name: (head, digits) for name, head, digits in COSTS}
    out = []
    for row in rows:
        head, digits = heads[row.cost]
        if row.point is None:
            out.append({"mode": row.mode, "cost": head, "least cost at target": "not reached",
                        "at point": f"best: {row.best.label}", "ACC": f"{100 * row.best.acc:.1f}"})
            continue
        out.append({"mode": row.mode, "cost": head, "least cost at target": _num(row.point.cost(row.cost), digits),
                    "at point": row.point.label, "ACC": f"{100 * row.point.acc:.1f}",
                    "ΔACC pts vs reference (95%)": _interval(row.d_acc, 100, 1),
                    "Δcost vs reference (95%)": _interval(row.d_cost, 1, max(digits, 0))})
    return out


def target_note(ref: Optional[Point], goal: Optional[float], explicit: bool) -> str:
    if goal is None:
        return "No vanilla point: no target accuracy (give one with --target-acc)."
    source = "given" if explicit else f"the best vanilla point, {ref.label}"
    return (f"Target ACC {100 * goal:.1f}% ({source}). Reference for Δ: {ref.label}; Δ are means over the questions "
            "both points scored, with paired bootstrap 95% intervals.")


def _text_table(columns: tuple, rows: list[dict]) -> list[str]:
    cells = [list(columns)] + [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]


def report(records: list[Record], target: Optional[float] = None, iters: int = 2000) -> str:
    """The plain-text frontiers of every task and model with at least two settings (``inftythink sweep``)."""
    parts = []
    for (task, model), points in groups(records).items():
        columns, rows = point_rows(points)
        ref, goal, equal = equal_accuracy(points, target, iters)
        lines = [f"{task}  ({model}; {len(points)} points; ACC with 95% interval; Pareto: no other point has "
                 "at least its ACC at no more cost)"] + _text_table(columns, rows)
        lines += ["", "  equal accuracy: " + target_note(ref, goal, target is not None)]
        if equal:
            lines += _text_table(EQUAL_COLUMNS, equal_rows(equal))
        parts.append("\n".join(lines))
    return "\n\n".join(parts) if parts else "No task has two or more points of one model: no frontier to show."
