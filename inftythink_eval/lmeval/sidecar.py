"""Files written beside lm-eval's output: the run's provenance and every sample's trace.

Owns: locating lm-eval's output folder (``--output_path`` / the model name
lm-eval sanitises), ``inftythink_run_<date>.json`` (provenance: engine,
model path, revision or weight-file hash, mode parameters, batching,
hardware, versions, git commit) and ``inftythink_traces_<date>.jsonl`` (one
line per sample and repeat, appended as each batch finishes).  All writes
are atomic (temp file + rename) or whole-line appends (one write, fsynced,
rolled back when the disk refuses it, with a ``SidecarError`` that says so).

Does not know: how traces were produced.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

_HASH_LIMIT = 4 * 1024**3  # hash weight files up to 4 GiB in total; above, record sizes only


def lm_eval_output_dir(pretrained: Optional[str], argv: list[str] | None = None) -> Optional[Path]:
    """The folder lm-eval writes results to, read from the command line (None when there is none)."""
    argv = sys.argv if argv is None else argv
    out = None
    for i, arg in enumerate(argv):
        if arg in ("--output_path", "-o") and i + 1 < len(argv):
            out = argv[i + 1]
        elif arg.startswith("--output_path="):
            out = arg.split("=", 1)[1]
    if out is None:
        return None
    path = Path(out)
    if path.suffix == ".json":
        return path.parent
    if not pretrained:
        import logging

        logging.getLogger(__name__).warning(
            "no pretrained= in model_args: lm-eval names its output folder at random, so the inftythink "
            "sidecars go to %s itself; pass pretrained=<name> to keep them beside the results", path)
        return path
    name = re.sub(r"[\"<>:/|\\?*\[\]]+", "__", pretrained)  # lm-eval's sanitize_model_name
    return path / name


class SidecarError(OSError):
    """A sidecar file could not be written (the disk is full, the folder is read-only)."""


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise SidecarError(f"could not write {path} ({exc}): is the disk full? Nothing was replaced; free space "
                           "and rerun (with the same cache_dir no finished call is computed again)") from exc


def append_lines(path: Path, lines: list[str]) -> None:
    """Append whole lines with one write, fsynced; a write the disk refuses is rolled back (no torn line)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(lines).encode("utf-8", "surrogatepass")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        size = os.fstat(fd).st_size
        try:
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(f"only {written} of {len(data)} bytes written")
            os.fsync(fd)
        except OSError as exc:
            os.ftruncate(fd, size)
            raise SidecarError(f"could not append {len(lines)} lines to {path} ({exc}): is the disk full? The lines "
                               "written before are intact; free space and rerun with the same cache_dir (no finished "
                               "call is computed again)") from exc
    finally:
        os.close(fd)


def weights_fingerprint(model_path: str) -> dict[str, Any]:
    """sha256 over a local model's files (or the hub id, when not local)."""
    path = Path(model_path)
    if not path.exists():
        return {"hub_id": model_path}
    files = sorted(p for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file())
    total = sum(p.stat().st_size for p in files)
    if total > _HASH_LIMIT:
        return {"files": {p.name: p.stat().st_size for p in files}, "sha256": None}
    digest = hashlib.sha256()
    for p in files:
        digest.update(p.name.encode())
        with open(p, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return {"sha256": digest.hexdigest(), "bytes": total}


def hardware() -> dict[str, Any]:
    info: dict[str, Any] = {"platform": platform.platform(), "cpu_count": os.cpu_count()}
    try:
        text = Path("/proc/cpuinfo").read_text()
        info["cpu"] = next((l.split(":", 1)[1].strip() for l in text.splitlines() if l.startswith("model name")), None)
    except OSError:
        info["cpu"] = platform.processor()
    try:
        import torch

        if torch.cuda.is_available():
            info["gpu"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        pass
    return info


def git_commit() -> Optional[str]:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


class Sidecar:
    """Writes the run file once and appends trace lines as batches finish."""

    def __init__(self, folder: Optional[Path], provenance: dict[str, Any]) -> None:
        self.folder = folder
        stamp = datetime.now().isoformat().replace(":", "-")
        self.run_path = folder / f"inftythink_run_{stamp}.json" if folder else None
        self.trace_path = folder / f"inftythink_traces_{stamp}.jsonl" if folder else None
        self.provenance = {"started_at": datetime.now().isoformat(), **provenance}
        if self.run_path is not None:
            atomic_write_text(self.run_path, json.dumps(self.provenance, indent=2, default=_default))

    def update(self, facts: dict[str, Any]) -> None:
        """Add what is only known as the run goes (which serving path took how many requests) to the run
        file, rewritten atomically; a kill keeps the last complete version."""
        changed = {k: v for k, v in facts.items() if self.provenance.get(k) != v}
        if not changed:
            return
        self.provenance.update(changed)
        if self.run_path is not None:
            atomic_write_text(self.run_path, json.dumps(self.provenance, indent=2, default=_default))

    def append(self, rows: list[dict]) -> None:
        if self.trace_path is None or not rows:
            return
        append_lines(self.trace_path, [json.dumps(r, ensure_ascii=False, default=_default) + "\n" for r in rows])


def _default(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)
