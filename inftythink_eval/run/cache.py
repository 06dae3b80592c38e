"""The call cache: every finished call, keyed by what determines it, so a killed run resumes exactly.

Owns: the key (backend fingerprint, backend role, prompt, sampling parameters
including the seed), an append-only JSON-lines store under the cache folder
(one line per finished call, written with one ``write`` and fsynced; a write
the disk refuses is rolled back, so the file keeps only whole lines), the
verdicts on what it reads back (a torn last line from a killed process is
ignored; a corrupt line elsewhere is skipped with a warning, its call redone;
lines written by another cache format stop the run with a clear error) and
lookups.

Does not know: modes, samples, lm-eval.  Several processes may share a
folder: each appends to its own file, and every file is read on start.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import Optional

from inftythink_eval.backends.base import Completion, Request

FORMAT_VERSION = 2  # 2: keys hold the backend fingerprint and top_k/min_p
log = logging.getLogger(__name__)
_FIELDS = {"key": str, "text": str, "prompt_tokens": int, "output_tokens": int, "finish_reason": str,
           "latency": (int, float)}


class CacheError(RuntimeError):
    """The cache folder cannot be used as it is (another format) or cannot be written (disk full)."""


def call_key(fingerprint: dict | str, backend_role: str, request: Request) -> str:
    """Key of one call: the backend's fingerprint (backend, weights, dtype, revision, device, ...),
    its role, the prompt and every sampling parameter including the seed."""
    p = request.params
    material = json.dumps([FORMAT_VERSION, fingerprint, backend_role, request.prompt, p.max_tokens, p.temperature,
                           p.top_p, p.top_k, p.min_p, list(p.stop), p.seed], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


class CallCache:
    """``torn``: files whose last line was cut by a kill; ``corrupt``: ["file:line", ...] skipped elsewhere."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._entries: dict[str, dict] = {}
        self._lock = threading.Lock()
        self.torn: list[str] = []
        self.corrupt: list[str] = []
        for path in sorted(self.folder.glob("calls-*.jsonl")):
            self._load(path)
        if self.corrupt:
            log.warning("call cache %s: %d corrupt lines skipped (%s); those calls will be run again",
                        self.folder, len(self.corrupt), ", ".join(self.corrupt[:5]))
        self._path = self.folder / f"calls-{os.getpid()}-{os.urandom(3).hex()}.jsonl"
        self._fd: Optional[int] = None
        self._closed = False
        self.hits = 0

    def _load(self, path: Path) -> None:
        data = path.read_bytes()
        lines = data.split(b"\n")
        last = len(lines) - 1  # the text after the final newline: empty, or a line a kill cut short
        for number, raw in enumerate(lines, 1):
            if not raw.strip():
                continue
            entry = _parse(raw)
            if entry is None:
                (self.torn.append(path.name) if number - 1 == last else self.corrupt.append(f"{path.name}:{number}"))
                continue
            version = entry.get("v", FORMAT_VERSION)  # lines before "v" was written are format 2
            if version != FORMAT_VERSION:
                raise CacheError(f"call cache {self.folder}: {path.name} line {number} was written by cache format "
                                 f"{version}, and this inftythink-eval reads format {FORMAT_VERSION}; its calls "
                                 "cannot be reused. Point cache_dir at a new folder (or run the inftythink-eval "
                                 "version that wrote it to finish that run)")
            self._entries[entry["key"]] = entry

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> Optional[tuple[Completion, float]]:
        """The cached completion and the latency measured when it ran, or None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        with self._lock:
            self.hits += 1
        ids = entry.get("output_ids")
        completion = Completion(text=entry["text"], prompt_tokens=entry["prompt_tokens"],
                                output_tokens=entry["output_tokens"], finish_reason=entry["finish_reason"],
                                output_ids=tuple(ids) if ids is not None else None)
        return completion, float(entry["latency"])

    def put(self, key: str, completion: Completion, latency: float) -> None:
        """Append one finished call (one write, fsynced); a refused write leaves the file as it was."""
        entry = {"v": FORMAT_VERSION, "key": key, "text": completion.text, "prompt_tokens": completion.prompt_tokens,
                 "output_tokens": completion.output_tokens, "finish_reason": completion.finish_reason,
                 "output_ids": list(completion.output_ids) if completion.output_ids is not None else None,
                 "latency": latency}
        data = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8", "surrogatepass")
        with self._lock:
            if self._closed:
                raise CacheError(f"call cache {self.folder} is closed (the run was stopped); this call is not kept")
            if self._fd is None:
                self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            size = os.fstat(self._fd).st_size
            try:
                written = os.write(self._fd, data)
                if written != len(data):
                    raise OSError(f"only {written} of {len(data)} bytes written")
                os.fsync(self._fd)
            except OSError as exc:
                os.ftruncate(self._fd, size)  # keep whole lines only
                raise CacheError(f"call cache {self._path} could not be written ({exc}): is the disk full? The "
                                 f"{len(self._entries)} calls kept before it are intact; free space and rerun with "
                                 "the same cache_dir to resume") from exc
            self._entries[key] = entry

    def close(self) -> None:
        """Finish any write in progress and refuse later ones (a stopped run's threads cannot tear a line)."""
        held = self._lock.acquire(timeout=10)  # bounded: never hang a stopping run
        try:
            self._closed = True
            if self._fd is not None and held:
                os.close(self._fd)
                self._fd = None
        finally:
            if held:
                self._lock.release()


def _parse(raw: bytes) -> Optional[dict]:
    """One cache line as an entry, or None when it is not one (torn, corrupt, or missing fields)."""
    try:
        entry = json.loads(raw.decode("utf-8", "surrogatepass"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(entry, dict) or any(not isinstance(entry.get(k), t) for k, t in _FIELDS.items()):
        return None
    return entry
