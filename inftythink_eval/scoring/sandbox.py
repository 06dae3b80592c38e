"""Run untrusted Python in a confined subprocess and say how it ended.

Owns: ``SandboxLimits`` (validated, frozen), one run (``run_python``: a
fresh temporary folder, a stripped environment, its own session and
process group, wall-clock limit, output captured to size-limited files,
the folder removed afterwards) and many runs in parallel across cores
(``run_many``).  The confinement itself is done by ``_jail.py`` in the
child: as root, no network (new network namespace), a read-only file
system except the sandbox folder, a PID namespace, and an unprivileged
leased uid (see below); otherwise resource limits only (see docs/tasks.md).

A pass is an exit status 0 AFTER the program's last line ran: ``run_python``
appends a line that writes a per-run random token to a file the parent checks,
so a program that exits 0 early (``sys.exit``, ``os._exit``, ``unittest.main()``
before the tests) fails.  This guards against early exits, not against a
program written to forge the token (it can read its own source).

Uids: each run leases one uid of ``BASE_UID .. BASE_UID + UID_COUNT - 1``
with an exclusive ``flock`` on ``UID_LOCK_DIR/<uid>.lock``, so runs in other
processes on the same machine (other evaluations) never share a uid, and so
never share its process-count limit.  The kernel drops the lock when its
holder dies: no stale leases.

Does not know: tests, benchmarks, what "passing" means beyond "ran to its end and exited 0".
"""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence

_JAIL = str(Path(__file__).with_name("_jail.py"))
BASE_UID = 61000     # runs lease uids BASE_UID .. BASE_UID + UID_COUNT - 1 (root only)
UID_COUNT = 4096
UID_LOCK_DIR = "/run/inftythink-sandbox"  # one lock file per uid, shared by every process on the machine
_DONE_FILE = ".ran-to-end"
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
    uid: Optional[int] = None  # the uid it ran as (None: limits only)


EARLY_EXIT = "failed: exited 0 before its last line ran (sys.exit, os._exit or unittest.main() before the tests?)"


def _reason(rc: Optional[int], stderr: str, timed_out: bool, limits: SandboxLimits, ran_to_end: bool) -> str:
    if timed_out:
        return f"timeout: over the {limits.wall_s:g} s wall-clock limit"
    if rc == 0:
        return "passed" if ran_to_end else EARLY_EXIT
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


def run_python(code: str, limits: SandboxLimits = SandboxLimits()) -> SandboxResult:
    """Run ``code`` as a Python program inside the sandbox (one fresh folder, removed afterwards)."""
    isolated = limits.isolated
    if not isolated:
        return _run_as(code, limits, None)
    with _lease_uid() as uid:
        return _run_as(code, limits, uid)


def _run_as(code: str, limits: SandboxLimits, uid: Optional[int]) -> SandboxResult:
    if uid is not None:
        _check_reachable(Path(tempfile.gettempdir()), uid)
    base = Path(tempfile.mkdtemp(prefix="inftythink-sandbox-"))
    base.chmod(0o711)  # the dropped uid may enter, not list
    work = base / "work"
    work.mkdir()
    token = secrets.token_hex(16)
    # Appended, not truncated: when forked copies of the program also reach the end, one of them truncating the
    # file just as the first exits must not read as an early exit.
    marker = f"\n\n# sandbox: reached only when every line above ran\n" \
             f"__import__('builtins').open({str(work / _DONE_FILE)!r}, 'a').write({token!r})\n"
    (work / "main.py").write_text(code + marker, encoding="utf-8")
    if uid is not None:
        os.chown(work, uid, uid)
        os.chown(work / "main.py", uid, uid)
    env = dict(_SAFE_ENV, HOME=str(work), TMPDIR=str(work))
    config = {"workdir": str(work), "uid": uid, "isolate": uid is not None, "env": env,
              "limits": {"cpu_s": limits.cpu_s, "as_bytes": limits.memory_mb << 20,
                         "fsize_bytes": limits.file_mb << 20, "nproc": limits.nproc, "nofile": limits.nofile}}
    start = time.monotonic()
    try:
        python, config["binds"] = _interpreter(work, uid)
        config["argv"] = [python, "-I", "main.py"]
        rc, timed_out = _launch(config, base, limits.wall_s)
        stdout, stderr = _tail(base / "stdout"), _tail(base / "stderr")
        done = _read_small(work / _DONE_FILE)
        ran_to_end = bool(done) and not done.replace(token, "")  # the token, once per process that reached the end
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if rc == 125 and "jail:" in stderr:
        raise SandboxError(_setup_failure(stderr, uid))
    reason = _reason(rc, stderr, timed_out, limits, ran_to_end)
    return SandboxResult(reason == "passed", reason, rc, stdout, stderr, time.monotonic() - start, uid)


def _launch(config: dict, base: Path, wall_s: float) -> tuple[Optional[int], bool]:
    """Run the jail with ``config``; (exit status, timed out).  Output goes to ``base``/stdout|stderr."""
    with open(base / "stdout", "wb") as out, open(base / "stderr", "wb") as err:
        proc = subprocess.Popen([sys.executable, "-I", "-S", _JAIL, json.dumps(config)], cwd=config["workdir"],
                                env=config["env"], stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                start_new_session=True)
        timed_out = False
        try:
            proc.wait(timeout=wall_s)
        except subprocess.TimeoutExpired:
            timed_out = True
        _kill_group(proc.pid)
        proc.wait()
    return proc.returncode, timed_out


def _read_small(path: Path, limit: int = 256) -> Optional[str]:
    """A short regular file's text, never following a link or blocking on a FIFO the program left there."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, limit).decode("utf-8", "replace")
    finally:
        os.close(fd)


def _setup_failure(stderr: str, uid: Optional[int]) -> str:
    line = stderr.strip().splitlines()[-1]
    if uid is None:
        return f"sandbox setup failed: {line}"
    if os.geteuid() != 0:
        return f"sandbox setup failed: {line} (run as root for full isolation, or pass SandboxLimits(isolate=False))"
    return (f"sandbox setup failed as root: {line}. Expected: new mount/network/PID namespaces and uid {uid} "
            "allowed here; in a container this needs e.g. --privileged or CAP_SYS_ADMIN. For limits only, pass "
            "SandboxLimits(isolate=False)")


def _check_reachable(folder: Path, uid: int) -> None:
    """The sandbox folder goes under ``folder``: every folder above it must let other users pass (o+x)."""
    for parent in [folder.resolve(), *folder.resolve().parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            raise SandboxError(
                f"the sandbox folder would be created under {folder}, but {parent} (mode {stat.S_IMODE(mode):04o}) "
                f"does not let other users pass, so the sandbox uid {uid} cannot enter its own folder. "
                f"Set TMPDIR to a folder every user can traverse (e.g. TMPDIR=/tmp), or chmod o+x {parent}")


@contextmanager
def _lease_uid() -> Iterator[int]:
    """An unused sandbox uid, held (flock) until the run ends; other processes skip it."""
    try:
        os.makedirs(UID_LOCK_DIR, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise SandboxError(f"cannot create the uid lock folder {UID_LOCK_DIR}: {exc}; it must be writable by "
                           "root (isolated runs need root)") from exc
    first = next(_uid_cursor)
    for i in range(UID_COUNT):
        uid = BASE_UID + (first + i) % UID_COUNT
        fd = os.open(os.path.join(UID_LOCK_DIR, f"{uid}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        try:
            yield uid
        finally:
            os.close(fd)  # releases the lease
        return
    raise SandboxError(f"all {UID_COUNT} sandbox uids ({BASE_UID}..{BASE_UID + UID_COUNT - 1}) are in use by "
                       f"running sandboxes (locks in {UID_LOCK_DIR}); run fewer sandboxes at once")


# each process starts at its own place and moves on every run, so a uid is rarely reused soon after its last run
_uid_cursor = itertools.count(secrets.randbelow(UID_COUNT))


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
    from tqdm.auto import tqdm

    with ThreadPoolExecutor(workers) as threads:
        results = threads.map(lambda code: run_python(code, limits), programs)
        return list(tqdm(results, total=len(programs), desc="sandbox", disable=not progress))
