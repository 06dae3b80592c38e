"""The call cache: every finished call, keyed by what determines it, so a killed run resumes exactly.

Owns: the key (backend fingerprint, backend role, prompt, sampling parameters
including the seed), an append-only JSON-lines store under the cache folder
(one line per finished call, written with one ``write`` and fsynced; a write
the disk refuses is rolled back, so the file keeps only whole lines), the
verdicts on what it reads back (a torn last line from a killed process is
ignored; a corrupt line elsewhere is skipped with a warning, its call redone;
lines written by another cache format stop the run with a clear error) and
lookups, by exact key and (``longest``) by the key without ``max_tokens``: the
call's *family*, whose longest finished generation a shorter budget may be
derived from (``run/budgets.py`` decides whether it can).  Each entry keeps
its ``max_tokens`` and, where the backend saw each token's time, those times
(milliseconds after submission, delta-coded).

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
                           p.top_p, p.top_k, p.min_p, list(p.stop), p.seed, *_thinking(p)], ensure_ascii=False,
                          sort_keys=True)
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def _thinking(p) -> list:
    """An engine-side thinking budget, only where one is set (the keys of every other call stay as they were)."""
    return [] if p.think_budget is None else [["think_budget", p.think_budget, list(p.think_marks)]]


def family_key(fingerprint: dict | str, backend_role: str, request: Request) -> str:
    """``call_key`` without ``max_tokens``: the calls that differ only in their token budget."""
    p = request.params
    material = json.dumps([FORMAT_VERSION, "family", fingerprint, backend_role, request.prompt, p.temperature,
                           p.top_p, p.top_k, p.min_p, list(p.stop), p.seed, *_thinking(p)], ensure_ascii=False,
                          sort_keys=True)
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def encode_times(submitted: Optional[float], times) -> Optional[list[int]]:
    """Token times as whole milliseconds after ``submitted``, each stored as the step from the one before."""
    if submitted is None or not times:
        return None
    out, last = [], 0
    for t in times:
        ms = max(last, int(round((t - submitted) * 1000)))
        out.append(ms - last)
        last = ms
    return out


def decode_times(steps: Optional[list[int]]) -> Optional[list[float]]:
    """``encode_times``' inverse: seconds after submission of each token."""
    if not steps:
        return None
    out, total = [], 0
    for step in steps:
        total += step
        out.append(total / 1000)
    return out


class CallCache:
    """``torn``: files whose last line was cut by a kill; ``corrupt``: ["file:line", ...] skipped elsewhere."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._entries: dict[str, dict] = {}
        self._families: dict[str, list[dict]] = {}  # family key -> entries with output ids, for ``longest``
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
            self._keep(entry)

    def _keep(self, entry: dict) -> None:
        self._entries[entry["key"]] = entry
        if entry.get("family") and isinstance(entry.get("max_tokens"), int) and entry.get("output_ids") is not None:
            self._families.setdefault(entry["family"], []).append(entry)

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

    def longest(self, family: str, max_tokens: int) -> Optional[dict]:
        """The entry of ``family`` with the largest budget above ``max_tokens`` (its ``text``, ``output_ids``,
        ``output_tokens``, ``finish_reason``, ``latency``, ``max_tokens`` and ``token_ms``), or None."""
        with self._lock:
            longer = [e for e in self._families.get(family, ()) if e["max_tokens"] > max_tokens]
        return max(longer, key=lambda e: e["max_tokens"]) if longer else None

    def put(self, key: str, completion: Completion, latency: float, family: Optional[str] = None,
            max_tokens: Optional[int] = None) -> None:
        """Append one finished call (one write, fsynced); a refused write leaves the file as it was.
        ``family``/``max_tokens`` (``family_key``, the request's budget) let shorter budgets reuse it."""
        entry = {"v": FORMAT_VERSION, "key": key, "text": completion.text, "prompt_tokens": completion.prompt_tokens,
                 "output_tokens": completion.output_tokens, "finish_reason": completion.finish_reason,
                 "output_ids": list(completion.output_ids) if completion.output_ids is not None else None,
                 "latency": latency}
        if family is not None:
            entry.update(family=family, max_tokens=max_tokens,
                         token_ms=encode_times(completion.submitted, completion.token_times))
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
            self._keep(entry)

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
