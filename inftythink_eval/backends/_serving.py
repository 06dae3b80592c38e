"""The request queue between ``submit`` and a backend's engine thread.

Owns: pending requests with their futures and arrival times, the engine
thread's life (started on the first request, stopped on close) and the rule
that nothing waits forever: if the engine thread dies, every pending and
running future fails with that error.

Does not know: any engine.  A backend gives ``serve(queue)``, a loop that
takes work with ``take`` and resolves futures itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable, Optional

from inftythink_eval.backends.base import Completion, Request

log = logging.getLogger(__name__)


@dataclass
class Pending:
    """One submitted request: the future its caller waits on and when it arrived."""

    request: Request
    future: "Future[Completion]"
    submitted: float = field(default_factory=time.time)
    started: Optional[float] = None
    """When the engine gave the request a slot, where the engine thread records it."""
    first_token: Optional[float] = None
    token_times: list[float] = field(default_factory=list)
    """When each output token was produced, where the engine thread records it."""

    def resolve(self, completion: Completion) -> None:
        if not self.future.done():
            self.future.set_result(completion.stamped(self.submitted, self.first_token, token_times=self.token_times,
                                                      started=self.started))

    def fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)


class RequestQueue:
    """Requests waiting for one engine thread; ``serve`` runs on that thread until ``close``."""

    def __init__(self, serve: Callable[["RequestQueue"], None], name: str) -> None:
        self._serve, self._name = serve, name
        self._items: deque[Pending] = deque()
        self._cond = threading.Condition()
        self._thread: Optional[threading.Thread] = None
        self.closed = False
        self._held: dict[int, Pending] = {}

    def submit(self, request: Request) -> "Future[Completion]":
        item = Pending(request, Future())
        with self._cond:
            if self.closed:
                raise RuntimeError(f"{self._name}: backend is closed")
            self._items.append(item)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify_all()
        return item.future

    def take(self, limit: int, wait: Optional[float] = None) -> list[Pending]:
        """Up to ``limit`` waiting requests, oldest first.  With ``wait`` (seconds; ``None`` forever)
        block until at least one is there; an empty list means closed (or the wait ran out)."""
        with self._cond:
            if wait is None:
                while not self._items and not self.closed:
                    self._cond.wait()
            elif wait > 0 and not self._items and not self.closed:
                self._cond.wait(wait)
            taken = [self._items.popleft() for _ in range(min(limit, len(self._items)))]
            for item in taken:
                self._held[id(item)] = item
            return taken

    def release(self, items) -> None:
        """The engine is done with these (resolved or failed)."""
        with self._cond:
            for item in items:
                self._held.pop(id(item), None)

    def waiting(self) -> int:
        with self._cond:
            return len(self._items)

    def close(self, timeout: float = 60.0) -> None:
        """Fail every request still waiting, then wait (up to ``timeout`` seconds) for the engine thread to
        leave its current batch.  The engine must not be inside a model call when the interpreter exits: a
        torch op cut off at shutdown aborts the process (``terminate called without an active exception``)."""
        with self._cond:
            self.closed = True
            self._cond.notify_all()
        self._fail_all(RuntimeError(f"{self._name}: backend closed"))
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                log.warning("%s: the engine thread is still busy %.0f s after close; not waiting longer",
                            self._name, timeout)

    def alive(self) -> bool:
        """True while the engine thread runs (for tests and diagnostics)."""
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        try:
            self._serve(self)
        except BaseException as exc:  # noqa: BLE001 - every waiter learns of it; nothing hangs
            log.error("%s: engine thread failed: %s", self._name, exc)
            self._fail_all(exc)

    def _fail_all(self, exc: BaseException) -> None:
        with self._cond:
            items = list(self._items) + list(self._held.values())
            self._items.clear()
            self._held.clear()
        for item in items:
            item.fail(exc)
