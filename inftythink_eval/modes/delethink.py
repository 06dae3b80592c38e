"""Mode ``delethink``: Markovian chunked thinking with a fixed carryover.

Owns: the chunking rule.  Chunks of ``chunk`` tokens C; the next prompt is the query, the first
``keep_head`` tokens of chunk 1 and the last ``carryover`` tokens m of the
reasoning so far; each later chunk generates C - m new tokens; at most
``max_chunks`` chunks.  The carryover is cut from the accumulated reasoning
(the previous carryover followed by the last output), never from the last
output alone: after chunk 1 a call writes only C - m tokens, which is fewer
than m when m > C/2.

Does not know: backends' internals, scheduling, lm-eval.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Optional

from inftythink_eval.formats import inftythink as T
from inftythink_eval.run.trace import REASON, Call, CallRecord, Final
from inftythink_eval.modes._base import Decision, Param, Sample, Tools, register, seeded

PARAMS = (
    Param("chunk", int, 8192, "chunk size C in tokens", 1, key=True),
    Param("carryover", Optional[int], None, "tokens m carried from the reasoning so far (default C/2)", key=True),
    Param("keep_head", int, 100, "tokens kept from the start of chunk 1", 0),
    Param("max_chunks", int, 5, "most chunks I", 1, key=True),
)


def _validate(values: dict) -> dict:
    m = values["chunk"] // 2 if values["carryover"] is None else values["carryover"]
    if not 0 <= m < values["chunk"]:
        raise ValueError(f"carryover must be in [0, chunk), got {m} with chunk={values['chunk']}")
    return {**values, "carryover": m}


@register("delethink", PARAMS, validate=_validate, rank=30, summary="Delethink-style carryover: chunks of `chunk` "
          "tokens; the next prompt is the query + the first `keep_head` tokens of chunk 1 + the last `carryover` "
          "tokens of the reasoning so far")
@dataclass(frozen=True)
class Delethink:
    tools: Tools
    params: Any = None

    def next_call(self, sample: Sample, calls: list[CallRecord]) -> Decision:
        base = self.tools.render(sample, sample.question)
        if not calls:
            return Call(REASON, base, seeded(replace(sample.params, max_tokens=self.params.chunk), 0))
        last = calls[-1]
        if last.finish_reason == "stop":
            return Final(T.final_answer_text(last.output))
        if len(calls) >= self.params.max_chunks:
            return Final(T.final_answer_text(last.output), truncated=True, reason="max_rounds")
        head = self._ids(calls[0])[: self.params.keep_head]
        m = self.params.carryover
        reasoning = [i for call in calls for i in self._ids(call)]  # last m of this == last m of (carry + last output)
        tail = reasoning[-m:] if m else []
        prompt = base + self.tools.decode(head) + self.tools.decode(tail)
        budget = replace(sample.params, max_tokens=self.params.chunk - m)
        return Call(REASON, prompt, seeded(budget, len(calls)))

    def _ids(self, record: CallRecord) -> list[int]:
        return list(record.output_ids) if record.output_ids is not None else self.tools.encode(record.output)
