"""Run a picklable function in worker processes under a hard time limit, from any thread.

Owns: a small pool of worker processes (plain ``python -c`` subprocesses
speaking length-prefixed pickle over pipes, so nothing depends on the
caller's ``__main__``), each serving one call at a time.  A call that runs
past its limit has its worker killed (SIGKILL) and replaced; the caller gets
``TIMED_OUT`` back instead of hanging.  The limit counts the call only: a
worker's start-up (Python, the ``preload`` modules such as math-verify and
sympy) and the import of the called function's module come before the clock
starts, so a cold worker on a loaded machine is not a timeout.  This is the guard for math-verify,
whose own time limit uses ``signal.alarm`` and so only works in the main
thread.

Does not know: what the functions compute (math checking lives in
``mathcheck``); lm-eval.
"""

from __future__ import annotations

import atexit
import importlib
import os
import pickle
import queue
import select
import struct
import subprocess
import sys
import threading
import time
from typing import Any, Callable

TIMED_OUT = object()  # sentinel result of a call that hit its time limit
_HEADER = struct.Struct("!Q")
_BOOT = "import sys; from inftythink_eval.scoring.timelimit import serve; serve(sys.argv[1:])"
_READY, _STARTED = "ready", "started"
# Bounds a worker that hangs while it starts or imports (a broken environment), never a speed: past it the worker
# counts as dead, not the call as timed out.
STARTUP_BOUND_S = 600.0


def _read_exact(fd: int, size: int, deadline: float | None) -> bytes:
    chunks, left = [], size
    while left:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                raise TimeoutError
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError("worker closed its pipe")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _send(fd: int, obj: Any) -> None:
    data = pickle.dumps(obj)
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


def _recv(fd: int, deadline: float | None = None) -> Any:
    (size,) = _HEADER.unpack(_read_exact(fd, _HEADER.size, deadline))
    return pickle.loads(_read_exact(fd, size, deadline))


def serve(preload: list[str] | tuple[str, ...] = ()) -> None:
    """Worker main loop: fd 0 carries calls in, a private copy of fd 1 carries results out.

    Says ``ready`` once the ``preload`` modules are imported, and ``started`` once a call is unpickled (its
    function's module imported): the caller's clock starts there."""
    out = os.dup(1)
    os.dup2(2, 1)  # stray prints of the called code go to stderr, not into the protocol
    for name in preload:
        importlib.import_module(name)
    _send(out, _READY)
    while True:
        try:
            fn, args = _recv(0)
        except EOFError:
            return
        _send(out, _STARTED)
        try:
            reply = (True, fn(*args))
        except BaseException as exc:  # report, never kill the worker
            reply = (False, f"{type(exc).__name__}: {exc}")
        _send(out, reply)


class _WorkerHung(OSError):
    """The worker did not get ready (or did not start a call) within ``STARTUP_BOUND_S``."""


class _Worker:
    def __init__(self, preload: tuple[str, ...] = ()) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", _BOOT, *preload], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, start_new_session=True)
        self.ready = False

    def _expect(self, word: str) -> None:
        try:
            got = _recv(self.proc.stdout.fileno(), time.monotonic() + STARTUP_BOUND_S)
        except TimeoutError:
            raise _WorkerHung(f"no {word!r} from the worker within {STARTUP_BOUND_S:.0f} s") from None
        if got != word:
            raise _WorkerHung(f"the worker said {got!r}, expected {word!r}")

    def call(self, fn: Callable, args: tuple, limit: float) -> tuple[bool, Any]:
        if not self.ready:
            self._expect(_READY)
            self.ready = True
        _send(self.proc.stdin.fileno(), (fn, args))
        self._expect(_STARTED)
        return _recv(self.proc.stdout.fileno(), time.monotonic() + limit)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.proc.stdin.close()
        self.proc.stdout.close()


class TimeLimitedPool:
    """Up to ``size`` workers; ``call`` is thread-safe and never hangs past ``limit`` seconds of the call's own
    run (each worker imports ``preload`` before its first call, outside any limit)."""

    def __init__(self, size: int | None = None, preload: tuple[str, ...] = ()) -> None:
        self.size = max(1, size or os.cpu_count() or 1)
        self.preload = tuple(preload)
        self._idle: "queue.Queue[_Worker]" = queue.Queue()
        self._started = 0
        self._lock = threading.Lock()
        self.timeouts = 0

    def _acquire(self) -> _Worker:
        with self._lock:
            if self._idle.empty() and self._started < self.size:
                self._started += 1
                return _Worker(self.preload)
        return self._idle.get()

    def _discard(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            self._started -= 1

    def call(self, fn: Callable, args: tuple, limit: float) -> Any:
        """``fn(*args)`` in a worker; ``TIMED_OUT`` past ``limit``; an exception inside becomes ``RuntimeError``."""
        worker = self._acquire()
        try:
            ok, value = worker.call(fn, args, limit)
        except TimeoutError:
            self._discard(worker)
            with self._lock:
                self.timeouts += 1
            return TIMED_OUT
        except (EOFError, OSError) as exc:  # the worker died (e.g. killed for memory)
            self._discard(worker)
            raise RuntimeError(f"time-limited worker died: {exc}") from exc
        self._idle.put(worker)
        if not ok:
            raise RuntimeError(value)
        return value

    def close(self) -> None:
        while not self._idle.empty():
            self._discard(self._idle.get_nowait())


_shared: TimeLimitedPool | None = None
_shared_lock = threading.Lock()


def shared_pool(preload: tuple[str, ...] = ()) -> TimeLimitedPool:
    """The process-wide pool (one worker per core), created on first use (with the first caller's ``preload``),
    closed at exit."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = TimeLimitedPool(preload=preload)
            atexit.register(_shared.close)
        return _shared
