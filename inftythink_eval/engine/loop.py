"""The round scheduler: runs samples call by call until each mode says it is final.

Owns: the run loop, cache lookups before each call (with ``derive_budgets``,
also a shorter budget's call from a longer cached one, ``run.budgets``), scheduling policy,
per-call timing, the progress bar.  Backends are request-level: each call is
submitted the moment its sample's previous call finishes ("continuous"), and
its completion comes back when *that request* finishes, with its own
timestamps, so one long sample never stalls the rest and a sample's LAT is
its own.  The "rounds" policy (round-synchronous: every call of round k
finishes before any call of round k+1 is submitted) exists for comparison
benchmarks.

All run state lives on the caller's thread: backends' threads only put
finished calls on a queue (after writing them to the cache, so a finished
call is never lost).  A request that fails for good (``RequestError``) ends
its sample with a recorded error; any other exception, from a backend or a
mode, ends the run at once with a clear error and every finished call kept.

Does not know: what the calls mean (``modes``), lm-eval, files other than the cache.
"""

from __future__ import annotations

import contextlib
import queue
import signal
import threading
import time
from concurrent.futures import Future
from typing import Optional, Sequence

from inftythink_eval.backends.base import Backend, BackendError, Completion, Request, RequestError
from inftythink_eval.run import budgets
from inftythink_eval.run.cache import CallCache, call_key, family_key
from inftythink_eval.modes import Mode, ModeParams, Sample, make_mode
from inftythink_eval.engine.prompts import make_tools
from inftythink_eval.run.trace import Call, CallRecord, Final, Trace

SCHEDULES = ("continuous", "rounds")


class Engine:
    """Runs ``Sample``s through a ``Mode`` on one or two backends ("main", "summarizer")."""

    def __init__(self, backend: Backend, mode: str | Mode = "vanilla", params: ModeParams = ModeParams(),
                 summarizer: Optional[Backend] = None, cache: Optional[CallCache] = None,
                 schedule: str = "continuous", progress: bool = True, derive_budgets: bool = False) -> None:
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
        self.backends = {"main": backend, "summarizer": summarizer or backend}
        self.mode = make_mode(mode, make_tools(backend, self.backends["summarizer"]), params) if isinstance(mode, str) else mode
        self.cache, self.schedule, self.progress = cache, schedule, progress
        self.derive_budgets = derive_budgets and cache is not None  # shorter budgets from longer cached calls
        self.derived = 0

    def run(self, samples: Sequence[Sample]) -> list[Trace]:
        return _Run(self, list(samples)).execute()


class _Run:
    """State of one ``Engine.run`` call; touched only by the caller's thread."""

    def __init__(self, engine: Engine, samples: list[Sample]) -> None:
        self.engine, self.samples = engine, samples
        self.traces = [Trace(sample_id=s.id) for s in samples]
        self.finished: "queue.SimpleQueue[tuple]" = queue.SimpleQueue()  # filled by backend threads
        self.done = self.in_flight = self.calls = self.generated = 0
        self.held: list[tuple] = []  # "rounds" schedule: calls waiting for the round to finish
        self.kept, self.kept_lock = 0, threading.Lock()  # calls finished and persisted (counted on backend threads)

    def execute(self) -> list[Trace]:
        self.bar, self.start = _progress(len(self.samples), self.engine.progress), time.time()
        try:
            with _signals_interrupt():
                for index in range(len(self.samples)):
                    self._advance(index)
                self._flush_if_round_done()
                while self.done < len(self.samples):
                    try:
                        event = self.finished.get(timeout=0.5)
                    except queue.Empty:
                        continue
                    self._deliver(*event)
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (see _signals_interrupt)
            if self.engine.cache is not None:
                self.engine.cache.close()  # a write in progress ends whole; none starts after
            raise self._stopped(RunInterrupted(self._stopped_message(exc, "interrupted"))) from None
        except Exception as exc:  # noqa: BLE001 - one clear error, finished calls kept
            raise self._stopped(BackendError(self._stopped_message(exc))) from exc
        finally:
            if self.bar is not None:
                self.bar.close()
        return self.traces

    def _stopped(self, error: BaseException) -> BaseException:
        """The error, carrying the traces of the samples that finished (``finished_traces``) for a caller that
        writes them before it exits."""
        error.finished_traces = [t for t in self.traces if t.final is not None]
        return error

    def _stopped_message(self, exc: BaseException, what: str = "stopped") -> str:
        kept = self.kept + sum(c.cached for t in self.traces for c in t.calls)
        cache = self.engine.cache
        where = (f" in the cache ({cache.folder}); rerun the same command with the same cache_dir to resume"
                 if cache is not None else "; set cache_dir to resume without recomputing them")
        why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return f"generation {what}: {why}. {kept} finished calls are kept{where}"

    # --- stages ---------------------------------------------------------------
    def _advance(self, index: int) -> None:
        """Ask the mode what comes next; serve it from the cache or submit it."""
        sample, trace = self.samples[index], self.traces[index]
        while True:
            decision = self.engine.mode.next_call(sample, trace.calls)
            if isinstance(decision, Final):
                self._finish(index, decision)
                return
            backend = self.engine.backends[decision.backend]
            request = Request(decision.prompt, decision.params)
            key = call_key(_fingerprint(backend), decision.backend, request)
            hit = self.engine.cache.get(key) if self.engine.cache else None
            if hit is None and self.engine.derive_budgets:
                hit = self._derived(backend, decision.backend, request)
            if hit is None:
                item = (index, decision, request, key)
                self.held.append(item) if self.engine.schedule == "rounds" else self._submit(item)
                return
            completion, latency = hit
            now = time.time()
            trace.calls.append(_record(decision, completion, now - latency, now, cached=True,
                                       kv_token_bytes=getattr(backend, "kv_bytes_per_token", None)))

    def _derived(self, backend: Backend, role: str, request: Request) -> Optional[tuple[Completion, float]]:
        """The call at this budget from a longer cached generation of it (``run.budgets``), or None."""
        text_of = getattr(backend, "text_of", None)
        if text_of is None or not budgets.derivable(request.params):
            return None
        entry = self.engine.cache.longest(family_key(_fingerprint(backend), role, request), request.params.max_tokens)
        hit = budgets.derive(entry, request.params, text_of) if entry is not None else None
        if hit is not None:
            self.engine.derived += 1
        return hit

    def _finish(self, index: int, final: Final) -> None:
        self.traces[index].final = final
        if final.reason == "error":
            self.traces[index].error = final.error
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)

    def _submit(self, item: tuple) -> None:
        index, call, request, key = item
        backend = self.engine.backends[call.backend]
        self.in_flight += 1
        future = backend.submit(request)
        future.add_done_callback(lambda f: self._on_done(item, f))

    def _on_done(self, item: tuple, future: "Future[Completion]") -> None:
        """Runs on the backend's thread: persist first, then hand the call to the run loop."""
        index, call, request, key = item
        try:
            completion = future.result()
        except BaseException as exc:  # noqa: BLE001 - judged on the run loop's thread
            self.finished.put((item, None, exc))
            return
        if self.engine.cache is not None:
            try:
                backend = self.engine.backends[call.backend]
                self.engine.cache.put(key, completion, _latency(completion),
                                      family_key(_fingerprint(backend), call.backend, request), request.params.max_tokens)
            except BaseException as exc:  # noqa: BLE001 - a full disk ends the run (the call is not lost silently)
                self.finished.put((item, None, exc))
                return
        with self.kept_lock:
            self.kept += 1
        self.finished.put((item, completion, None))

    def _deliver(self, item: tuple, completion: Optional[Completion], error: Optional[BaseException]) -> None:
        index, call, _request, _key = item
        self.in_flight -= 1
        if error is not None:
            if not isinstance(error, RequestError):
                raise error
            self._finish(index, Final("", reason="error", error=str(error)))
        else:
            submitted = completion.submitted if completion.submitted is not None else time.time()
            finished = completion.finished if completion.finished is not None else time.time()
            kv = getattr(self.engine.backends[call.backend], "kv_bytes_per_token", None)
            self.traces[index].calls.append(_record(call, completion, submitted, finished, kv_token_bytes=kv))
            self.calls += 1
            self.generated += completion.output_tokens
            self._advance(index)
        self._flush_if_round_done()
        if self.bar is not None:
            rate = self.generated / max(time.time() - self.start, 1e-9)
            self.bar.set_postfix(calls=self.calls, tok_s=f"{rate:.1f}", refresh=False)

    def _flush_if_round_done(self) -> None:
        if self.in_flight == 0 and self.held:
            held, self.held = self.held, []
            for item in held:
                self._submit(item)


class RunInterrupted(KeyboardInterrupt):
    """The run was stopped by Ctrl-C or SIGTERM; the message says what is kept and how to resume."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised on the run loop's thread so it stops like Ctrl-C does."""


@contextlib.contextmanager
def _signals_interrupt():
    """While the run loop runs on the main thread, SIGTERM raises ``Terminated`` there (Ctrl-C already
    raises KeyboardInterrupt); the previous handler comes back afterwards, so a second SIGTERM kills."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum, frame):
        signal.signal(signal.SIGTERM, previous)
        raise Terminated("SIGTERM")

    previous = signal.getsignal(signal.SIGTERM)
    previous = signal.SIG_DFL if previous is None else previous  # a handler installed outside Python
    signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGTERM) is on_term:
            signal.signal(signal.SIGTERM, previous)


def _fingerprint(backend: Backend) -> dict:
    fingerprint = getattr(backend, "fingerprint", None)
    return fingerprint if isinstance(fingerprint, dict) else {"model": backend.model_id}


def _latency(completion: Completion) -> float:
    if completion.submitted is None or completion.finished is None:
        return 0.0
    return completion.finished - completion.submitted


def _record(call: Call, completion: Completion, submitted: float, finished: float, cached: bool = False,
            kv_token_bytes: Optional[int] = None) -> CallRecord:
    started = completion.started if not cached and completion.started is not None else None
    return CallRecord(role=call.role, backend=call.backend, prompt=call.prompt, output=completion.text,
                      prompt_tokens=completion.prompt_tokens, output_tokens=completion.output_tokens,
                      finish_reason=completion.finish_reason, output_ids=completion.output_ids,
                      submitted=submitted, finished=finished, cached=cached,
                      first_token=completion.first_token, started=started,
                      kv_token_bytes=kv_token_bytes if isinstance(kv_token_bytes, int) else None)


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="inftythink", unit="sample", dynamic_ncols=True)
