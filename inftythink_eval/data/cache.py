"""The crash-safe store of every finished summary request.

Owns: cache keys (trace uid, span index, eta, segmenter, summariser id,
choice, prompt hash) and an append-only JSON-lines log per build shard under
``OUT/cache/``.  A record is written (flushed and fsynced) as soon as its
batch returns, so a process killed at any moment loses at most the requests
in flight; a torn last line left by a kill is cut off when the log is opened
again.  Every log in the folder is read on open, so a rerun with another
``--shard`` layout still finds what was asked before.

Does not know: backends, prompts beyond their hash, output files.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterable, Optional


def cache_key(uid: str, span: int, eta: int, segmenter: str, summarizer: str, choice: int, prompt: str) -> str:
    """Stable key of one summary request (any change to trace, span, eta, summariser or prompt misses)."""
    prompt_hash = hashlib.sha256(prompt.encode("utf-8")).hexdigest()
    payload = json.dumps([uid, span, eta, segmenter, summarizer, choice, prompt_hash], ensure_ascii=True)
    return hashlib.sha256(payload.encode("ascii")).hexdigest()


class SummaryCache:
    """``key -> record`` (``{"text": str, "finish": "stop"|"length"}``), persisted as JSON lines."""

    def __init__(self, folder: Path, name: str = "summaries") -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / f"{name}.jsonl"
        self._data: dict[str, dict] = {}
        _repair_tail(self.path)
        for log in sorted(self.folder.glob("*.jsonl")):
            self._load(log)
        self._handle = open(self.path, "a", encoding="utf-8")

    def _load(self, log: Path) -> None:
        with open(log, "r", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                try:
                    entry = json.loads(line)
                    self._data[entry["k"]] = entry["v"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue  # a torn line of another shard's live log

    def get(self, key: str) -> Optional[dict]:
        return self._data.get(key)

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def put_many(self, items: Iterable[tuple[str, dict]]) -> None:
        """Record finished requests durably (one write, flush and fsync per call)."""
        lines = []
        for key, value in items:
            self._data[key] = value
            lines.append(json.dumps({"k": key, "v": value}, ensure_ascii=False) + "\n")
        if lines:
            self._handle.write("".join(lines))
            self._handle.flush()
            os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()


def _repair_tail(path: Path) -> None:
    """Cut a partial last line (a write interrupted by a kill) so appends start on a fresh line."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as handle:
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) == b"\n":
            return
        data = handle.seek(0) or handle.read()
        handle.truncate(data.rfind(b"\n") + 1)
