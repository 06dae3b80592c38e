"""Reading the files lm-eval and the ``inftythink`` model leave in an output folder.

Owns: finding a results file's samples JSONL, choosing the run sidecar
(``inftythink_run_<date>.json``: the latest whose ``started_at`` is not
after the results date) and its traces sidecar, parsing lm-eval's dates,
hashing weight files, and condensing traces into what plots need
(rounds histogram, one sample's sawtooth, throughput).

Does not know: the ``Record`` layout (``ingest`` builds records), the store.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from pathlib import Path
from typing import Optional

_STAMP = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}[-:]\d{2}[-:]\d{2}(?:\.\d+)?)")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")


class IngestError(ValueError):
    """An lm-eval output folder cannot be imported as it is."""


def stamp_of(path: Path) -> Optional[dt.datetime]:
    """The UTC time in an lm-eval file name (``results_2026-11-25T17-36-17.288636.json``)."""
    match = _STAMP.search(path.name)
    if not match:
        return None
    text = match.group(1)
    day, _, clock = text.partition("T")
    return dt.datetime.fromisoformat(f"{day}T{clock.replace('-', ':')}").replace(tzinfo=dt.timezone.utc)


def parse_time(value) -> Optional[dt.datetime]:
    """An epoch number or an ISO string, as UTC; None when absent or unreadable."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return dt.datetime.fromtimestamp(float(value), tz=dt.timezone.utc)
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        stamp = stamp_of(Path(f"x_{value}"))
        return stamp
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IngestError(f"{path}: not readable JSON ({exc}); the file is partial or corrupt: "
                          "rerun lm-eval for this task or remove the file from the folder") from exc
    if not isinstance(data, dict):
        raise IngestError(f"{path}: expected a JSON object at the top level, got {type(data).__name__}")
    return data


def read_jsonl(path: Path) -> list[dict]:
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise IngestError(f"{path}: not readable ({exc})") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise IngestError(f"{path}:{number}: not a JSON line ({exc}); the file is partial or corrupt: "
                              "rerun lm-eval for this task") from exc
    return rows


def samples_file(results: Path, task: str) -> Path:
    """The ``--log_samples`` JSONL of ``task`` written with ``results``."""
    suffix = results.name[len("results_"):-len(".json")]
    path = results.with_name(f"samples_{task}_{suffix}.jsonl")
    if not path.is_file():
        raise IngestError(f"{results}: no per-sample file {path.name} beside it; "
                          "rerun lm-eval with --log_samples (the leaderboard needs per-question scores)")
    return path


def _sidecar_for(results: Path, pattern: str, time_key: str) -> Optional[Path]:
    """Among sidecars matching ``pattern``, the latest whose time is not after the results date."""
    limit = stamp_of(results)
    best, best_time = None, None
    for path in sorted(results.parent.glob(pattern)):
        when = stamp_of(path)
        if time_key:
            try:
                when = parse_time(json.loads(path.read_text(encoding="utf-8")).get(time_key)) or when
            except (OSError, ValueError):
                continue
        if when is None or (limit is not None and when > limit):
            continue
        if best_time is None or when > best_time:
            best, best_time = path, when
    return best


def run_sidecar(results: Path) -> tuple[Optional[Path], dict]:
    path = _sidecar_for(results, "inftythink_run_*.json", "started_at")
    return (path, read_json(path)) if path else (None, {})


def traces_sidecar(results: Path, run_path: Optional[Path]) -> Optional[Path]:
    if run_path is not None:
        twin = run_path.with_name(run_path.name.replace("inftythink_run_", "inftythink_traces_").replace(".json", ".jsonl"))
        if twin.is_file():
            return twin
    return _sidecar_for(results, "inftythink_traces_*.jsonl", "")


def weights_sha256(folder: Path) -> Optional[str]:
    """``sha256:<hex>`` over the names and contents of a local model folder's weight files."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    if not files:
        return None
    total = hashlib.sha256()
    for path in files:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        total.update(f"{path.relative_to(folder)}:{digest.hexdigest()}\n".encode())
    return "sha256:" + total.hexdigest()


def _calls(trace: dict) -> list[dict]:
    return list(trace.get("rounds") or trace.get("calls") or [])


def condense_traces(traces: list[dict], task: str, doc_acc: dict) -> dict:
    """Rounds histogram (with correctness), one sample's sawtooth, and throughput for ``task``.

    ``doc_acc`` maps doc_id to the question's score; with several samples per
    question each sample counts with its question's mean score.
    """
    mine = [t for t in traces if t.get("task") in (None, task)]
    hist: dict[int, list[float]] = {}
    starts, ends, tokens = [], [], 0
    for trace in mine:
        totals = trace.get("totals") or {}
        rounds = int(totals.get("rounds") or 0)
        slot = hist.setdefault(rounds, [0, 0.0])
        slot[0] += 1
        slot[1] += float(doc_acc.get(trace.get("doc_id"), 0.0) or 0.0)
        tokens += int(totals.get("tok") or 0)
        for call in _calls(trace):
            start, end = call.get("submitted", call.get("started")), call.get("finished", call.get("ended"))
            if isinstance(start, (int, float)) and isinstance(end, (int, float)):
                starts.append(start), ends.append(end)
    wall = (max(ends) - min(starts)) if starts else 0.0
    return {
        "rounds_hist": [{"rounds": r, "n": n, "correct": round(c, 6)} for r, (n, c) in sorted(hist.items())],
        "sawtooth": _sawtooth(mine),
        "throughput": tokens / wall if wall > 0 else None,
    }


def _sawtooth(traces: list[dict]) -> dict:
    """Prompt and output tokens of each call of the first sample (lowest doc_id, repeat 0)."""
    if not traces:
        return {}
    first = min(traces, key=lambda t: (_as_int(t.get("doc_id")), _as_int(t.get("repeat"))))
    calls = [[c.get("role", "reason"), int(c.get("prompt_tokens") or 0), int(c.get("output_tokens") or 0)]
             for c in _calls(first)]
    return {"doc_id": first.get("doc_id"), "calls": calls} if calls else {}


def _as_int(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 1 << 30
