"""The ``hf`` backend's continuous path: transformers' continuous batching, admitting each request into the
running batch at the next decoding step.

Owns: which path serves each request and the counts by path and reason (``Router``, the backend's
``stats()``); whether this path can serve a model at all (``unavailable``: attention it would have to switch, logits
processors it would drop) and a request exactly (greedy only: its sampler is one switch for the whole batch
and one shared generator, so no per-request seed; the request must fit the KV cache alone); the
``ContinuousBatchingManager``'s life (built and started on the first request, stopped by ``close`` and at
interpreter exit); our own admission rule (a request enters the engine when its prompt plus ``max_tokens``
fits the unreserved cache and fewer than ``max_requests`` are in flight, so the engine never evicts and
recomputes one); stop strings on our side, from the streamed tokens, by the batched path's per-token rule
(``stop_in_tail``), then cancellation; per-request timestamps from the engine's own token times.

Does not know: how the batched path or the prefix cache serve (``Router`` is handed the batched path as a
function), rounds, modes, lm-eval.  A backend hands itself in: its
``model``, ``tokenizer``, ``_eos_ids``, ``prompt_ids`` and ``_completion`` (the one rule that cuts a row's
tokens into a ``Completion``, shared with the batched path, so both give the same text, counts and
``finish_reason``).
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
import threading
import time
import weakref
from collections import Counter, deque
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Optional, Sequence, Union

from inftythink_eval.backends._serving import Pending
from inftythink_eval.backends.base import BackendError, Request, SamplingParams

log = logging.getLogger(__name__)
PAGE = 256   # tokens per KV block (transformers' default page size)


def stop_in_tail(tokenizer, generated: Sequence[int], stop: Sequence[str]) -> bool:
    """Whether a stop string is in the decoded tail of the generated tokens (never the prompt: a prompt that ends
    in a stop string, "<|im_start|>assistant\\n" and "\\n", must not stop a row at its first token)."""
    if not stop:
        return False
    window = max(len(s) for s in stop) + 8   # tokens: enough to hold any stop string
    tail = generated[-window:]   # a list, or a row of a tensor (the batched path)
    tail = tokenizer.decode(tail.tolist() if hasattr(tail, "tolist") else list(tail), skip_special_tokens=False)
    return any(s and s in tail for s in stop)


def unavailable(model) -> Optional[str]:
    """Why this model cannot go through continuous batching exactly (None: it can)."""
    from transformers.utils.generic import is_flash_attention_requested

    if not hasattr(model, "init_continuous_batching"):
        return "this transformers has no continuous batching (init_continuous_batching)"
    attn = getattr(model.config, "_attn_implementation", None)
    if attn != "sdpa" and not is_flash_attention_requested(requested_attention_implementation=attn):
        return (f"attention {attn!r}: continuous batching would switch the shared model to paged attention "
                "under the batched path; load it with sdpa or flash attention")
    processors = model._get_logits_processor(generation_config(model, []))
    if len(processors):
        names = ", ".join(type(p).__name__ for p in processors)
        return f"the model's generation config adds logits processors ({names}) that continuous batching drops"
    return None


def refuses(params: SamplingParams) -> Optional[str]:
    """Why one request cannot be served exactly here (None: it can)."""
    return None if params.greedy else "sampled"


def engine_config(capacity: int, max_requests: int, device: str):
    """transformers' ``ContinuousBatchingConfig`` for a cache of ``capacity`` tokens: the model's attention as
    loaded (no switch to flash), at most ``max_requests`` per step, and at most 2048 tokens a step on a CPU (the
    sdpa mask is steps' tokens x cache tokens; 8192 elsewhere)."""
    from transformers import ContinuousBatchingConfig

    step = 2048 if str(device).startswith("cpu") else 8192
    return ContinuousBatchingConfig(num_blocks=-(-capacity // PAGE), page_size=PAGE, max_batch_tokens=min(step, capacity),
                                    max_requests_per_batch=max_requests, auto_switch_to_flash=False)


def generation_config(model, eos: list[int]):
    """The model's generation config with the batched path's overrides (greedy; our EOS set)."""
    config = copy.deepcopy(model.generation_config)
    config.update(do_sample=False, temperature=None, top_p=None, top_k=None, num_return_sequences=1,
                  eos_token_id=eos or None)
    return config


class Router:
    """Which path serves each request: continuous batching where it serves it exactly, else the batched path;
    counted by path and by the reason for the batched one."""

    def __init__(self, backend, setting: str, cache_tokens: int, prefix_cache: int) -> None:
        self.setting, self.paged, self.unavailable = setting, None, None
        self._served: Counter = Counter()
        self._lock = threading.Lock()
        self._off = "off" if setting == "off" else "prefix_cache" if prefix_cache else None
        if self._off is None:
            self.unavailable = unavailable(backend.model)
            if self.unavailable and setting == "on":
                raise BackendError(f"hf backend: continuous=on, but {backend.model_id} cannot use continuous batching "
                                   f"here: {self.unavailable}. Use continuous=auto (the batched path serves it) or off")
            self._off = "unavailable" if self.unavailable else None
        if self._off is None:
            self.paged = PagedPath(backend, cache_tokens or backend.max_batch * 4096, backend.max_batch)
        self.closed = False
        _close_at_exit(self)

    def submit(self, request: Request, batched) -> "Future":
        why = self._off or refuses(request.params)
        if why is None:
            got = self.paged.submit(request)
            why = None if isinstance(got, Future) else got
        if why is not None:
            got = batched(request)
        with self._lock:
            self._served["continuous" if why is None else f"batched:{why}"] += 1
        return got

    def stats(self) -> dict:
        with self._lock:
            served = dict(self._served)
        because = {k.split(":", 1)[1]: n for k, n in sorted(served.items()) if k.startswith("batched:")}
        out = {"continuous_option": self.setting, "continuous": served.get("continuous", 0),
               "batched": sum(because.values()), "batched_because": because}
        if self.unavailable:
            out["continuous_unavailable"] = self.unavailable
        return out

    def close(self) -> None:
        """Close the continuous path (its engine thread ends) and log what each path served."""
        if self.closed:
            return
        self.closed = True
        if self.paged is not None:
            self.paged.close()
        log.info("hf backend served: %s", json.dumps(self.stats(), sort_keys=True))


@dataclass
class _Live:
    pending: Pending
    rid: str
    prompt_tokens: int
    need: int         # KV blocks reserved for it: prompt + max_tokens (+1), in whole blocks
    ids: list
    seen: int = 0     # generated tokens checked so far (streamed requests)


class PagedPath:
    """Requests served by transformers' ``ContinuousBatchingManager``, one future each."""

    def __init__(self, backend, capacity: int, max_requests: int) -> None:
        self.backend, self.capacity, self.max_requests = backend, int(capacity), int(max_requests)
        self.blocks = -(-self.capacity // PAGE)   # the engine's cache, in blocks (each request's own blocks)
        self._cond = threading.Condition()
        self._waiting: deque[_Live] = deque()
        self._live: dict[str, _Live] = {}
        self._reserved = 0
        self._ids = itertools.count()
        self._manager = None
        self._reader: Optional[threading.Thread] = None
        self.closed = False
        self.failed: Optional[str] = None

    # --- submission and admission -------------------------------------------------------------
    def submit(self, request: Request) -> Union["Future", str]:
        """The request's future, or why this path will not take it (the caller serves it another way)."""
        ids = self.backend.prompt_ids(request.prompt)
        need = -(-(len(ids) + request.params.max_tokens + 1) // PAGE)
        if need > self.blocks:
            return "too_long"
        with self._cond:
            if self.closed:
                raise RuntimeError("hf-engine: backend is closed")
            if not self.failed:
                self._start()
            if self.failed:
                return "failed"
            item = _Live(Pending(request, Future()), f"r{next(self._ids)}", len(ids), need, ids)
            self._waiting.append(item)
            self._admit()
        return item.pending.future

    def _admit(self) -> None:
        """Hand waiting requests to the engine while they fit (call with the lock held)."""
        while (self._waiting and len(self._live) < self.max_requests
               and self._reserved + self._waiting[0].need <= self.blocks):
            item = self._waiting.popleft()
            params = item.pending.request.params
            self._reserved += item.need
            self._live[item.rid] = item
            added = self._manager.add_request(item.ids, request_id=item.rid, max_new_tokens=params.max_tokens,
                                              streaming=bool(params.stop), record_timestamps=True,
                                              eos_token_id=sorted(self.backend._eos_ids))
            item.ids = None
            if added is None:   # the engine stopped or died: it said why in its log
                self._drop(item)
                item.pending.fail(RuntimeError("hf continuous batching: the engine refused the request "
                                               f"({self.failed or 'it is stopping'})"))

    def _start(self) -> None:
        if self._manager is not None:
            return
        import torch

        model = self.backend.model
        try:
            manager = model.init_continuous_batching(
                generation_config=generation_config(model, sorted(self.backend._eos_ids)),
                continuous_batching_config=engine_config(self.capacity, self.max_requests, self.backend.device))
            with torch.inference_mode():   # the engine thread takes the inference mode of the thread that starts it
                manager.start()
        except Exception as exc:  # noqa: BLE001 - the batched path serves what this one cannot
            self.failed = f"it could not start: {exc}"
            log.error("hf continuous batching: %s; requests go through the batched path", self.failed)
            return
        self._manager = manager
        self._reader = threading.Thread(target=self._read, name="hf-continuous-results", daemon=True)
        self._reader.start()

    # --- results ---------------------------------------------------------------------------------
    def _read(self) -> None:
        manager = self._manager
        while not self.closed:
            out = manager.get_result(timeout=0.1)
            if out is None:
                if not manager.is_running() and not self.closed:
                    self._engine_died(manager)
                    return
                continue
            self._on_output(out)

    def _on_output(self, out) -> None:
        with self._cond:
            item = self._live.get(out.request_id)
            if item is None:   # cancelled at a stop string: later tokens are not ours
                return
            if out.error is not None or out.status.name == "FAILED":
                self._drop(item)
                error = RuntimeError(f"hf continuous batching failed: {out.error}")
            else:
                error = None
                ids = list(out.generated_tokens)
                if item.pending.first_token is None and ids:
                    item.pending.first_token = _wall(out.timestamps[0]) if out.timestamps else time.time()
                end = self._end(item, ids)
                item.seen = len(ids)
                if end is None and not out.is_finished():
                    return
                if out.timestamps:   # once, when the request ends (not per streamed output)
                    item.pending.token_times = [_wall(t) for t in out.timestamps]
                if out.lifespan[0] > 0:   # when the engine took it out of its waiting queue
                    item.pending.started = _wall(out.lifespan[0])
                self._drop(item)
                if not out.is_finished():
                    self._manager.cancel_request(item.rid)
            self._admit()
        if error is not None:
            item.pending.fail(error)
        else:   # resolved outside the lock: the caller's callback may submit the next request at once
            params = item.pending.request.params
            item.pending.resolve(self.backend._completion(ids[:end or len(ids)], item.prompt_tokens, params))

    def _end(self, item: _Live, ids: list) -> Optional[int]:
        """The number of tokens at which the batched path would stop this row (EOS, max_tokens, a stop string),
        checked token by token from where the last streamed output left off."""
        params, eos = item.pending.request.params, self.backend._eos_ids
        for n in range(item.seen + 1, len(ids) + 1):
            if ids[n - 1] in eos or n >= params.max_tokens or stop_in_tail(self.backend.tokenizer, ids[:n], params.stop):
                return n
        return None

    def _drop(self, item: _Live) -> None:
        if self._live.pop(item.rid, None) is not None:
            self._reserved -= item.need

    def _engine_died(self, manager) -> None:
        error = getattr(manager.background_thread_status, "fatal_error", None)
        with self._cond:
            self.failed = f"its engine thread stopped: {error}"
            items = list(self._live.values()) + list(self._waiting)
            self._live.clear()
            self._waiting.clear()
            self._reserved = 0
        log.error("hf continuous batching: %s; later requests go through the batched path", self.failed)
        for item in items:
            item.pending.fail(RuntimeError(f"hf continuous batching: {self.failed}"))

    # --- for tests and close -------------------------------------------------------------------------
    def progress(self) -> dict[str, int]:
        """Generated tokens seen so far per streamed request in flight (those with stop strings)."""
        with self._cond:
            return {rid: item.seen for rid, item in self._live.items()}

    def alive(self) -> bool:
        return self._manager is not None and self._manager.is_running()

    def close(self, timeout: float = 60.0) -> None:
        """End the running batch at its next step and wait (up to ``timeout`` s) for the engine thread to leave
        the model; every request still in flight or waiting fails with "closed"."""
        with self._cond:
            if self.closed:
                return
            self.closed = True
            items = list(self._live.values()) + list(self._waiting)
            self._live.clear()
            self._waiting.clear()
        if self._manager is not None and self._manager.is_running():
            self._manager.stop(block=True, timeout=timeout, hard_stop=True)
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(timeout)
        for item in items:
            item.pending.fail(RuntimeError("hf-engine: backend closed"))


def _wall(perf: float) -> float:
    """A ``time.perf_counter()`` stamp (the engine's) as ``time.time()``."""
    return perf + (time.time() - time.perf_counter())


def _close_at_exit(router: Router) -> None:
    """transformers' engine thread is not a daemon: a process that never calls close() (lm-eval does not) would
    wait for it forever at exit.  threading's exit hooks run before that wait (``atexit``'s run after it)."""
    ref = weakref.ref(router)

    def close() -> None:
        alive = ref()
        if alive is not None:
            alive.close()

    threading._register_atexit(close)
