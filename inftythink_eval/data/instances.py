"""Training instances in the released schema, and the Parquet shards that hold them.

Owns: the rows of one segmented trace (the instance kinds of PROTOCOL.md step 4:
single, first, middle, last) and the vanilla (unsegmented) SFT row, as columns;
the released column schema; and writing rows as Parquet files atomically (temp
file, then ``os.replace``), removing files of an earlier run that this run did
not write again.

Schema (``ZJU-REAL/InftyThink`` on the hub): ``uuid``, ``reasoning_index``
(0-based round), ``question``, ``history`` (S_(i-1), null in round 0),
``reasoning_process`` (the span), ``summary`` (S_i of this span, null where
none was asked), ``conclusion`` (final round only, else null), ``messages``.

``messages`` is the format's ``training_messages`` (the one function per format
that also feeds the SFT recipe): ``inftythink``: ``[{user: input}, {assistant:
target}]`` with the native prompt and output (``formats.inftythink``), so
``input + target`` is the exact training text; ``inftythink_plus``: the
cold-start chat ``[{user: question}, {assistant: <history>…</history><think>…</think>``
+ summary or conclusion``}]`` (``formats.plus``).  The history span sits inside
the assistant turn; the SFT recipe (``template: chat``) gives it no loss by the
recipe's regex, so no extra column is needed.  Both formats keep the same columns.

Does not know: how spans were cut or summaries produced; any format's bytes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from inftythink_eval.data.segment import Segmented
from inftythink_eval.data.sources import Trace
from inftythink_eval.formats import inftythink, plus

_MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
SCHEMA = pa.schema([
    ("uuid", pa.string()), ("reasoning_index", pa.int32()), ("question", pa.string()),
    ("history", pa.string()), ("reasoning_process", pa.string()), ("summary", pa.string()),
    ("conclusion", pa.string()), ("messages", _MESSAGES),
])
VANILLA_SCHEMA = pa.schema([
    ("uuid", pa.string()), ("question", pa.string()), ("reasoning_process", pa.string()),
    ("conclusion", pa.string()), ("messages", _MESSAGES),
])
_FORMATS = {inftythink.NAME: inftythink, plus.NAME: plus}


def instances(seg: Segmented, summaries: Sequence[Optional[str]], fmt: str = inftythink.NAME) -> list[dict]:
    """One row per span in format ``fmt``.  ``summaries[i]`` is S_i; every non-final span needs one."""
    spans, trace, messages = seg.spans, seg.trace, _FORMATS[fmt].training_messages
    n = len(spans)
    if any(summaries[i] is None for i in range(n - 1)):
        raise ValueError(f"trace {trace.uid}: every span but the last needs a summary")
    rows = []
    for i, span in enumerate(spans):
        history = summaries[i - 1] if i > 0 else None
        final = i == n - 1
        rows.append({
            "uuid": trace.uid, "reasoning_index": i, "question": trace.question, "history": history,
            "reasoning_process": span, "summary": summaries[i] if i < len(summaries) else None,
            "conclusion": trace.conclusion if final else None,
            "messages": messages(trace.question, span, history, summary=None if final else summaries[i],
                                 conclusion=trace.conclusion if final else None),
        })
    return rows


def vanilla_row(trace: Trace, fmt: str = inftythink.NAME) -> dict:
    """The unsegmented SFT row of the Vanilla baseline: the whole trace as one final round of ``fmt``
    (inftythink: the native strings; inftythink_plus: a chat, InftyThink+'s Vanilla SFT)."""
    return {
        "uuid": trace.uid, "question": trace.question, "reasoning_process": trace.trace,
        "conclusion": trace.conclusion,
        "messages": _FORMATS[fmt].training_messages(trace.question, trace.trace, conclusion=trace.conclusion),
    }


class ShardWriter:
    """Buffers rows and writes ``{prefix}-{k:05d}.parquet`` files of ``rows_per_file`` rows."""

    def __init__(self, folder: Path, prefix: str, schema: pa.Schema, rows_per_file: int) -> None:
        self.folder, self.prefix, self.schema, self.rows_per_file = Path(folder), prefix, schema, rows_per_file
        self.folder.mkdir(parents=True, exist_ok=True)
        self.buffer: list[dict] = []
        self.written: list[Path] = []
        self.rows = 0

    def add(self, rows: Sequence[dict]) -> None:
        self.buffer.extend(rows)
        self.rows += len(rows)
        while len(self.buffer) >= self.rows_per_file:
            self._flush(self.buffer[:self.rows_per_file])
            self.buffer = self.buffer[self.rows_per_file:]

    def _flush(self, rows: list[dict]) -> None:
        path = self.folder / f"{self.prefix}-{len(self.written):05d}.parquet"
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        pq.write_table(pa.Table.from_pylist(rows, schema=self.schema), tmp)
        os.replace(tmp, path)
        self.written.append(path)

    def close(self) -> list[Path]:
        """Write the rest (an empty file when nothing was written) and delete stale files of this prefix."""
        if self.buffer or not self.written:
            self._flush(self.buffer)
            self.buffer = []
        keep = set(self.written)
        for old in self.folder.glob(f"{self.prefix}-*.parquet"):
            if old not in keep:
                old.unlink()
        return self.written
