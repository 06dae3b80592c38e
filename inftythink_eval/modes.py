"""Generation modes: small strategies that decide a sample's next call from its calls so far.

Owns: ``Sample``, ``ModeParams`` and the four modes.  Each mode is a pure
function ``next_call(sample, calls) -> Call | Final``: all state is derived
from the calls already made, which is what makes resume from the cache exact.

- ``vanilla``: one generation up to the task's token limit.
- ``inftythink``: the native protocol (templates byte for byte, history replaced;
  a round without ``<summary>`` is final, truncation included; optional retry
  of a round whose ``<summary>`` fails the official parse).
- ``summarize``: training-free; rounds are capped at ``eta`` tokens; an unfinished
  round is summarised (same or another backend) and the next round sees the
  question and that summary.
- ``delethink``: chunks of ``chunk`` tokens; the next prompt is the query, the
  first ``keep_head`` tokens of chunk 1 and the last ``carryover`` tokens of the
  previous chunk; at most ``max_chunks`` chunks.

Does not know: backends' internals, scheduling, caching, lm-eval.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Optional, Protocol, Sequence, Union

from . import templates as T
from .backends.base import SamplingParams
from .trace import REASON, RETRY, SUMMARY, Call, CallRecord, Final


@dataclass(frozen=True)
class Sample:
    """One generation job (a question and repeat) handed to the engine."""

    id: str
    question: str               # the user content (the task's prompt text)
    params: SamplingParams      # the task's budget and sampling: max_gen_toks, temperature, top_p, until, seed
    system: Optional[str] = None
    chat: bool = False          # render prompts with the backend's chat template
    native: bool = False        # render prompts as the protocol's User:{q}Assistant: (overrides chat)


@dataclass(frozen=True)
class ModeParams:
    """Parameters of every mode (each mode reads its own)."""

    max_rounds: int = T.DEFAULT_MAX_ROUNDS
    """inftythink/summarize: most reasoning rounds per sample."""
    round_tokens: int = T.DEFAULT_ROUND_TOKENS
    """inftythink: most tokens per round."""
    retry: bool = False
    """inftythink: repeat a round whose <summary> fails the official parse (each retry counted)."""
    max_retries: int = 3
    """inftythink: retries per round when retry is on."""
    roles: T.Roles = T.Roles()
    """inftythink: the role strings of the native prompt."""
    eta: int = T.DEFAULT_ETA
    """summarize: most tokens per reasoning round."""
    summary_tokens: int = 1024
    """summarize: most tokens per summary."""
    summary_temperature: float = 0.5
    """summarize: sampling temperature of summaries (PROTOCOL.md uses 0.5 for data building)."""
    chunk: int = 8192
    """delethink: chunk size C in tokens."""
    carryover: Optional[int] = None
    """delethink: tokens m carried from the previous chunk (default C/2)."""
    keep_head: int = 100
    """delethink: tokens kept from the start of chunk 1."""
    max_chunks: int = 5
    """delethink: most chunks I."""

    def __post_init__(self) -> None:
        for name in ("max_rounds", "round_tokens", "eta", "summary_tokens", "chunk", "max_chunks"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_retries < 0 or self.keep_head < 0:
            raise ValueError("max_retries and keep_head must be >= 0")
        m = self.chunk // 2 if self.carryover is None else self.carryover
        if not 0 <= m < self.chunk:
            raise ValueError(f"carryover must be in [0, chunk), got {m} with chunk={self.chunk}")
        object.__setattr__(self, "carryover", m)


@dataclass(frozen=True)
class Tools:
    """What modes may use from the outside world: prompt rendering and token (de)coding."""

    render: Callable[[Sample, str], str]          # (sample, user text) -> main-backend prompt
    render_chat: Callable[[list[dict]], str]      # chat -> summarizer-backend prompt
    encode: Callable[[str], list[int]]
    decode: Callable[[Sequence[int]], str]


Decision = Union[Call, Final]


class Mode(Protocol):
    name: str

    def next_call(self, sample: Sample, calls: list[CallRecord]) -> Decision: ...


def _seeded(params: SamplingParams, call_index: int) -> SamplingParams:
    """Each call of a sample gets its own reproducible seed (kept in the cache key)."""
    if params.seed is None:
        return params
    return replace(params, seed=(params.seed * 1_000_003 + call_index) % (2**31 - 1))


def _reasons(calls: list[CallRecord]) -> list[CallRecord]:
    return [c for c in calls if c.role in (REASON, RETRY)]


@dataclass(frozen=True)
class Vanilla:
    tools: Tools
    params: ModeParams = ModeParams()
    name: str = "vanilla"

    def next_call(self, sample: Sample, calls: list[CallRecord]) -> Decision:
        if not calls:
            return Call(REASON, self.tools.render(sample, sample.question), _seeded(sample.params, 0))
        last = calls[-1]
        return Final(T.final_answer_text(last.output), truncated=last.finish_reason == "length",
                     reason="length" if last.finish_reason == "length" else "done")


@dataclass(frozen=True)
class InftyThink:
    """The native protocol; the question is wrapped in the role strings, never in a chat template."""

    tools: Tools
    params: ModeParams = ModeParams()
    name: str = "inftythink"

    def _question(self, sample: Sample) -> str:
        return f"{sample.system}\n\n{sample.question}" if sample.system else sample.question

    def _call(self, sample: Sample, summary: Optional[str], role: str, index: int) -> Call:
        prompt = T.native_prompt(self._question(sample), summary, self.params.roles)
        budget = replace(sample.params, max_tokens=self.params.round_tokens)
        return Call(role, prompt, _seeded(budget, index))

    def next_call(self, sample: Sample, calls: list[CallRecord]) -> Decision:
        if not calls:
            return self._call(sample, None, REASON, 0)
        last = calls[-1]
        parsed = T.parse_round(last.output, last.prompt)
        if not parsed.ok:
            retries = _trailing_retries(calls)
            if self.params.retry and retries < self.params.max_retries:
                return Call(RETRY, last.prompt, _seeded(replace(sample.params, max_tokens=self.params.round_tokens), len(calls)))
            return Final(T.final_answer_text(last.output), truncated=last.finish_reason == "length", reason="format")
        if parsed.summary is None:
            return Final(parsed.conclusion, truncated=last.finish_reason == "length",
                         reason="length" if last.finish_reason == "length" else "done")
        if sum(1 for c in calls if c.role == REASON) >= self.params.max_rounds:
            return Final("", truncated=True, reason="max_rounds")
        return self._call(sample, parsed.summary, REASON, len(calls))


def _trailing_retries(calls: list[CallRecord]) -> int:
    count = 0
    for c in reversed(calls):
        if c.role != RETRY:
            break
        count += 1
    return count


@dataclass(frozen=True)
class Summarize:
    """Training-free iterative reasoning for any instruction or chat model."""

    tools: Tools
    params: ModeParams = ModeParams()
    name: str = "summarize"

    def _reason(self, sample: Sample, summary: Optional[str], index: int) -> Call:
        text = sample.question if summary is None else T.continuation_question(sample.question, summary)
        budget = replace(sample.params, max_tokens=min(self.params.eta, sample.params.max_tokens))
        return Call(REASON, self.tools.render(sample, text), _seeded(budget, index))

    def _summary(self, sample: Sample, calls: list[CallRecord]) -> Call:
        previous = _last_summary(calls)
        progress = ([previous] if previous else []) + [calls[-1].output]
        prompt = self.tools.render_chat(T.summary_chat(sample.question, progress))
        params = SamplingParams(max_tokens=self.params.summary_tokens, temperature=self.params.summary_temperature,
                                top_p=1.0, seed=sample.params.seed)
        return Call(SUMMARY, prompt, _seeded(params, len(calls)), backend="summarizer")

    def next_call(self, sample: Sample, calls: list[CallRecord]) -> Decision:
        if not calls:
            return self._reason(sample, None, 0)
        last = calls[-1]
        if last.role == SUMMARY:
            return self._reason(sample, last.output.strip(), len(calls))
        if last.finish_reason == "stop":
            return Final(T.final_answer_text(last.output))
        if len(_reasons(calls)) >= self.params.max_rounds:
            return Final(T.final_answer_text(last.output), truncated=True, reason="max_rounds")
        return self._summary(sample, calls)


def _last_summary(calls: list[CallRecord]) -> Optional[str]:
    return next((c.output.strip() for c in reversed(calls) if c.role == SUMMARY), None)


@dataclass(frozen=True)
class Delethink:
    """Markovian chunked thinking with a fixed carryover."""

    tools: Tools
    params: ModeParams = ModeParams()
    name: str = "delethink"

    def next_call(self, sample: Sample, calls: list[CallRecord]) -> Decision:
        base = self.tools.render(sample, sample.question)
        if not calls:
            return Call(REASON, base, _seeded(replace(sample.params, max_tokens=self.params.chunk), 0))
        last = calls[-1]
        if last.finish_reason == "stop":
            return Final(T.final_answer_text(last.output))
        if len(calls) >= self.params.max_chunks:
            return Final(T.final_answer_text(last.output), truncated=True, reason="max_rounds")
        head = self._ids(calls[0])[: self.params.keep_head]
        m = self.params.carryover
        tail = self._ids(last)[-m:] if m else []
        prompt = base + self.tools.decode(head) + self.tools.decode(tail)
        budget = replace(sample.params, max_tokens=self.params.chunk - m)
        return Call(REASON, prompt, _seeded(budget, len(calls)))

    def _ids(self, record: CallRecord) -> list[int]:
        return list(record.output_ids) if record.output_ids is not None else self.tools.encode(record.output)


MODES = {"vanilla": Vanilla, "inftythink": InftyThink, "summarize": Summarize, "delethink": Delethink}


def make_mode(name: str, tools: Tools, params: ModeParams) -> Mode:
    if name not in MODES:
        raise ValueError(f"unknown mode {name!r}; valid modes: {', '.join(MODES)}")
    return MODES[name](tools=tools, params=params)
