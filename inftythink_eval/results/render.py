"""``leaderboard/LEADERBOARD.md``: tables per benchmark group, vanilla vs iterative deltas.

Owns: the table layout shared by the Markdown and HTML pages (``table_rows``:
one row per stored record, its params the mode's own and the ``max_gen_toks``
budget it ran with, grouped and sorted, with deltas against the same model's
vanilla run on the same task, else its vanilla twin's), the groups' headings (``group_title``:
the registry's group title and its benchmarks' titles), the reported-rows
tables, number formatting, and the Markdown text (``markdown``).

Does not know: which groups and benchmarks exist (the task-family registry,
``scoring.families``), where records come from, writing files (``write``),
matplotlib (``plots``), HTML markup (``page``).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Optional

from inftythink_eval.results import frontier, reference
from inftythink_eval.results.records import Record, natural, shown_params
from inftythink_eval.scoring import families

COLUMNS = ("model", "mode", "params", "ACC (95% CI)", "ΔACC", "pass@k · maj@k", "TOK", "ΔTOK", "LAT s", "rounds",
           "peak ctx", "n×k", "engine · hardware", "commit", "date", "id")
REPORTED_COLUMNS = ("paper", "model", "method", "η", "ACC", "ΔACC", "TOK", "TPS", "LAT", "source")
REPORTED_NOTE = ("Numbers printed in the InftyThink paper (arXiv 2503.06692; greedy or 16 samples) and the InftyThink+ "
                 "paper (arXiv 2602.06960; 32 samples at T=0.7, LAT in seconds on the authors' GPUs) for models their "
                 "authors trained; copied from PROTOCOL.md and PROTOCOL_PLUS.md with citations. ΔACC is against the "
                 "same paper's vanilla (SFT) row of the same model. Reference points, not results of this code.")
VANILLA_METHODS = ("vanilla", "vanilla SFT")


def group_title(group: str) -> str:
    """A group's heading: its registered title, then its benchmarks' titles (``Paper benchmarks (MATH500, ...)``)."""
    titles = [b.title for b in families.members(group)]
    return families.GROUPS[group].title + (f" ({', '.join(titles)})" if titles else "")


def pct(value: Optional[float], digits: int = 1) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f}"


def num(value: Optional[float], digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}" if abs(value) >= 10 or digits == 0 else f"{value:.{max(digits, 2)}f}"


def signed(value: Optional[float], scale: float = 1.0, digits: int = 1) -> str:
    return "–" if value is None else f"{scale * value:+.{digits}f}"


def mode_params_text(record: Record) -> str:
    """The run's mode parameters as its sidecar recorded them (``records.shown_params``), as ``k=v`` words."""
    return " ".join(f"{k}={v}" for k, v in shown_params(record).items())


def model_text(record: Record) -> str:
    """The model, marked as a CI baseline when the run used --limit (a pipeline check, not a benchmark result)."""
    if record.limit is None:
        return record.model
    return f"{record.model} [CI baseline: --limit {record.limit:g}, not a result]"


def twins() -> dict[str, str]:
    """{model: its vanilla twin}, as the zoo's cards declare them (``vanilla_twin``)."""
    from inftythink_eval.checkpoints.cards import vanilla_twins

    return vanilla_twins()


def baseline(record: Record, vanilla: dict, twin_of: dict) -> tuple[Optional[Record], str]:
    """The vanilla run a record's Δ columns compare with, and how it is named: the same model's latest vanilla
    run on the task (""), else its vanilla twin's (" twin"); (None, "") when there is neither."""
    own = vanilla.get((record.model, record.task))
    if own is not None:
        return own, ""
    twin = vanilla.get((twin_of.get(record.model), record.task))
    return (twin, " twin") if twin is not None else (None, "")


def _vanilla_of(records: list[Record]) -> dict[tuple[str, str], Record]:
    """Latest vanilla record per (model, task)."""
    best: dict[tuple[str, str], Record] = {}
    for record in sorted(records, key=lambda r: r.date):
        if record.mode == "vanilla":
            best[(record.model, record.task)] = record
    return best


def table_rows(records: list[Record], twin_of: Optional[dict] = None) -> dict[str, dict[str, list[dict]]]:
    """{group: {task: [row, ...]}}: each row a dict of ``COLUMNS`` (text) plus ``record``; tasks in natural
    order (depths by number), Δ against the model's vanilla run or its twin's (``twin_of``; default: the zoo)."""
    vanilla = _vanilla_of(records)
    twin_of = twins() if twin_of is None else twin_of
    out: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for record in sorted(records, key=lambda r: (natural(r.task), r.limit is not None, r.model, r.mode != "vanilla",
                                                 r.mode, r.date)):
        base, twin = baseline(record, vanilla, twin_of)
        delta = base is not None and base is not record
        row = {
            "model": model_text(record), "mode": record.mode, "params": frontier.point_label(record)[len(record.mode):].strip(),
            "ACC (95% CI)": f"{pct(record.acc)} ({pct(record.acc_ci[0])}–{pct(record.acc_ci[1])})",
            "ΔACC": signed(record.acc - base.acc, 100) + twin if delta else "", "pass@k · maj@k": _at_k(record),
            "TOK": num(record.tok), "ΔTOK": _rel(record.tok, base.tok) + twin if delta else "",
            "LAT s": num(record.lat, 2), "rounds": num(record.rounds, 2), "peak ctx": num(record.peak_ctx),
            "n×k": f"{record.n_questions}×{record.samples_per_question}",
            "engine · hardware": f"{record.engine} · {record.hardware}",
            "commit": record.git_commit[:8], "date": record.date[:10], "id": record.record_id, "record": record,
        }
        out[record.group][record.task].append(row)
    return {g: dict(out[g]) for g in families.group_order() if g in out}


def _at_k(record: Record) -> str:
    """pass@k and maj@k at the largest k the run measured (k <= samples per question)."""
    parts = []
    for kind, table in (("pass", record.pass_at_k), ("maj", record.maj_at_k)):
        known = {int(name.split("@")[1]): v for name, v in table.items() if v is not None}
        if known:
            k = max(known)
            parts.append(f"{kind}@{k} {pct(known[k])}")
    return " · ".join(parts)


def _rel(value: Optional[float], base: Optional[float]) -> str:
    if value is None or base in (None, 0):
        return "–"
    return f"{100 * (value / base - 1):+.0f}%"


def reported_rows(rows: list[reference.ReportedRow]) -> dict[str, list[dict]]:
    """{benchmark: [row, ...]} of the papers' numbers, with deltas against the same model's vanilla (SFT) row."""
    base = {(r.model, r.benchmark): r for r in rows if r.method in VANILLA_METHODS and r.acc is not None}
    out: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        b = base.get((r.model, r.benchmark))
        out[r.benchmark].append({
            "paper": r.paper, "model": r.model, "method": r.method, "η": str(r.eta or ""), "ACC": pct(r.acc),
            "ΔACC": signed(r.acc - b.acc, 100) if b is not None and r.acc is not None and r is not b else "",
            "TOK": num(r.tok), "TPS": num(r.tps), "LAT": num(r.lat, 2),
            "source": ("" if r.verified else "UNVERIFIED · ") + r.citation, "row": r})
    return dict(out)


def _md_table(columns: tuple, rows: list[dict]) -> list[str]:
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return lines + ["| " + " | ".join(esc(row.get(c, "")) for c in columns) + " |" for row in rows]


FRONTIER_NOTE = ("Every task and model with two or more settings (mode, its parameters, the `max_gen_toks` budget; "
                 "the latest record of each). *Pareto on*: the costs on which no other point of the model has at "
                 "least its ACC at no more cost. *Equal accuracy*: for each mode and cost, the least cost at which "
                 "one of its points reaches the target ACC (the best vanilla point's), with the paired bootstrap "
                 "95% interval of the ACC and cost differences against that vanilla point over the questions both "
                 "scored. Made by `inftythink sweep` (docs/leaderboard.md).")


def frontier_markdown(records: list[Record], iters: int = 2000) -> list[str]:
    """The "Frontiers" section: nothing at all when no task has two settings of one model."""
    found = frontier.groups(records)
    if not found:
        return []
    lines = ["## Frontiers", "", FRONTIER_NOTE, ""]
    for (task, model), points in found.items():
        columns, rows = frontier.point_rows(points)
        ref, goal, equal = frontier.equal_accuracy(points, iters=iters)
        lines += [f"### {task} · {model}", ""] + _md_table(columns, rows) + [""]
        lines += ["Equal accuracy. " + frontier.target_note(ref, goal, False), ""]
        if equal:
            lines += _md_table(frontier.EQUAL_COLUMNS, frontier.equal_rows(equal)) + [""]
    return lines


def markdown(records: list[Record], reported: list[reference.ReportedRow]) -> str:
    lines = ["# Leaderboard", "",
             f"{len(records)} measured record(s) from `leaderboard/results/`, rendered by `inftythink leaderboard render`.",
             "ACC: mean pass@1 over the k samples of each question, then over the n questions, in percent, "
             "with a 95% interval (Wilson for 0/1 scores, else normal over questions). "
             "TOK: mean generated tokens per sample, all rounds and summaries. LAT: mean seconds per sample "
             "on the engine and hardware listed (not comparable across machines). "
             "ΔACC (points) and ΔTOK (relative) are against the same model's latest vanilla run on the same task, "
             "else against its vanilla twin's (marked `twin`: the zoo card's `vanilla_twin`, the model trained the "
             "same way in the vanilla format).", ""]
    for group, tasks in table_rows(records).items():
        lines += [f"## {group_title(group)}", ""]
        for task, rows in tasks.items():
            lines += [f"### {task}", ""] + _md_table(COLUMNS, rows) + [""]
    lines += frontier_markdown(records)
    lines += ["## Reported in the papers (not measured here)", "", REPORTED_NOTE, ""]
    rep = reported_rows(reported)
    for bench in [b.name for g in families.group_order() for b in families.members(g) if b.name in rep]:
        lines += [f"### {bench} (reported)", ""] + _md_table(REPORTED_COLUMNS, rep[bench]) + [""]
    return "\n".join(lines)

