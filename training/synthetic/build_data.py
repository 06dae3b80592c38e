"""Build the training data of the CPU-scale reference pair from the synthetic digit-sum task.

    python training/synthetic/build_data.py --out runs/synthetic-data
    python training/synthetic/build_data.py --out runs/synthetic-data-plus --format inftythink_plus

Writes, under --out:
  tokenizer/            the char-level tokenizer both tiny models use (also the builder's segmentation tokenizer)
  source.jsonl          questions + OpenR1-style ``<think>`` solutions (the builder's input)
  inftythink.jsonl      InftyThink instances, released schema (question, history, reasoning_process, summary, conclusion)
  vanilla.jsonl         vanilla instances: the whole trace in one target, depths uniform over those that fit the window
  data_summary.json     counts and the settings used
With ``--format inftythink_plus`` (alias ``plus``), instead of inftythink.jsonl and vanilla.jsonl:
  inftythink_plus.jsonl InftyThink+ cold-start rows from the builder (``--format inftythink_plus``): the same columns,
                        ``messages`` = [user question, assistant <history>..</history><think>..</think> + summary
                        or conclusion], trained with the recipe's ``template: chat``
  first_rounds.jsonl    the rows of each question's first iteration (no history), a subset of the above: the
                        tiny Plus model's config lists it three more times (first iterations oversampled 4x,
                        see docs/training.md)

The InftyThink instances come from the dataset builder (``inftythink_eval.data.build``) with the
task-function summariser ``inftythink_eval.scoring.synthetic.summarise`` when that API is installed;
otherwise from ``inftythink_eval.formats.inftythink`` directly with the protocol's greedy segmentation
(close a span once its running token count exceeds eta, including the crossing paragraph).
Both routes produce the same rows for this task (one step per paragraph, fixed width).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from inftythink_eval.formats import inftythink, plus
from inftythink_eval.scoring import synthetic
from inftythink_eval.training.scratch import char_tokenizer


def segment(lines: list[str], eta: int, count) -> list[str]:
    """Protocol greedy segmentation of one trace's paragraphs (joiners not counted)."""
    spans, current, total = [], [], 0
    for line in lines:
        current.append(line)
        total += count(line)
        if total > eta:
            spans.append(synthetic.STEP_SEP.join(current))
            current, total = [], 0
    if current:
        spans.append(synthetic.STEP_SEP.join(current))
    return spans


def instances_direct(problem: synthetic.Problem, eta: int, count) -> list[dict]:
    """Released-schema rows for one problem without the builder."""
    spans = segment(problem.lines(), eta, count)
    rows, history = [], None
    for i, span in enumerate(spans):
        summary = synthetic.summarise(problem.question, spans[: i + 1])
        last = i == len(spans) - 1
        rows.append({"uuid": f"{problem.x0}-{problem.n}", "reasoning_index": i, "question": problem.question,
                     "history": history, "reasoning_process": span, "summary": None if last else summary,
                     "conclusion": problem.answer if last else None})
        history = summary
    return rows


def vanilla_row(problem: synthetic.Problem) -> dict:
    prompt, completion = inftythink.training_pair(problem.question, problem.trace(), conclusion=problem.answer)
    return {"prompt": prompt, "completion": completion}


def max_fitting_depth(tokenizer, window: int) -> int:
    """The deepest problem whose whole vanilla sample (prompt, trace, answer, eos) fits the window."""
    n = 1
    while n < 999:
        row = vanilla_row(synthetic.Problem(99, n + 1))
        if len(tokenizer(row["prompt"] + row["completion"])["input_ids"]) + 1 > window:
            break
        n += 1
    return n


def write_jsonl(path: Path, rows: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    os.replace(tmp, path)


def build_inftythink(out: Path, probs, eta: int, tokenizer) -> tuple[list[dict], str]:
    """(rows, route): through the dataset builder when its API exists, else directly."""
    count = lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    try:
        from inftythink_eval.data import build  # the builder's Python API
    except ImportError:
        build = None
    if build is None:
        return [r for p in probs for r in instances_direct(p, eta, count)], "templates (builder API not installed)"
    return _via_builder(build, out, eta), "inftythink_eval.data.build"


def _via_builder(build, out: Path, eta: int, fmt: str = inftythink.NAME) -> list[dict]:
    from inftythink_eval.data.config import BuildConfig, Columns

    cfg = BuildConfig(source=str(out / "source.jsonl"), out=str(out / "built"), eta=eta, format=fmt,
                      summarizer="python:inftythink_eval.scoring.synthetic:summarise", tokenizer=str(out / "tokenizer"),
                      columns=Columns(question="problem", solution="solution"), vanilla=False)
    build(cfg)
    import pyarrow.parquet as pq

    files = sorted((out / "built" / "instances").glob("*.parquet"))
    # v1: the recipe rebuilds prompt/completion from the schema fields with the same templates;
    # plus: the recipe reads the chat in ``messages``
    drop = {"messages"} if fmt == inftythink.NAME else set()
    return [{k: v for k, v in row.items() if k not in drop} for f in files for row in pq.read_table(f).to_pylist()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--questions", type=int, default=6000, help="InftyThink questions (depth uniform in 1..max-depth)")
    ap.add_argument("--max-depth", type=int, default=200)
    ap.add_argument("--vanilla-questions", type=int, default=20000)
    ap.add_argument("--window", type=int, default=256, help="model context window in tokens (characters)")
    ap.add_argument("--eta", type=int, default=100, help="segment budget in tokens")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--format", choices=(inftythink.NAME, plus.NAME, plus.OLD_NAME), default=inftythink.NAME,
                    help="inftythink: v1 instances + vanilla traces; inftythink_plus (alias plus): InftyThink+ "
                         "cold-start rows only")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = char_tokenizer()
    tokenizer.save_pretrained(str(out / "tokenizer"))
    probs = synthetic.problems(range(1, args.max_depth + 1), args.questions, seed=args.seed)
    write_jsonl(out / "source.jsonl", [{"problem": p.question, "solution": p.solution()} for p in probs])
    args.format = plus.format_name(args.format)
    if args.format == plus.NAME:
        return _main_plus(out, probs, args)
    rows, route = build_inftythink(out, probs, args.eta, tokenizer)
    write_jsonl(out / "inftythink.jsonl", rows)
    fit = max_fitting_depth(tokenizer, args.window)
    vanilla = [vanilla_row(p) for p in synthetic.problems(range(1, fit + 1), args.vanilla_questions, args.seed + 1)]
    write_jsonl(out / "vanilla.jsonl", vanilla)
    summary = {"route": route, "inftythink_rows": len(rows), "inftythink_questions": len(probs),
               "vanilla_rows": len(vanilla), "vanilla_max_depth": fit,
               **{k: v for k, v in vars(args).items() if k != "out"}}
    (out / "data_summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    print(json.dumps(summary))
    return 0


def _main_plus(out: Path, probs, args) -> int:
    """The InftyThink+ rows of the tiny Plus model: the builder in ``--format inftythink_plus`` on the same source."""
    from inftythink_eval.data import build

    rows = _via_builder(build, out, args.eta, plus.NAME)
    write_jsonl(out / "inftythink_plus.jsonl", rows)
    first = [row for row in rows if row["reasoning_index"] == 0]
    write_jsonl(out / "first_rounds.jsonl", first)
    summary = {"route": "inftythink_eval.data.build (format inftythink_plus)", "inftythink_plus_rows": len(rows),
               "first_round_rows": len(first),
               "inftythink_plus_questions": len(probs), **{k: v for k, v in vars(args).items() if k != "out"}}
    (out / "data_summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
