"""What happened to one sample: its calls, in order, and the totals derived from them.

Owns: ``Call`` (what a mode asks for), ``CallRecord`` (what came back, with
timing), ``Final`` (a mode's decision to stop), ``Trace`` (with ``stats``,
the per-sample numbers a ``SampleOutput`` carries) and the pure accounting:
``totals``, which summaries a sample carried (``summaries``) and the plain
boxed-answer string it compares them by (``last_boxed``).

Definitions (docs/metrics.md, "Engine metrics"):
- TOK: every generated token of every call (reasoning, summaries, retries, conclusion).
- LAT: the sum over the sample's calls of (finished - submitted) seconds.  A
  sample's calls run one after another, so this is the wall time from its
  first request to its final output under the run's batching (time waiting
  for a batch slot included); a call restored from the cache counts with the
  latency measured when it ran.
- rounds: reasoning calls (``role`` "reason" or "retry"); summary calls are not rounds.
- peak context: the largest prompt + output tokens of any call.
- kv_tokens: the KV-cache footprint over time: for every generated token of
  every call, the context length at that token (prompt + tokens so far), summed:
  sum over calls of out * prompt + out * (out + 1) / 2.
- kv_bytes: kv_tokens in bytes, each call's at its backend's KV bytes per
  token (``backends._kv``); None where a backend does not know it.
- ttft: seconds from the first call's submission to its first output token;
  decode: the sum over calls of (finished - first_token).  Both None where a
  call has no ``first_token`` (the engine does not report it, or the call came
  from the cache), never guessed.
- wait: the sum over calls of (started - submitted), the time each call waited
  for a slot of the engine (inside ttft); None where a call has no
  ``started`` (an engine that does not say, a call from the cache).
- summaries (``summaries``): a SUMMARY call (its tokens: its output tokens),
  or a summary written inside a round (inftythink, inftythink_plus) that the
  next round's prompt carries (its tokens: how much longer that prompt is than
  the first round's, the history block included); summary_tok sums them,
  compression = tokens of the summarised rounds / summary_tok.
- early_answer: 1 when a summary's last ``\\boxed{}`` already holds the final
  answer's last ``\\boxed{}`` (whitespace removed, plain string equality), 0 when
  none does, None when there is no summary or no boxed final answer.  Done here,
  with a small brace matcher, because only the trace has the summaries and
  ``run`` may not import ``scoring``; it compares with the final answer, not the
  gold one (docs/metrics.md).

Does not know: backends, modes' rules, lm-eval.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

from inftythink_eval.backends.base import SamplingParams
from inftythink_eval.formats import plus as P
from inftythink_eval.formats.inftythink import HISTORY_OPEN, SUMMARY_OPEN, parse_round, summary_cut, summary_text

REASON, RETRY, SUMMARY = "reason", "retry", "summary"


@dataclass(frozen=True)
class Call:
    """A request a mode wants made next."""

    role: str  # REASON, RETRY or SUMMARY
    prompt: str
    params: SamplingParams
    backend: str = "main"  # "main" or "summarizer"


@dataclass(frozen=True)
class CallRecord:
    role: str
    backend: str
    prompt: str
    output: str
    prompt_tokens: int
    output_tokens: int
    finish_reason: str
    output_ids: Optional[tuple[int, ...]]
    submitted: float  # wall clock (time.time()) when the request was handed to the scheduler
    finished: float   # wall clock when this request finished (its own, not its batch's)
    cached: bool = False
    first_token: Optional[float] = None  # wall clock of its first output token, where the engine reports it
    started: Optional[float] = None      # wall clock when the engine gave it a slot, where the engine reports it
    kv_token_bytes: Optional[int] = None  # its backend's KV bytes per token of context, where known

    @property
    def latency(self) -> float:
        return self.finished - self.submitted

    @property
    def ttft(self) -> Optional[float]:
        """Seconds from submission to the first output token (waiting for a slot and prefill); None unknown."""
        return None if self.first_token is None else self.first_token - self.submitted

    @property
    def wait(self) -> Optional[float]:
        """Seconds from submission until the engine gave the call a slot; None unknown."""
        return None if self.started is None else self.started - self.submitted

    @property
    def kv_bytes(self) -> Optional[int]:
        return None if self.kv_token_bytes is None else self.kv_tokens * self.kv_token_bytes

    @property
    def decode(self) -> Optional[float]:
        """Seconds from the first output token to the end; None where the first token's time is unknown."""
        return None if self.first_token is None else self.finished - self.first_token

    @property
    def kv_tokens(self) -> int:
        """Sum over this call's generated tokens t = 1..out of the context at that token, prompt + t."""
        out = self.output_tokens
        return out * self.prompt_tokens + out * (out + 1) // 2


@dataclass(frozen=True)
class Final:
    """A mode's decision that the sample is done."""

    answer: str            # text handed to the task (after the last </think>)
    truncated: bool = False
    reason: str = "done"   # "done", "length", "max_rounds", "format", "error"
    error: Optional[str] = None  # with reason "error": why a request of this sample failed for good


@dataclass(frozen=True)
class Summary:
    """One summary carried to the next round: the tokens of the round it summarises, its own, its text."""

    round_tokens: int
    tokens: int
    text: str


@dataclass(frozen=True)
class Totals:
    tok: int
    lat: float
    rounds: int
    peak_ctx: int
    truncated: bool
    format_fail: int
    calls: int
    kv_tokens: int = 0
    ttft: Optional[float] = None
    decode: Optional[float] = None
    wait: Optional[float] = None
    kv_bytes: Optional[int] = None
    summaries: int = 0
    summary_tok: int = 0
    compression: Optional[float] = None
    early_answer: Optional[int] = None


@dataclass
class Trace:
    sample_id: str
    calls: list[CallRecord] = field(default_factory=list)
    final: Optional[Final] = None
    error: Optional[str] = None

    def totals(self) -> Totals:
        return totals(self.calls, self.final)

    def stats(self) -> dict:
        """The sample's stats under ``run.output.STAT_KEYS`` (None: not measured), for ``SampleOutput``."""
        t = self.totals()
        return {"tok": t.tok, "lat": t.lat, "rounds": t.rounds, "peak_ctx": t.peak_ctx,
                "truncated": int(t.truncated), "format_fail": t.format_fail, "error": int(self.error is not None),
                "kv_tokens": t.kv_tokens, "ttft": t.ttft, "decode": t.decode, "summary_tok": t.summary_tok,
                "compression": t.compression, "early_answer": t.early_answer, "wait": t.wait,
                "kv_bytes": t.kv_bytes}

    def to_json(self, include_text: bool = True) -> dict:
        calls = []
        for i, c in enumerate(self.calls):
            row = asdict(c)
            row.pop("output_ids")
            row["index"] = i
            row["latency"], row["ttft"], row["decode"], row["kv_tokens"] = c.latency, c.ttft, c.decode, c.kv_tokens
            row["wait"], row["kv_bytes"] = c.wait, c.kv_bytes
            if not include_text:
                row.pop("prompt"), row.pop("output")
            calls.append(row)
        return {"sample_id": self.sample_id, "calls": calls,
                "final": asdict(self.final) if self.final else None,
                "totals": asdict(self.totals()), "error": self.error}


def totals(calls: list[CallRecord], final: Optional[Final]) -> Totals:
    """Pure accounting; format failures = retries made + a final failed parse."""
    carried = summaries(calls)
    summary_tok = sum(s.tokens for s in carried)
    return Totals(
        tok=sum(c.output_tokens for c in calls),
        lat=sum(c.latency for c in calls),
        rounds=sum(1 for c in calls if c.role in (REASON, RETRY)),
        peak_ctx=max((c.prompt_tokens + c.output_tokens for c in calls), default=0),
        truncated=bool(final and final.truncated),
        format_fail=(sum(1 for c in calls if c.role == RETRY) + (1 if final and final.reason == "format" else 0)
                     + sum(1 for c in calls if c.role == SUMMARY and summary_cut(c.output, c.finish_reason))),
        calls=len(calls),
        kv_tokens=sum(c.kv_tokens for c in calls),
        ttft=calls[0].ttft if calls else None,
        decode=_sum_known([c.decode for c in calls]),
        wait=_sum_known([c.wait for c in calls]),
        kv_bytes=_sum_known([c.kv_bytes for c in calls]),
        summaries=len(carried),
        summary_tok=summary_tok,
        compression=sum(s.round_tokens for s in carried) / summary_tok if summary_tok > 0 else None,
        early_answer=early_answer(carried, final),
    )


def _sum_known(values: list):
    """The sum, or None when there is no value or any is unknown (never a partial sum)."""
    return None if not values or any(v is None for v in values) else sum(values)


def summaries(calls: list[CallRecord]) -> list[Summary]:
    """The sample's summaries, in order: each SUMMARY call (with the reasoning call before it), and each round
    whose output holds a summary (v1 ``parse_round``, else InftyThink+ ``parse_iteration``) that the next
    reasoning call's prompt carries inside a history block."""
    first = next((c.prompt_tokens for c in calls if c.role in (REASON, RETRY)), 0)
    out = []
    for i, call in enumerate(calls):
        before = calls[i - 1] if i > 0 else None
        if call.role == SUMMARY and before is not None and before.role in (REASON, RETRY):
            out.append(Summary(before.output_tokens, call.output_tokens, summary_text(call.output)))
            continue
        after = calls[i + 1] if i + 1 < len(calls) else None
        if call.role in (REASON, RETRY) and after is not None and after.role == REASON:
            text = _carried_summary(call, after.prompt)
            if text is not None:
                out.append(Summary(call.output_tokens, after.prompt_tokens - first, text))
    return out


def _carried_summary(call: CallRecord, next_prompt: str) -> Optional[str]:
    if SUMMARY_OPEN not in call.output or HISTORY_OPEN not in next_prompt:
        return None
    native = parse_round(call.output, call.prompt)
    plus = P.parse_iteration(call.output)
    for text in (native.summary if native.ok else None, plus.summary if plus.kind == P.SUMMARY else None):
        if text and text in next_prompt:
            return text
    return None


def early_answer(carried: list[Summary], final: Optional[Final]) -> Optional[int]:
    """1 when a summary's last boxed answer is the final answer's last boxed answer, else 0; None when there is
    no summary or the final answer has no ``\\boxed{}``."""
    answer = last_boxed(final.answer) if final is not None else None
    if not carried or answer is None:
        return None
    return int(any(last_boxed(s.text) == answer for s in carried))


_BOXED = ("\\boxed{", "\\fbox{")


def last_boxed(text: str) -> Optional[str]:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) with balanced braces, whitespace removed; None
    when there is none or its braces never close.  A plain string, not the answer checker's normal form."""
    start = max(text.rfind(tag) for tag in _BOXED)
    if start == -1:
        return None
    open_at = text.index("{", start)
    depth = 0
    for i in range(open_at, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return "".join(text[open_at + 1:i].split())
    return None
