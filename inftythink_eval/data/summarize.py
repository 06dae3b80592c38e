"""Cumulative summaries of spans, through the evaluator's own backends or a Python function.

Owns: turning a summariser spec into a summariser (``hf:pretrained=DIR,...``,
``vllm:...``, ``openai:...``, ``scripted:script=F``: built with
``backends.make_backend``, its ``key=value`` list read by ``keyvalue``;
``python:module:function``; ``none``), which of the formats' requests to send
(v1: ``formats.inftythink.summary_chat`` over spans 0..i; inftythink_plus:
``formats.plus.summary_chat_plus`` over the previous summary and span i,
asked in waves by span index (``run_summaries``); rendered with the
backend's chat template, sampling from ``SummaryConfig``), the
n-choice rule (choice k asked only if choices 0..k-1 did not finish by
stopping; the first finished one is kept), handing each round of requests
to the backend at once (the backend batches what is in flight; in job order,
span by span, for a backend that reuses cached prefixes), and writing every
returned choice to the cache the moment it finishes, before it is used.

Does not know: sources, segmentation rules, output files, the summary chats' bytes (``formats`` owns them).
"""

from __future__ import annotations

import hashlib
import importlib
from collections import defaultdict
from concurrent.futures import as_completed
from dataclasses import dataclass, replace
from typing import Callable, Optional, Sequence

from inftythink_eval.backends.base import Request, RequestError, SamplingParams, make_backend
from inftythink_eval.data.cache import SummaryCache, cache_key
from inftythink_eval.data.config import SummaryConfig
from inftythink_eval.formats import plus
from inftythink_eval.formats.inftythink import summary_chat
from inftythink_eval.formats.plus import summary_chat_plus
from inftythink_eval.keyvalue import literal, parse_pairs

# The InftyThink+ part of a summariser's id.  The id is part of every cache key, so this stays "fmt=plus" (the
# format's name when the cache was introduced): caches written before the rename to inftythink_plus still hit.
_PLUS_ID = "fmt=plus"


@dataclass(frozen=True)
class Job:
    """One summary to produce: the cumulative summary of spans 0..index of a trace."""

    uid: str
    question: str
    spans: tuple[str, ...]
    index: int
    slot: int = 0
    """Position of the trace in its block (results are keyed by (slot, index): uids may repeat)."""
    previous: Optional[str] = None
    """inftythink_plus: the summary of span index-1 (set by ``run_summaries`` once it exists)."""


@dataclass
class Outcome:
    """Summaries of a batch of jobs (None: no finished choice) and what it cost."""

    summaries: dict[tuple[int, int], Optional[str]]
    asked: int = 0
    cached: int = 0


def parse_spec(spec: str) -> tuple[str, dict]:
    """``"hf:pretrained=/m,batch_size=8"`` -> ``("hf", {"pretrained": "/m", "batch_size": 8})``."""
    name, _, rest = spec.partition(":")
    pairs = parse_pairs(rest, f"summarizer spec {spec!r}", f"key=value after '{name}:'")
    return name.strip(), {key: literal(value) for key, value in pairs.items()}


class BackendSummarizer:
    """Summaries from any registered generation backend (hf, vllm, openai, scripted)."""

    def __init__(self, backend, config: SummaryConfig = SummaryConfig()) -> None:
        self.backend, self.config = backend, config
        c = config
        self.id = (f"{backend.name}:{backend.model_id}|t={c.temperature}|p={c.top_p}|max={c.max_tokens}"
                   f"|seed={c.seed}|chat={c.chat_template}|"
                   + (_PLUS_ID if c.format == plus.NAME else f"instr={hash_text(c.instruction)}"))

    def prompt(self, job: Job) -> str:
        if self.config.format == plus.NAME:
            if job.index > 0 and job.previous is None:
                raise ValueError(f"inftythink_plus summary of span {job.index} of {job.uid} asked before "
                                 f"span {job.index - 1}'s")
            messages = summary_chat_plus(job.question, job.spans[job.index], job.previous)
        else:
            messages = summary_chat(job.question, list(job.spans[:job.index + 1]), self.config.instruction)
        if self.config.chat_template:
            return self.backend.apply_chat_template(messages, add_generation_prompt=True)
        return "".join(f"{m['role']}: {m['content']}\n\n" for m in messages) + "assistant:"

    def run(self, jobs: Sequence[Job], cache: SummaryCache, key_parts: tuple[int, str]) -> Outcome:
        """Summaries for ``jobs``; ``key_parts`` = (eta, segmenter) for the cache key."""
        outcome = Outcome(summaries={(j.slot, j.index): None for j in jobs})
        pending = [(job, self.prompt(job)) for job in jobs]
        for choice in range(self.config.n):
            keys = [cache_key(j.uid, j.index, *key_parts, self.id, choice, p) for j, p in pending]
            missing = list({k: (k, p) for k, (_, p) in zip(keys, pending) if k not in cache}.values())  # dedupe
            outcome.cached += sum(k in cache for k in keys)
            outcome.asked += len(missing)
            self._ask(missing, choice, cache)
            still = []
            for key, (job, prompt) in zip(keys, pending):
                record = cache.get(key) or {"text": "", "finish": "error"}
                text = record["text"].strip()
                if record["finish"] == "stop" and text:
                    outcome.summaries[(job.slot, job.index)] = text
                else:
                    still.append((job, prompt))
            pending = still
            if not pending:
                break
        return outcome

    def _ask(self, missing: list[tuple[str, str]], choice: int, cache: SummaryCache) -> None:
        """Hand every request to the backend at once (it batches what is in flight: hf by ``batch_size``,
        vLLM continuously, openai up to ``concurrency``) and cache each the moment it finishes.
        A request that fails for good (``RequestError``) is not cached: it counts as unfinished now
        and is asked again by a rerun."""
        c = self.config
        params = SamplingParams(max_tokens=c.max_tokens, temperature=c.temperature, top_p=c.top_p, seed=c.seed + choice)
        if not getattr(self.backend, "reuses_prefixes", False):
            missing = sorted(missing, key=lambda kp: len(kp[1]))  # similar lengths side by side: little padding
        # else keep job order (trace by trace, span by span): prompt i+1 extends prompt i's cached prefix
        futures = {self.backend.submit(Request(prompt, params)): key for key, prompt in missing}
        for future in as_completed(futures):
            try:
                comp = future.result()
            except RequestError:
                continue
            cache.put_many([(futures[future], {"text": comp.text, "finish": comp.finish_reason})])

    def close(self) -> None:
        self.backend.close()


class FunctionSummarizer:
    """Summaries from ``fn(question, spans_so_far) -> str | None`` (synthetic tasks with exact state)."""

    def __init__(self, fn: Callable[[str, list[str]], Optional[str]], name: Optional[str] = None) -> None:
        self.fn = fn
        self.id = "python:" + (name or f"{fn.__module__}:{getattr(fn, '__qualname__', repr(fn))}")

    def run(self, jobs: Sequence[Job], cache: SummaryCache, key_parts: tuple[int, str]) -> Outcome:
        outcome = Outcome(summaries={})
        fresh = []
        for job in jobs:
            spans = list(job.spans[:job.index + 1])
            key = cache_key(job.uid, job.index, *key_parts, self.id, 0, job.question + "\0" + "\n\n".join(spans))
            if key not in cache:
                text = self.fn(job.question, spans)
                fresh.append((key, {"text": text or "", "finish": "stop" if text else "none"}))
                outcome.asked += 1
            else:
                outcome.cached += 1
            record = cache.get(key) or fresh[-1][1]
            outcome.summaries[(job.slot, job.index)] = record["text"].strip() or None
        cache.put_many(fresh)
        return outcome

    def close(self) -> None:
        pass


def run_summaries(summ, jobs: Sequence[Job], cache: SummaryCache, key_parts: tuple[int, str],
                  chained: bool) -> Outcome:
    """All summaries of ``jobs``: at once (v1: independent cumulative chats), or ``chained`` (inftythink_plus):
    in waves by span index, each job carrying the previous summary of its trace; a trace whose
    summary did not finish gets no later job (its missing summaries drop it)."""
    if not chained:
        return summ.run(jobs, cache, key_parts)
    total = Outcome(summaries={})
    waves: dict[int, list[Job]] = defaultdict(list)
    for job in jobs:
        waves[job.index].append(job)
    for index in sorted(waves):
        ready = [replace(j, previous=total.summaries.get((j.slot, index - 1))) for j in waves[index]]
        ready = [j for j in ready if index == 0 or j.previous is not None]
        if not ready:
            break
        outcome = summ.run(ready, cache, key_parts)
        total.summaries.update(outcome.summaries)
        total.asked += outcome.asked
        total.cached += outcome.cached
    return total


def hash_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def make_summarizer(spec, config: SummaryConfig = SummaryConfig()):
    """A summariser from a spec string, a callable, or an object with ``run``; None for ``none``."""
    if spec is None or spec == "none":
        return None
    if hasattr(spec, "run") and hasattr(spec, "id"):
        return spec
    if callable(spec):
        return FunctionSummarizer(spec)
    if not isinstance(spec, str):
        raise TypeError(f"summarizer must be a spec string, a callable or a summariser object, got {type(spec)}")
    if spec.startswith("python:"):
        target = spec[len("python:"):]
        module_name, _, attr = target.partition(":")
        if not module_name or not attr:
            raise ValueError(f"summarizer {spec!r}: expected python:module:function")
        fn = getattr(importlib.import_module(module_name), attr, None)
        if not callable(fn):
            raise ValueError(f"summarizer {spec!r}: {module_name} has no function {attr!r}")
        return FunctionSummarizer(fn, target)
    name, kwargs = parse_spec(spec)
    return BackendSummarizer(make_backend(name, **kwargs), config)
