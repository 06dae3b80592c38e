"""``inftythink compare``: one model, several modes, the same tasks, side by side.

Owns: running lm-eval once per mode (``--model inftythink``, the given
``model_args`` with ``mode=<mode>``), importing and storing every run, and
the side-by-side table: ACC with its 95% interval per mode, and against
the first mode a paired bootstrap interval on the ACC difference over the
same questions, plus TOK, LAT, rounds and peak context with relative
changes.

Does not know: lm-eval's formats (``ingest``), the store layout (``store``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Optional

from inftythink_eval.keyvalue import parse_pairs
from inftythink_eval.results import lmeval_run, stats
from inftythink_eval.results.ingest import import_path
from inftythink_eval.results.records import Record, RecordError
from inftythink_eval.results.sidecars import IngestError
from inftythink_eval.results.store import Store, StoreError, default_root

STATS = (("TOK", "tok", 0), ("LAT s", "lat", 2), ("rounds", "rounds", 2), ("peak ctx", "peak_ctx", 0))


def paired_acc(base: Record, other: Record, iters: int = 2000) -> Optional[tuple[float, float, float]]:
    """(delta, low, high) of ACC over the questions both runs scored; None when they share none."""
    a = {s["doc_id"]: s["acc"] for s in base.samples if s.get("acc") is not None}
    b = {s["doc_id"]: s["acc"] for s in other.samples if s.get("acc") is not None}
    shared = sorted(set(a) & set(b), key=str)
    if not shared:
        return None
    return stats.paired_bootstrap([a[d] for d in shared], [b[d] for d in shared], iters=iters)


def table(task: str, runs: list[Record], iters: int = 2000) -> str:
    """The side-by-side text table of one task; the first run is the reference for deltas."""
    base = runs[0]
    header = ["metric"] + [r.mode for r in runs] + [f"Δ {r.mode}−{base.mode}" for r in runs[1:]]
    acc = ["ACC %"] + [f"{100 * r.acc:.1f} [{100 * r.acc_ci[0]:.1f}, {100 * r.acc_ci[1]:.1f}]" for r in runs]
    for other in runs[1:]:
        paired = paired_acc(base, other, iters)
        acc.append("–" if paired is None else f"{100 * paired[0]:+.1f} [{100 * paired[1]:+.1f}, {100 * paired[2]:+.1f}]")
    rows = [header, acc]
    for label, name, digits in STATS:
        values = [getattr(r, name) for r in runs]
        row = [label] + ["–" if v is None else (f"{v:.3g}" if name == "lat" else f"{v:,.{digits}f}") for v in values]
        b = values[0]
        row += ["–" if (v is None or not b) else f"{100 * (v / b - 1):+.0f}%" for v in values[1:]]
        rows.append(row)
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    title = (f"{task}  ({base.model}; {base.n_questions} questions × {base.samples_per_question} samples; "
             f"ACC 95% interval per mode, Δ ACC: paired bootstrap 95% interval)")
    lines = [title] + ["  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def run_modes(model_args: str, modes: list[str], output: Path, **flags) -> dict[str, list[Record]]:
    """One lm-eval run per mode (``flags``: further ``LmEvalRun`` fields, the same for every mode); {mode: records}."""
    out = {}
    for mode in modes:
        spec = lmeval_run.LmEvalRun(model="inftythink", model_args=lmeval_run.with_mode(model_args, mode),
                                    output_path=output / mode, **flags)
        lmeval_run.run(spec)
        out[mode] = import_path(output / mode)
    return out


def by_task(runs: dict[str, list[Record]]) -> dict[str, list[Record]]:
    """{task: [latest record of each mode, in mode order]}."""
    tasks: dict[str, list[Record]] = {}
    for mode, records in runs.items():
        latest: dict[str, Record] = {}
        for record in sorted(records, key=lambda r: r.date):
            latest[record.task] = record
        for task, record in latest.items():
            tasks.setdefault(task, []).append(record)
    return tasks


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model_args", required=True, help="model_args of --model inftythink, without mode= (e.g. pretrained=zoo:smollm2-135m-instruct,backend=hf)")
    parser.add_argument("--tasks", required=True, help="lm-eval tasks, comma-separated")
    parser.add_argument("--modes", default="vanilla,summarize", help="modes to compare, comma-separated; the first is the reference (default vanilla,summarize)")
    parser.add_argument("--limit", type=float, default=None, help="lm-eval --limit (questions per task)")
    parser.add_argument("--gen_kwargs", default="", help="lm-eval --gen_kwargs, e.g. max_gen_toks=256")
    parser.add_argument("--include_path", default=None, help="extra task folder for lm-eval")
    parser.add_argument("--apply_chat_template", action="store_true", help="lm-eval --apply_chat_template (chat models)")
    parser.add_argument("--system_instruction", default=None, help="lm-eval --system_instruction")
    parser.add_argument("--output_path", type=Path, default=None, help="lm-eval output folder (default: a new temporary folder)")
    parser.add_argument("--store", type=Path, default=None, help="records folder (default leaderboard/results)")
    parser.add_argument("--no-store", action="store_true", help="do not store the runs")
    parser.add_argument("--bootstrap-iters", type=int, default=2000, help="paired bootstrap resamples (default 2000)")


def run(args: argparse.Namespace) -> int:
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if len(modes) < 2 or len(set(modes)) != len(modes):
        print(f"error: --modes needs at least two different modes, got {args.modes!r} (e.g. vanilla,summarize)", file=sys.stderr)
        return 2
    try:
        model_args = parse_pairs(args.model_args, "--model_args", lmeval_run.MODEL_ARGS_EXAMPLE)
        gen_kwargs = parse_pairs(args.gen_kwargs, "--gen_kwargs", "max_gen_toks=256,temperature=0.7")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if "mode" in model_args:
        print("error: --model_args must not set mode=; list the modes with --modes", file=sys.stderr)
        return 2
    output = args.output_path or Path(tempfile.mkdtemp(prefix="inftythink-compare-"))
    try:
        runs = run_modes(args.model_args, modes, output, tasks=args.tasks, limit=args.limit, gen_kwargs=gen_kwargs,
                         include_path=args.include_path, apply_chat_template=args.apply_chat_template,
                         system_instruction=args.system_instruction)
        stored = None if args.no_store else Store(args.store or default_root()).add(r for rs in runs.values() for r in rs)
    except (lmeval_run.LmEvalFailed, IngestError, RecordError, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for task, records in by_task(runs).items():
        print(table(task, records, args.bootstrap_iters) + "\n")
    print(f"lm-eval outputs: {output}")
    if stored is not None:
        print(f"store: {stored.summary()} in {args.store or default_root()}")
    return 0
