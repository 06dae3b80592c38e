"""Mode ``inftythink``: the native protocol of InftyThink v1 (arXiv 2503.06692).

Owns: the round rule of the native protocol: templates byte for byte (``formats.inftythink``), the history replaced each round; a
round without ``<summary>`` is final, truncation included; optional retry of a
round whose ``<summary>`` fails the official parse.  The question is wrapped
in the role strings, never in a chat template.

Does not know: backends' internals, scheduling, lm-eval.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Optional

from inftythink_eval.formats import inftythink as T
from inftythink_eval.run.trace import REASON, RETRY, Call, CallRecord, Final
from inftythink_eval.modes._base import MAX_ROUNDS, ROUND_TOKENS, Decision, Param, Sample, Tools, register, seeded, trailing_retries

PARAMS = (
    MAX_ROUNDS,
    ROUND_TOKENS,
    Param("retry", bool, False, "repeat a round whose <summary> fails the official parse (each retry counted)"),
    Param("max_retries", int, 3, "retries per round when retry is on", 0),
    Param("user_role", str, T.USER_ROLE, "user role string of the native prompt (the paper writes <|U|>)"),
    Param("assistant_role", str, T.ASSISTANT_ROLE, "assistant role string of the native prompt (the paper writes <|A|>)"),
)


@register("inftythink", PARAMS, rank=10, summary="the native protocol of the released checkpoints: prompts "
          "`User:{q}Assistant:` and `User:{q}Assistant:<history>{S}</history>` byte for byte (PROTOCOL.md), history "
          "replaced each round; a round without `<summary>` is final (truncation included)")
@dataclass(frozen=True)
class InftyThink:
    tools: Tools
    params: Any = None

    def _question(self, sample: Sample) -> str:
        return T.with_system(sample.system, sample.question)

    def _budget(self, sample: Sample, index: int):
        return seeded(replace(sample.params, max_tokens=self.params.round_tokens), index)

    def _call(self, sample: Sample, summary: Optional[str], index: int) -> Call:
        roles = T.Roles(self.params.user_role, self.params.assistant_role)
        return Call(REASON, T.native_prompt(self._question(sample), summary, roles), self._budget(sample, index))

    def next_call(self, sample: Sample, calls: list[CallRecord]) -> Decision:
        if not calls:
            return self._call(sample, None, 0)
        last = calls[-1]
        parsed = T.parse_round(last.output, last.prompt)
        if not parsed.ok:
            if self.params.retry and trailing_retries(calls) < self.params.max_retries:
                return Call(RETRY, last.prompt, self._budget(sample, len(calls)))
            return Final(T.final_answer_text(last.output), truncated=last.finish_reason == "length", reason="format")
        if parsed.summary is None:
            return Final(parsed.conclusion, truncated=last.finish_reason == "length",
                         reason="length" if last.finish_reason == "length" else "done")
        if sum(1 for c in calls if c.role == REASON) >= self.params.max_rounds:
            return Final("", truncated=True, reason="max_rounds")
        return Call(REASON, T.next_native_prompt(parsed.instruction, parsed.summary), self._budget(sample, len(calls)))
