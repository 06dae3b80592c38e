"""The append-only results store: one JSON file per (model, mode, task) run.

Owns: the folder layout (``leaderboard/results/<model>__<mode>__<task>__<day>__<id>.json``),
importing records all-or-nothing (every input is parsed and validated
before anything is written; each file is written to a temporary name and
renamed), refusing to overwrite (append-only: a re-import of the same run
is a no-op, a different file under an existing name is an error), and
loading records back.

Does not know: lm-eval's file formats (``ingest``), rendering.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

from inftythink_eval.results.records import Record, RecordError

DEFAULT_ROOT = Path("leaderboard") / "results"


class StoreError(RuntimeError):
    """The store refuses a write (it never overwrites a stored run)."""


@dataclass(frozen=True)
class ImportReport:
    added: tuple[Path, ...]
    unchanged: tuple[Path, ...]

    def summary(self) -> str:
        return f"{len(self.added)} record(s) added, {len(self.unchanged)} already stored"


def default_root() -> Path:
    """``$INFTYTHINK_LEADERBOARD`` or ``leaderboard/results`` under the current folder."""
    env = os.environ.get("INFTYTHINK_LEADERBOARD")
    return Path(env) / "results" if env else DEFAULT_ROOT


class Store:
    """Records under ``root``; ``add`` is all-or-nothing and never overwrites."""

    def __init__(self, root: Optional[Path] = None):
        self.root = Path(root) if root is not None else default_root()

    def paths(self) -> list[Path]:
        return sorted(self.root.glob("*.json")) if self.root.is_dir() else []

    def load(self) -> list[Record]:
        records = []
        for path in self.paths():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise RecordError(f"{path}: stored record is not readable JSON ({exc}); "
                                  "restore it from git (`git checkout -- <file>`)") from exc
            records.append(Record.from_dict(data, str(path)))
        return records

    def add(self, records: Iterable[Record]) -> ImportReport:
        """Store every record; raises ``StoreError`` before writing anything on a conflict."""
        planned: dict[Path, str] = {}
        unchanged = []
        for record in records:
            path = self.root / record.file_name()
            text = record.to_json()
            if path.exists():
                if path.read_text(encoding="utf-8") != text:
                    raise StoreError(f"{path} already holds a different record for this run; the store is "
                                     "append-only: nothing was written. Remove that file by hand if it is wrong.")
                unchanged.append(path)
            elif path in planned and planned[path] != text:
                raise StoreError(f"two different records map to {path.name}; nothing was written")
            else:
                planned[path] = text
        return ImportReport(tuple(_write_all(planned)), tuple(unchanged))


def _write_all(planned: dict[Path, str]) -> list[Path]:
    """Write temporary files first, then rename them; on failure remove what this call created."""
    if not planned:
        return []
    root = next(iter(planned)).parent
    root.mkdir(parents=True, exist_ok=True)
    temps: list[tuple[str, Path]] = []
    done: list[Path] = []
    try:
        for path, text in planned.items():
            fd, tmp = tempfile.mkstemp(dir=root, prefix=".tmp-", suffix=".json")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)
            temps.append((tmp, path))
        for tmp, path in temps:
            os.replace(tmp, path)
            done.append(path)
    except BaseException:
        for path in done:
            path.unlink(missing_ok=True)
        for tmp, _ in temps:
            Path(tmp).unlink(missing_ok=True)
        raise
    return done


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
