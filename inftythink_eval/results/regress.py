"""``inftythink regress --baseline FILE``: a fresh run against a stored baseline, with noise-based tolerances.

Owns: the gates and their report.  ACC: a regression when the drop exceeds
what binomial sampling noise explains (Agresti-Caffo, one-sided, ``--z``,
questions as trials).  TOK: a regression when the fresh mean exceeds the
baseline by more than ``max(--tok-rel, z * combined standard error)``
(relative).  Rounds: the same bound, both directions (fewer rounds than
the baseline means the iteration broke).  LAT: reported, never gated
(machines differ).  Records that are not comparable (task version,
questions, samples per question, mode parameters) fail.  Exit 0: no
regression; 1: regression; 2: bad input.

Does not know: lm-eval's formats (``ingest``), how lm-eval is launched (``lmeval_run``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from inftythink_eval.results import lmeval_run, stats
from inftythink_eval.results.ingest import import_path
from inftythink_eval.results.records import Record, RecordError
from inftythink_eval.results.sidecars import IngestError


@dataclass(frozen=True)
class Gates:
    """Tolerances; all from sampling noise except the relative floors."""

    z: float = 2.576         # one-sided z for ACC and the noise part of TOK/rounds (99.5%)
    tok_rel: float = 0.10    # TOK may grow by at least this share before it counts as a blow-up
    rounds_rel: float = 0.10 # rounds may move by at least this share either way


@dataclass(frozen=True)
class Line:
    metric: str
    baseline: str
    fresh: str
    change: str
    allowed: str
    verdict: str  # "ok", "REGRESSION", "info", "INCOMPARABLE"


def load_records(path: Path) -> list[Record]:
    """Records from a stored record file, a folder of them, or an lm-eval output folder / results file."""
    path = Path(path)
    if path.name.startswith("results_") or (path.is_dir() and any(path.rglob("results_*.json"))):
        return import_path(path)
    files = [path] if path.is_file() else sorted(path.glob("*.json")) if path.is_dir() else []
    records = []
    for file in files:
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise RecordError(f"{file}: not readable JSON ({exc})") from exc
        records.append(Record.from_dict(data, str(file)))
    if not records:
        raise RecordError(f"{path}: no records found; pass a file from leaderboard/results/, a folder of them, "
                          "or an lm-eval --output_path folder")
    return records


def _noise_bound(base: Record, fresh: Record, name: str, floor: float, z: float) -> Optional[float]:
    b = getattr(base, name)
    if not b:
        return None
    se = [stats.stderr([s.get(name) for s in r.samples]) or 0.0 for r in (base, fresh)]
    return max(floor, z * (se[0] ** 2 + se[1] ** 2) ** 0.5 / b)


def comparability(base: Record, fresh: Record) -> list[str]:
    problems = []
    for name in ("task_version", "n_questions", "samples_per_question", "mode", "mode_params"):
        if getattr(base, name) != getattr(fresh, name):
            problems.append(f"{name}: baseline {getattr(base, name)!r} vs fresh {getattr(fresh, name)!r}")
    return problems


def check(base: Record, fresh: Record, gates: Gates = Gates()) -> list[Line]:
    problems = comparability(base, fresh)
    if problems:
        return [Line("setup", "", "", "; ".join(problems), "identical", "INCOMPARABLE")]
    n0, n1 = base.n_questions, fresh.n_questions
    tol = stats.proportion_drop_tolerance(base.acc, n0, fresh.acc, n1, gates.z)
    drop = base.acc - fresh.acc
    lines = [Line("ACC", f"{100 * base.acc:.1f}% (n={n0})", f"{100 * fresh.acc:.1f}% (n={n1})",
                  f"{-100 * drop:+.1f} pts", f">= {-100 * tol:+.1f} pts", "REGRESSION" if drop > tol else "ok")]
    for name, floor, two_sided in (("tok", gates.tok_rel, False), ("rounds", gates.rounds_rel, True)):
        lines.append(_relative_line(base, fresh, name, _noise_bound(base, fresh, name, floor, gates.z), two_sided))
    lat = f"{100 * (fresh.lat / base.lat - 1):+.1f}%" if base.lat and fresh.lat is not None else "–"
    lines.append(Line("LAT s", _fmt(base.lat), _fmt(fresh.lat), lat, "(not gated)", "info"))
    return lines


def _relative_line(base: Record, fresh: Record, name: str, bound: Optional[float], two_sided: bool) -> Line:
    b, f = getattr(base, name), getattr(fresh, name)
    label = "TOK" if name == "tok" else name
    if b is None or f is None or bound is None:
        verdict = "REGRESSION" if (b is not None and f is None) else "info"
        return Line(label, _fmt(b), _fmt(f), "–", "(not measured)", verdict)
    change = f / b - 1
    bad = change > bound or (two_sided and change < -bound)
    allowed = f"±{100 * bound:.1f}%" if two_sided else f"<= +{100 * bound:.1f}%"
    return Line(label, _fmt(b), _fmt(f), f"{100 * change:+.1f}%", allowed, "REGRESSION" if bad else "ok")


def _fmt(value: Optional[float]) -> str:
    return "–" if value is None else f"{value:,.2f}"


def report(base: Record, fresh: Record, lines: list[Line]) -> str:
    head = [f"{base.model} · {base.mode} · {base.task}",
            f"  baseline: commit {base.git_commit[:10]} {base.date} {base.hardware}",
            f"  fresh:    commit {fresh.git_commit[:10]} {fresh.date} {fresh.hardware}"]
    widths = (8, 18, 18, 12, 16)
    rows = [("metric", "baseline", "fresh", "change", "allowed", "verdict")] + \
           [(l.metric, l.baseline, l.fresh, l.change, l.allowed, l.verdict) for l in lines]
    body = ["  " + " ".join(c.ljust(w) for c, w in zip(row, widths + (0,))) for row in rows]
    return "\n".join(head + body)


def pair_up(baselines: list[Record], fresh: list[Record]) -> list[tuple[Record, Optional[Record]]]:
    latest: dict[tuple[str, str], Record] = {}
    for record in sorted(fresh, key=lambda r: r.date):
        latest[(record.mode, record.task)] = record
    return [(b, latest.get((b.mode, b.task))) for b in baselines]


def rerun(baselines: list[Record], output: Path, include_path: Optional[str]) -> Path:
    """Repeat each baseline's measurement with lm-eval (one run per distinct model setup)."""
    setups: dict[str, list[Record]] = {}
    for b in baselines:
        key = json.dumps({k: v for k, v in b.lm_eval_args.items() if k != "tasks"}, sort_keys=True)
        setups.setdefault(key, []).append(b)
    for i, group in enumerate(setups.values()):
        tasks = ",".join(sorted({b.task for b in group}))
        spec = lmeval_run.from_record_args(group[0].lm_eval_args, output / f"run{i}", tasks=tasks,
                                           include_path=include_path)
        lmeval_run.run(spec)
    return output


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--baseline", type=Path, required=True,
                        help="a stored record (leaderboard/results/*.json), a folder of them, or an lm-eval output folder")
    parser.add_argument("--fresh", type=Path, default=None,
                        help="the fresh run (lm-eval output folder or records); default: rerun lm-eval with the baseline's settings")
    parser.add_argument("--output_path", type=Path, default=None, help="where a rerun writes (default: a new temporary folder)")
    parser.add_argument("--include_path", default=None, help="passed to lm_eval when rerunning (extra task folders)")
    parser.add_argument("--z", type=float, default=Gates.z, help="one-sided z of the noise tolerances (default 2.576)")
    parser.add_argument("--tok-rel", type=float, default=Gates.tok_rel, help="relative floor of the TOK bound (default 0.10)")
    parser.add_argument("--rounds-rel", type=float, default=Gates.rounds_rel, help="relative floor of the rounds bound (default 0.10)")


def run(args: argparse.Namespace) -> int:
    gates = Gates(z=args.z, tok_rel=args.tok_rel, rounds_rel=args.rounds_rel)
    try:
        baselines = load_records(args.baseline)
        fresh_path = args.fresh
        if fresh_path is None:
            out = args.output_path or Path(tempfile.mkdtemp(prefix="inftythink-regress-"))
            fresh_path = rerun(baselines, out, args.include_path)
        fresh = load_records(fresh_path)
    except (RecordError, IngestError, lmeval_run.LmEvalFailed) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    failures = 0
    for base, new in pair_up(baselines, fresh):
        if new is None:
            print(f"{base.model} · {base.mode} · {base.task}\n  MISSING: the fresh run has no {base.mode}/{base.task} record")
            failures += 1
            continue
        lines = check(base, new, gates)
        print(report(base, new, lines))
        failures += sum(1 for l in lines if l.verdict in ("REGRESSION", "INCOMPARABLE"))
    print(f"RESULT: {'FAIL' if failures else 'PASS'}: {failures} regression(s) in {len(baselines)} comparison(s) "
          f"(fresh run: {fresh_path})")
    return 1 if failures else 0
