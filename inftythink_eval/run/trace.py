"""What happened to one sample: its calls, in order, and the totals derived from them.

Owns: ``Call`` (what a mode asks for), ``CallRecord`` (what came back, with
timing), ``Final`` (a mode's decision to stop), ``Trace`` and the pure
accounting function ``totals``.

Definitions (documented in README "Metrics"):
- TOK: every generated token of every call (reasoning, summaries, retries, conclusion).
- LAT: the sum over the sample's calls of (finished - submitted) seconds.  A
  sample's calls run one after another, so this is the wall time from its
  first request to its final output under the run's batching (time waiting
  for a batch slot included); a call restored from the cache counts with the
  latency measured when it ran.
- rounds: reasoning calls (``role`` "reason" or "retry"); summary calls are not rounds.
- peak context: the largest prompt + output tokens of any call.

Does not know: backends, modes' rules, lm-eval.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

from inftythink_eval.backends.base import SamplingParams
from inftythink_eval.formats.inftythink import summary_cut

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

    @property
    def latency(self) -> float:
        return self.finished - self.submitted


@dataclass(frozen=True)
class Final:
    """A mode's decision that the sample is done."""

    answer: str            # text handed to the task (after the last </think>)
    truncated: bool = False
    reason: str = "done"   # "done", "length", "max_rounds", "format", "error"
    error: Optional[str] = None  # with reason "error": why a request of this sample failed for good


@dataclass(frozen=True)
class Totals:
    tok: int
    lat: float
    rounds: int
    peak_ctx: int
    truncated: bool
    format_fail: int
    calls: int


@dataclass
class Trace:
    sample_id: str
    calls: list[CallRecord] = field(default_factory=list)
    final: Optional[Final] = None
    error: Optional[str] = None

    def totals(self) -> Totals:
        return totals(self.calls, self.final)

    def to_json(self, include_text: bool = True) -> dict:
        calls = []
        for i, c in enumerate(self.calls):
            row = asdict(c)
            row.pop("output_ids")
            row["index"] = i
            row["latency"] = c.latency
            if not include_text:
                row.pop("prompt"), row.pop("output")
            calls.append(row)
        return {"sample_id": self.sample_id, "calls": calls,
                "final": asdict(self.final) if self.final else None,
                "totals": asdict(self.totals()), "error": self.error}


def totals(calls: list[CallRecord], final: Optional[Final]) -> Totals:
    """Pure accounting; format failures = retries made + a final failed parse."""
    return Totals(
        tok=sum(c.output_tokens for c in calls),
        lat=sum(c.latency for c in calls),
        rounds=sum(1 for c in calls if c.role in (REASON, RETRY)),
        peak_ctx=max((c.prompt_tokens + c.output_tokens for c in calls), default=0),
        truncated=bool(final and final.truncated),
        format_fail=(sum(1 for c in calls if c.role == RETRY) + (1 if final and final.reason == "format" else 0)
                     + sum(1 for c in calls if c.role == SUMMARY and summary_cut(c.output, c.finish_reason))),
        calls=len(calls),
    )
