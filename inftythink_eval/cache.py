"""The call cache: every finished call, keyed by what determines it, so a killed run resumes exactly.

Owns: the key (backend fingerprint, backend role, prompt, sampling parameters
including the seed), an append-only JSON-lines store under the cache folder
(one line per finished call, flushed and fsynced as it is written, a torn
last line from a crash is ignored on load) and lookups.

Does not know: modes, samples, lm-eval.  Several processes may share a
folder: each appends to its own file, and every file is read on start.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Optional

from .backends.base import Completion, Request

FORMAT_VERSION = 2  # 2: keys hold the backend fingerprint and top_k/min_p


def call_key(fingerprint: dict | str, backend_role: str, request: Request) -> str:
    """Key of one call: the backend's fingerprint (backend, weights, dtype, revision, device, ...),
    its role, the prompt and every sampling parameter including the seed."""
    p = request.params
    material = json.dumps([FORMAT_VERSION, fingerprint, backend_role, request.prompt, p.max_tokens, p.temperature,
                           p.top_p, p.top_k, p.min_p, list(p.stop), p.seed], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


class CallCache:
    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._entries: dict[str, dict] = {}
        self._lock = threading.Lock()
        for path in sorted(self.folder.glob("calls-*.jsonl")):
            self._load(path)
        self._path = self.folder / f"calls-{os.getpid()}-{os.urandom(3).hex()}.jsonl"
        self._handle = None
        self.hits = 0

    def _load(self, path: Path) -> None:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a torn line from a killed process: that call is simply redone
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
        entry = {"key": key, "text": completion.text, "prompt_tokens": completion.prompt_tokens,
                 "output_tokens": completion.output_tokens, "finish_reason": completion.finish_reason,
                 "output_ids": list(completion.output_ids) if completion.output_ids is not None else None,
                 "latency": latency}
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self._lock:
            if self._handle is None:
                self._handle = open(self._path, "a", encoding="utf-8")
            self._handle.write(line)
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._entries[key] = entry

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None
