"""Run untrusted Python in a confined subprocess and say how it ended.

Owns: ``SandboxLimits`` (validated, frozen), one run (``run_python``: a
fresh temporary folder, a stripped environment, its own session and
process group, wall-clock limit, output captured to size-limited files,
the folder removed afterwards) and many runs in parallel across cores
(``run_many``).  The confinement itself is done by ``_jail.py`` in the
child: as root, no network (new network namespace), a read-only file
system except the sandbox folder, a PID namespace, and an unprivileged
per-slot uid; otherwise resource limits only (see docs/tasks.md).

Does not know: tests, benchmarks, what "passing" means beyond exit 0.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

_JAIL = str(Path(__file__).with_name("_jail.py"))
BASE_UID = 61000  # slot i runs as uid BASE_UID + i (root only)
_SAFE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
             "PYTHONHASHSEED": "0"}


class SandboxError(RuntimeError):
    """The sandbox could not be set up (not the program's fault); never scored as a failed sample."""


@dataclass(frozen=True)
class SandboxLimits:
    """Limits of one run."""

    wall_s: float = 10.0      # wall-clock seconds before the whole process group is killed
    cpu_s: int = 10           # CPU seconds (RLIMIT_CPU)
    memory_mb: int = 2048     # address space (RLIMIT_AS)
    file_mb: int = 16         # largest file it may write, its captured output included (RLIMIT_FSIZE)
    nproc: int = 32           # processes/threads of its uid (RLIMIT_NPROC; enforced for the dropped uid)
    nofile: int = 128         # open files (RLIMIT_NOFILE)
    isolate: Optional[bool] = None  # namespaces + uid drop; None: when running as root

    def __post_init__(self) -> None:
        for name in ("wall_s", "cpu_s", "memory_mb", "file_mb", "nproc", "nofile"):
            if not getattr(self, name) > 0:
                raise ValueError(f"SandboxLimits.{name} must be > 0, got {getattr(self, name)!r}")

    @property
    def isolated(self) -> bool:
        return (os.geteuid() == 0) if self.isolate is None else bool(self.isolate)


@dataclass(frozen=True)
class SandboxResult:
    """How a run ended.  ``reason`` is "passed" or a short human-readable cause."""

    passed: bool
    reason: str
    returncode: Optional[int]
    stdout: str
    stderr: str
    wall_s: float


def _reason(rc: Optional[int], stderr: str, timed_out: bool, limits: SandboxLimits) -> str:
    if timed_out:
        return f"timeout: over the {limits.wall_s:g} s wall-clock limit"
    if rc == 0:
        return "passed"
    if "MemoryError" in stderr:
        return f"memory: over the {limits.memory_mb} MB address-space limit (MemoryError)"
    sig = -rc if rc < 0 else rc - 128 if rc > 128 else None
    if sig == signal.SIGXCPU or sig == signal.SIGKILL and "Traceback" not in stderr:
        return f"killed by signal {signal.Signals(sig).name} (CPU {limits.cpu_s} s or memory limit)"
    if sig:
        return f"killed by signal {signal.Signals(sig).name}"
    lines = [l for l in stderr.strip().splitlines() if l.strip()]
    return f"failed: {lines[-1][:300]}" if lines else f"failed: exit status {rc}"


def _tail(path: Path, limit: int = 8192) -> str:
    with open(path, "rb") as handle:
        handle.seek(max(0, path.stat().st_size - limit))
        return handle.read().decode("utf-8", "replace")


def run_python(code: str, limits: SandboxLimits = SandboxLimits(), slot: int = 0) -> SandboxResult:
    """Run ``code`` as a Python program inside the sandbox (one fresh folder, removed afterwards)."""
    isolated = limits.isolated
    base = Path(tempfile.mkdtemp(prefix="inftythink-sandbox-"))
    base.chmod(0o711)  # the dropped uid may enter, not list
    work = base / "work"
    work.mkdir()
    (work / "main.py").write_text(code, encoding="utf-8")
    uid = BASE_UID + slot if isolated else None
    if uid is not None:
        os.chown(work, uid, uid)
        os.chown(work / "main.py", uid, uid)
    env = dict(_SAFE_ENV, HOME=str(work), TMPDIR=str(work))
    python, binds = _interpreter(work, uid)
    config = {"workdir": str(work), "uid": uid, "isolate": isolated, "env": env, "binds": binds,
              "argv": [python, "-I", "main.py"],
              "limits": {"cpu_s": limits.cpu_s, "as_bytes": limits.memory_mb << 20,
                         "fsize_bytes": limits.file_mb << 20, "nproc": limits.nproc, "nofile": limits.nofile}}
    out_path, err_path = base / "stdout", base / "stderr"
    start = time.monotonic()
    try:
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen([sys.executable, "-I", "-S", _JAIL, json.dumps(config)], cwd=work, env=env,
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True)
            timed_out = False
            try:
                proc.wait(timeout=limits.wall_s)
            except subprocess.TimeoutExpired:
                timed_out = True
            _kill_group(proc.pid)
            proc.wait()
        stdout, stderr = _tail(out_path), _tail(err_path)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if proc.returncode == 125 and "jail:" in stderr:
        raise SandboxError(f"sandbox setup failed: {stderr.strip().splitlines()[-1]} "
                           "(run as root for full isolation, or pass SandboxLimits(isolate=False))")
    reason = _reason(proc.returncode, stderr, timed_out, limits)
    return SandboxResult(reason == "passed", reason, proc.returncode, stdout, stderr, time.monotonic() - start)


def _interpreter(work: Path, uid: Optional[int]) -> tuple[str, list]:
    """Path of Python as seen by the sandboxed uid, and the read-only bind that makes it reachable.

    When the interpreter lives under a folder other users cannot enter (e.g.
    ``/root/.pyenv``), its installation is bound read-only at ``work/.python``.
    """
    real = os.path.realpath(sys.executable)
    if uid is None or _world_reachable(real):
        return real, []
    prefix = os.path.realpath(sys.base_prefix)
    if not real.startswith(prefix + os.sep):
        raise SandboxError(f"cannot expose the interpreter {real} to the sandbox uid (not under {prefix})")
    target = work / ".python"
    target.mkdir()
    return str(target / os.path.relpath(real, prefix)), [[prefix, str(target)]]


def _world_reachable(path: str) -> bool:
    parts = Path(path).parents
    return all(os.stat(p).st_mode & 0o001 for p in parts) and bool(os.stat(path).st_mode & 0o005)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_many(programs: Sequence[str], limits: SandboxLimits = SandboxLimits(), workers: Optional[int] = None,
             progress: bool = False) -> list[SandboxResult]:
    """``run_python`` over many programs in parallel (one per core by default), results in input order."""
    workers = max(1, workers or os.cpu_count() or 1)
    slots: "queue.Queue[int]" = queue.Queue()
    for i in range(workers):
        slots.put(i)

    def one(code: str) -> SandboxResult:
        slot = slots.get()
        try:
            return run_python(code, limits, slot)
        finally:
            slots.put(slot)

    from tqdm.auto import tqdm

    with ThreadPoolExecutor(workers) as threads:
        results = threads.map(one, programs)
        return list(tqdm(results, total=len(programs), desc="sandbox", disable=not progress))
