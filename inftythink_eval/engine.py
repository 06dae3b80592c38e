"""The round scheduler: runs samples call by call until each mode says it is final.

Owns: queues and worker threads per backend, cache lookups before each call,
scheduling policy, timing, progress bar.  Samples advance independently
("continuous"): a sample's next call is queued as soon as its last one is
done, so one long sample never stalls the rest.  A worker takes whatever is
queued (up to the backend's ``max_batch``) as one batch; a backend with
``concurrency`` N gets N workers (servers: N requests in flight).  The
"rounds" policy (round-synchronous, every sample's call k before any call
k+1) exists for comparison benchmarks.

Does not know: what the calls mean (``modes``), lm-eval, files other than the cache.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Optional, Sequence

from .backends.base import Backend, BackendError, Request
from .cache import CallCache, call_key
from .modes import Mode, ModeParams, Sample, make_mode
from .render import make_tools
from .trace import Call, CallRecord, Final, Trace

SCHEDULES = ("continuous", "rounds")


class Engine:
    """Runs ``Sample``s through a ``Mode`` on one or two backends ("main", "summarizer")."""

    def __init__(self, backend: Backend, mode: str | Mode = "vanilla", params: ModeParams = ModeParams(),
                 summarizer: Optional[Backend] = None, cache: Optional[CallCache] = None,
                 schedule: str = "continuous", progress: bool = True) -> None:
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
        self.backends = {"main": backend, "summarizer": summarizer or backend}
        self.mode = make_mode(mode, make_tools(backend, self.backends["summarizer"]), params) if isinstance(mode, str) else mode
        self.cache, self.schedule, self.progress = cache, schedule, progress

    # --- public -------------------------------------------------------------
    def run(self, samples: Sequence[Sample]) -> list[Trace]:
        run = _Run(self, list(samples))
        return run.execute()


class _Run:
    """State of one ``Engine.run`` call (threads share it under ``lock``)."""

    def __init__(self, engine: Engine, samples: list[Sample]) -> None:
        self.engine, self.samples = engine, samples
        self.traces = [Trace(sample_id=s.id) for s in samples]
        self.lock = threading.Condition()
        self.done = 0
        self.error: Optional[BaseException] = None
        self.in_flight = 0
        self.held: list[tuple] = []  # "rounds" schedule: calls waiting for the round to finish
        self.generated = 0
        self.stopped = False
        self.unique = {id(b): b for b in engine.backends.values()}
        self.queues = {key: queue.Queue() for key in self.unique}
        self.workers = [threading.Thread(target=self._work, args=(b, self.queues[key]), daemon=True)
                        for key, b in self.unique.items() for _ in range(max(1, b.concurrency))]

    def execute(self) -> list[Trace]:
        self.bar, self.start = _progress(len(self.samples), self.engine.progress), time.time()
        with self.lock:
            for index in range(len(self.samples)):
                self._advance(index)
            self._flush_if_round_done()
            self._stop_workers_if_done()
        try:
            if len(self.workers) == 1:  # one in-process engine: the caller's thread is the worker (no thread hop)
                backend = next(iter(self.unique.values()))
                self._work(backend, self.queues[id(backend)])
            else:
                for worker in self.workers:
                    worker.start()
                with self.lock:
                    while self.done < len(self.samples) and self.error is None:
                        self.lock.wait(timeout=1.0)
        finally:
            self._stop_workers()
            if self.bar is not None:
                self.bar.close()
        if self.error is not None:
            finished = sum(len(t.calls) for t in self.traces)
            raise BackendError(f"generation stopped: {self.error}. {finished} finished calls are kept"
                               + (" in the cache; rerun with the same cache folder to resume" if self.engine.cache else
                                  "; set cache_dir to resume without recomputing them")) from self.error
        return self.traces

    def _stop_workers_if_done(self) -> None:
        if self.done == len(self.samples):
            self._stop_workers()

    def _stop_workers(self) -> None:
        if not self.stopped:
            self.stopped = True
            for q in self.queues.values():
                for _ in self.workers:
                    q.put(None)

    # --- stages (called with the lock held) ---------------------------------
    def _advance(self, index: int) -> None:
        """Ask the mode what comes next; serve it from the cache or queue it."""
        sample, trace = self.samples[index], self.traces[index]
        while True:
            decision = self.engine.mode.next_call(sample, trace.calls)
            if isinstance(decision, Final):
                trace.final = decision
                self.done += 1
                if self.bar is not None:
                    self.bar.update(1)
                self.lock.notify_all()
                return
            backend = self.engine.backends[decision.backend]
            request = Request(decision.prompt, decision.params)
            key = call_key(backend.model_id, decision.backend, request)
            hit = self.engine.cache.get(key) if self.engine.cache else None
            if hit is None:
                item = (index, decision, request, key, time.time())
                if self.engine.schedule == "rounds":
                    self.held.append(item)
                else:
                    self._submit(item)
                return
            completion, latency = hit
            now = time.time()
            trace.calls.append(_record(decision, completion, now - latency, now, cached=True))

    def _submit(self, item: tuple) -> None:
        self.in_flight += 1
        self.queues[id(self.engine.backends[item[1].backend])].put(item)

    def _flush_if_round_done(self) -> None:
        if self.in_flight == 0 and self.held:
            held, self.held = self.held, []
            for item in held:
                self._submit(item)

    # --- workers ------------------------------------------------------------
    def _work(self, backend: Backend, q: "queue.Queue") -> None:
        while True:
            first = q.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < max(1, backend.max_batch):
                try:
                    item = q.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    q.put(None)
                    break
                batch.append(item)
            try:
                completions = backend.generate([item[2] for item in batch])
            except Exception as exc:  # noqa: BLE001 - reported to the caller by execute()
                with self.lock:
                    self.error = exc
                    self._stop_workers()
                    self.lock.notify_all()
                return
            self._deliver(batch, completions, time.time())

    def _deliver(self, batch: list[tuple], completions: list, finished: float) -> None:
        with self.lock:
            for (index, call, _request, key, submitted), completion in zip(batch, completions):
                if self.engine.cache is not None:
                    self.engine.cache.put(key, completion, finished - submitted)
                self.traces[index].calls.append(_record(call, completion, submitted, finished))
                self.generated += completion.output_tokens
                self.in_flight -= 1
                self._advance(index)
            self._flush_if_round_done()
            self._stop_workers_if_done()
            if self.bar is not None:
                self.bar.set_postfix(calls=sum(len(t.calls) for t in self.traces),
                                     tok_s=f"{self.generated / max(time.time() - self.start, 1e-9):.1f}", refresh=False)


def _record(call: Call, completion, submitted: float, finished: float, cached: bool = False) -> CallRecord:
    return CallRecord(role=call.role, backend=call.backend, prompt=call.prompt, output=completion.text,
                      prompt_tokens=completion.prompt_tokens, output_tokens=completion.output_tokens,
                      finish_reason=completion.finish_reason, output_ids=completion.output_ids,
                      submitted=submitted, finished=finished, cached=cached)


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="inftythink", unit="sample", dynamic_ncols=True)
