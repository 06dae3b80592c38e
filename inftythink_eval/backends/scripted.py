"""``scripted``: a real registered backend that replays given outputs (like lm-eval's ``dummy``).

Owns: matching a prompt to a scripted output, tokens as words
(``backends._words``), truncation at ``max_tokens`` and stop strings, and an optional
call log (one JSON line per request) so tests can count backend calls
across processes.

Script format (JSON list or JSON lines file), rules tried in order, the
first whose ``match`` is a substring of the prompt wins::

    {"match": "What is 1+1?", "outputs": ["<think>\\n...\\n</think>\\n<summary>\\nS\\n</summary>", "..."]}
    {"match": "", "output": "fallback"}

``outputs`` are used in turn for repeated identical prompts (the k-th call
gets ``outputs[min(k, n-1)]``); ``output`` is shorthand for one.  An output
may be ``{"text": ..., "finish_reason": ...}`` or ``{"error": "why"}`` (that
request fails with ``RequestError``: it costs its sample only).

Optional ``delay`` (seconds per request) and ``delay_per_token`` make it an
imitation of a continuous-batching engine: ``max_batch`` slots, each request
finishes ``delay + delay_per_token * its tokens`` after it gets a slot, and
leaves as soon as it is done.  That shows control flow (who waits for whom);
its timings are not evidence about any real engine.
Does not know: rounds, modes, lm-eval.
"""

from __future__ import annotations

import heapq
import json
import os
import threading
import time
from collections import Counter
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Union

from inftythink_eval.backends._serving import Pending, RequestQueue
from inftythink_eval.backends.base import Completion, Request, RequestError, gather, register_backend
from inftythink_eval.backends._words import word_tokens


@dataclass(frozen=True)
class ScriptedOptions:
    """model_args keys of ``backend=scripted``."""

    script: str | None = None
    """Rules file (JSON list or JSON lines of {"match", "outputs"})."""
    call_log: str | None = None
    """File that gets one JSON line per request (to count calls across processes)."""
    batch_size: int = 64
    """Requests served at once (slots of the imitated engine)."""
    delay: float = 0.0
    """Seconds each request takes (imitates a slow engine in tests)."""
    delay_per_token: float = 0.0
    """Extra seconds per output token of each request."""


register_backend("scripted", f"{__name__}:ScriptedBackend", ScriptedOptions, install="nothing: it is built in",
                 needs_pretrained=False, rank=90, thinking_budget=True, summary="replays scripted outputs (`script=rules.jsonl`): a real "
                 "registered backend for exact-control tests, like lm-eval's `dummy`")


class ScriptedBackend:
    """Replays scripted outputs; tokens are words."""

    name = "scripted"

    def __init__(self, script: Union[str, Path, list, None] = None, call_log: Union[str, Path, None] = None,
                 max_batch: int = 64, concurrency: int = 1, model_id: str = "scripted",
                 delay: float = 0.0, delay_per_token: float = 0.0, batch_size: int | None = None,
                 **_: object) -> None:
        max_batch = batch_size or max_batch
        self.rules = _load_rules(script)
        self.call_log = Path(call_log) if call_log else None
        self.max_batch, self.model_id = int(max_batch) * max(1, int(concurrency)), model_id
        self.calls = 0
        self.delay, self.delay_per_token = float(delay), float(delay_per_token)
        self._seen: Counter = Counter()
        self._ids: dict[str, int] = {}
        self._lock = threading.Lock()
        self._queue = RequestQueue(self._serve, "scripted")

    @property
    def fingerprint(self) -> dict:
        return {"backend": "scripted", "model": self.model_id}

    # --- generation ---------------------------------------------------------
    def submit(self, request: Request) -> "Future[Completion]":
        if not (self.delay or self.delay_per_token):
            item = Pending(request, Future())
            try:
                item.resolve(self._one(request))
            except RequestError as exc:
                item.fail(exc)
            return item.future
        return self._queue.submit(request)

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        return gather([self.submit(r) for r in requests])

    def _serve(self, queue: RequestQueue) -> None:
        """The imitated engine: ``max_batch`` slots; each request leaves when its own time is up."""
        running: list = []  # heap of (finish time, sequence, item, completion or error)
        sequence = 0
        while not queue.closed:
            for item in queue.take(self.max_batch - len(running), wait=None if not running else 0):
                try:
                    result = self._one(item.request)
                    tokens = result.output_tokens
                except RequestError as exc:
                    result, tokens = exc, 0
                sequence += 1
                item.started = time.time()   # its slot of the imitated engine
                heapq.heappush(running, (time.time() + self.delay + self.delay_per_token * tokens, sequence,
                                         item, result))
            if not running:
                continue
            due, _, item, result = running[0]
            if due > time.time():
                queue.take(0, wait=min(due - time.time(), 0.05))  # wake early when a new request arrives
                continue
            heapq.heappop(running)
            queue.release([item])
            item.fail(result) if isinstance(result, Exception) else item.resolve(result)

    def _one(self, request: Request) -> Completion:
        with self._lock:
            rule_index, outputs = self._match(request.prompt)
            key = (rule_index, request.prompt)
            k = self._seen[key]
            self._seen[key] += 1
            self.calls += 1
        entry = outputs[min(k, len(outputs) - 1)]
        if isinstance(entry, dict) and "error" in entry:
            self._log(request, None)
            raise RequestError(f"scripted backend: {entry['error']}")
        text, forced = (entry.get("text", ""), entry.get("finish_reason")) if isinstance(entry, dict) else (entry, None)
        if request.params.think_budget is not None:
            text = self._force_end(request, text)
        text, finish = _truncate(text, request.params.stop, request.params.max_tokens)
        completion = Completion(text=text, prompt_tokens=self.count_tokens(request.prompt),
                                output_tokens=self.count_tokens(text), finish_reason=forced or finish,
                                output_ids=tuple(self.encode(text)))
        self._log(request, completion)
        return completion

    def _force_end(self, request: Request, text: str) -> str:
        """``text`` under the thinking budget: cut after B tokens of open thinking, the forced end, the rest."""
        budget, (opening, end) = request.params.think_budget, request.params.think_marks
        prompt, close = request.prompt, end.strip()
        if prompt.rfind(opening) > prompt.rfind(close):
            start = 0
        elif opening in text:
            start = text.index(opening) + len(opening)
        else:
            return text  # thinking never opens: no budget to keep
        closed = text.find(close, start)
        thinking = word_tokens(text[start:] if closed == -1 else text[start:closed])
        if closed != -1 and len(thinking) <= budget:
            return text  # closed by the model within the budget
        head = text[:start] + "".join(thinking[:budget]) + end
        with self._lock:
            rule_index, outputs = self._match(prompt + head)
            key = (rule_index, prompt + head)
            k = self._seen[key]
            self._seen[key] += 1
        rest = outputs[min(k, len(outputs) - 1)]
        if isinstance(rest, dict) and "error" in rest:
            raise RequestError(f"scripted backend: {rest['error']}")
        return head + (rest.get("text", "") if isinstance(rest, dict) else rest)

    def _match(self, prompt: str) -> tuple[int, list]:
        for index, rule in enumerate(self.rules):
            if rule["match"] in prompt:
                return index, rule["outputs"]
        raise LookupError(f"scripted backend: no rule matches the prompt {prompt[:200]!r}; "
                          "add a rule whose 'match' is a substring of it, or a fallback rule with match ''")

    def _log(self, request: Request, completion: Completion) -> None:
        if self.call_log is None:
            return
        output = completion.text if completion is not None else None
        line = json.dumps({"pid": os.getpid(), "prompt": request.prompt, "output": output}) + "\n"
        with self._lock, open(self.call_log, "a", encoding="utf-8") as handle:
            handle.write(line)

    # --- tokenizer ----------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        return len(word_tokens(text))

    def encode(self, text: str) -> list[int]:
        """Word-level ids that mean the same in every process (a call cache outlives it): each token's UTF-8
        bytes behind a 0x01 byte, read as one integer."""
        ids = self._ids  # one int object per distinct token: a long output's ids share them, as small ints would
        return [ids.get(t) or ids.setdefault(t, int.from_bytes(b"\x01" + t.encode("utf-8", "surrogatepass"), "big"))
                for t in word_tokens(text)]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(i.to_bytes((i.bit_length() + 7) // 8, "big")[1:].decode("utf-8", "surrogatepass") for i in ids)

    def text_of(self, ids: Sequence[int]) -> str:
        """The text of generated ids as a completion has it."""
        return self.decode(ids)

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        body = "".join(f"<|{m['role']}|>\n{m['content']}\n" for m in messages)
        return body + ("<|assistant|>\n" if add_generation_prompt else "")

    def loglikelihood(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[float, bool]]:
        return [(-float(self.count_tokens(cont)), True) for _, cont in pairs]

    def close(self) -> None:
        self._queue.close()


def _truncate(text: str, stops: Sequence[str], max_tokens: int) -> tuple[str, str]:
    cut = min((text.find(s) for s in stops if s and s in text), default=-1)
    finish = "stop"
    if cut != -1:
        text = text[:cut]
    tokens = word_tokens(text)
    if len(tokens) > max_tokens:
        text, finish = "".join(tokens[:max_tokens]), "length"
    return text, finish


def _load_rules(script: Union[str, Path, list, None]) -> list[dict]:
    if script is None:
        raw: list = [{"match": "", "output": ""}]
    elif isinstance(script, (list, tuple)):
        raw = list(script)
    else:
        path = Path(script)
        if not path.is_file():
            raise FileNotFoundError(f"scripted backend: script file {path} does not exist "
                                    "(expected a JSON list or JSON lines of {\"match\", \"outputs\"} rules)")
        content = path.read_text(encoding="utf-8").strip()
        raw = json.loads(content) if content.startswith("[") else [json.loads(l) for l in content.splitlines() if l.strip()]
    rules = []
    for i, rule in enumerate(raw):
        if not isinstance(rule, dict) or "match" not in rule or not ("outputs" in rule or "output" in rule):
            raise ValueError(f"scripted backend: rule {i} must be an object with 'match' and 'outputs' (or 'output'), got {rule!r}")
        outputs = rule.get("outputs") or [rule["output"]]
        rules.append({"match": str(rule["match"]), "outputs": list(outputs)})
    return rules
