"""Reading reasoning traces from local files or the hub.

Owns: opening a source (JSONL, JSON list, Parquet, a folder of them, or a hub
dataset id through ``datasets`` with streaming), turning each raw row into
``Trace`` items with the column options of ``Columns``, and naming every
row it cannot use as a ``Drop`` with a reason (non-UTF-8 line, bad JSON,
missing column, no ``<think>`` tags, empty trace or question).  A column
missing from the very first row is an error (the whole input is unusable
with these options), not a drop.

Does not know: tokens, segments, summaries, output files.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Union

from inftythink_eval.formats.inftythink import split_solution
from inftythink_eval.data.config import Columns

FILE_SUFFIXES = (".jsonl", ".json", ".parquet")


class SourceError(ValueError):
    """The source as a whole cannot be used (missing file, missing column, hub unreachable)."""


@dataclass(frozen=True)
class Trace:
    """One usable reasoning trace."""

    uid: str
    question: str
    trace: str
    conclusion: str


@dataclass(frozen=True)
class Drop:
    """A row (or one generation of a row) that was not used, and why."""

    reason: str
    uid: str = ""


RawRow = Union[dict, Drop]


# --- raw rows ---------------------------------------------------------------
def read_rows(source: Union[str, Path, Iterable[dict]], hub_config: Optional[str] = None,
              split: str = "train") -> Iterator[RawRow]:
    """Raw rows of a source, in a fixed order; unreadable lines come out as ``Drop``."""
    if not isinstance(source, (str, Path)):
        yield from source
        return
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in FILE_SUFFIXES and p.is_file())
        if not files:
            raise SourceError(f"source folder {path} has no {'/'.join(FILE_SUFFIXES)} files")
        for file in files:
            yield from _read_file(file)
    elif path.is_file():
        yield from _read_file(path)
    elif path.suffix in FILE_SUFFIXES or str(source).startswith((".", "/")):
        raise SourceError(f"source file {path} does not exist (expected a .jsonl, .json or .parquet file, "
                          "a folder of them, or a hub dataset id such as open-r1/OpenR1-Math-220k)")
    else:
        yield from _read_hub(str(source), hub_config, split)


def _read_file(path: Path) -> Iterator[RawRow]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
            yield from batch.to_pylist()
    elif path.suffix == ".json" and path.read_bytes()[:1] == b"[":
        rows = json.loads(path.read_text(encoding="utf-8"))
        yield from (row if isinstance(row, dict) else Drop("bad_json") for row in rows)
    elif path.suffix in (".jsonl", ".json"):
        yield from _read_jsonl(path)
    else:
        raise SourceError(f"cannot read {path}: expected a .jsonl, .json or .parquet file")


def _read_jsonl(path: Path) -> Iterator[RawRow]:
    with open(path, "rb") as handle:
        for raw in handle:
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield Drop("non_utf8_line")
                continue
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                yield Drop("bad_json")
                continue
            yield row if isinstance(row, dict) else Drop("bad_json")


def _read_hub(name: str, config: Optional[str], split: str) -> Iterator[RawRow]:
    import datasets

    try:
        stream = datasets.load_dataset(name, config, split=split, streaming=True)
        iterator = iter(stream)
        first = next(iterator, None)
    except Exception as exc:  # the hub raises many types (connection, 404, gated)
        raise SourceError(f"cannot load hub dataset {name!r} (config={config}, split={split}): {exc}. "
                          "If the hub is unreachable, download the data elsewhere and pass a local "
                          ".jsonl/.parquet file or folder as --source") from exc
    if first is not None:
        yield first
        yield from iterator


# --- rows -> traces ---------------------------------------------------------
def check_columns(row: dict, columns: Columns) -> None:
    """Raise ``SourceError`` when the first row lacks a configured column."""
    wanted = [c for c in (columns.question, columns.solution, columns.trace, columns.conclusion,
                          columns.uid, columns.correct) if c]
    missing = [c for c in wanted if c not in row]
    if missing:
        raise SourceError(f"source rows have no column {', '.join(map(repr, missing))}; available columns: "
                          f"{', '.join(sorted(row))}. Fix: pass --question-column/--solution-column or "
                          "--trace-column/--conclusion-column (or --preset openr1|openr1-generations|s1k)")


def to_traces(row: RawRow, columns: Columns) -> list[Union[Trace, Drop]]:
    """The traces of one raw row (several for a list-valued solution column), or drops."""
    if isinstance(row, Drop):
        return [row]
    for name in (columns.question, columns.solution or columns.trace):
        if row.get(name) is None:
            return [Drop(f"missing_column:{name}", _text(row.get(columns.uid)) if columns.uid else "")]
    question = row[columns.question]
    if not isinstance(question, str) or not question.strip():
        return [Drop("empty_question")]
    if columns.trace:
        conclusion = _text(row.get(columns.conclusion)) if columns.conclusion else ""
        return [_checked(_uid(row, columns, row[columns.trace]), question, _text(row[columns.trace]), conclusion)]
    solutions, several = _solutions(row[columns.solution])
    base = _uid(row, columns, json.dumps(row[columns.solution], sort_keys=True, default=str))
    flags = row.get(columns.correct) if columns.correct else None
    out: list[Union[Trace, Drop]] = []
    for k, solution in enumerate(solutions):
        uid = f"{base}-g{k}" if several else base
        if isinstance(flags, list) and k < len(flags) and not flags[k]:
            out.append(Drop("incorrect_generation", uid))
            continue
        parts = split_solution(solution) if isinstance(solution, str) else None
        out.append(Drop("no_think_tags", uid) if parts is None else _checked(uid, question, *parts))
    return out or [Drop("no_solution", base)]


def _solutions(value: Any) -> tuple[list, bool]:
    """A solution cell as (solution strings, several?): a string, a chat, or a list of generations."""
    if isinstance(value, list) and value and all(isinstance(m, dict) for m in value):
        turns = [m.get("content") for m in value if m.get("role") == "assistant"]
        return (turns[-1:] if turns else [None]), False
    if isinstance(value, list):
        return value, True
    return [value], False


def _checked(uid: str, question: str, trace: str, conclusion: str) -> Union[Trace, Drop]:
    if not trace.strip():
        return Drop("empty_trace", uid)
    return Trace(uid=uid, question=question, trace=trace, conclusion=conclusion)


def _uid(row: dict, columns: Columns, content: Any) -> str:
    if columns.uid and row.get(columns.uid) is not None:
        return _text(row[columns.uid])
    digest = hashlib.sha1(f"{row[columns.question]}\0{content}".encode("utf-8", "replace")).hexdigest()
    return digest[:16]


def _text(value: Any) -> str:
    return "" if value is None else value if isinstance(value, str) else str(value)
