"""Mode ``inftythink_plus``: the InftyThink+ iteration format (arXiv 2602.06960, ZJU-REAL/InftyThink-Plus).

Owns: the iteration rule.  Iteration j's prompt is the model's chat template over [system?, user
question] with the generation prompt, then the assistant turn prefilled with
``<history>\\n{s_(j-1)}\\n</history>`` from iteration 2 on; the model continues
with ``<think>`` (``engine.prompts.make_tools`` renders, ``formats.plus`` owns the bytes).
A generation prompt that already opens ``<think>`` (some R1-distill tokenizer
revisions) has that opener cut, because the released checkpoints were trained
with the history before ``<think>`` and write ``<think>`` themselves.
``template=native`` does not apply: the format is a chat.

Verdicts of one iteration (``formats.plus.parse_iteration``):
- ``<think>…</think><summary>…</summary>`` -> next iteration with that summary as
  history; at the cap ``max_rounds`` -> final, reason ``max_rounds``, truncated.
- ``<think>…</think>`` then a conclusion -> final, reason ``done`` (``length``
  and truncated when the conclusion was cut by ``round_tokens``).
- cut by ``round_tokens`` before ``</think>`` (no ``<summary>``) -> final, reason
  ``length``, truncated (a budget matter, as in v1).
- anything else (stopped without ``</think>``, a broken or cut summary) -> final,
  reason ``format`` (counted as a format failure).

Does not know: backends' internals, scheduling, lm-eval.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Optional

from inftythink_eval.formats import plus as P
from inftythink_eval.formats.inftythink import SUMMARY_OPEN, final_answer_text
from inftythink_eval.run.trace import REASON, Call, CallRecord, Final
from inftythink_eval.modes._base import MAX_ROUNDS, ROUND_TOKENS, Decision, Sample, Tools, reasons, register, seeded

PARAMS = (MAX_ROUNDS, ROUND_TOKENS)


@register("inftythink_plus", PARAMS, rank=40, summary="the InftyThink+ format of its released checkpoints "
          "(PROTOCOL_PLUS.md): the model's chat template over the question (system instruction as a system message), "
          "the assistant turn prefilled with `<history>\\n{S}\\n</history>` from round 2; a conclusion instead of "
          "`<summary>` is final, an invalid format is a `format` failure; a `<think>` opened by the generation prompt "
          "is cut (the history goes before it)")
@dataclass(frozen=True)
class InftyThinkPlus:
    tools: Tools
    params: Any = None

    def _call(self, sample: Sample, summary: Optional[str], index: int) -> Call:
        if self.tools.render_turn is None:
            raise ValueError("mode inftythink_plus needs Tools.render_turn (the main backend's chat template "
                             "with an assistant prefill); build the tools with render.make_tools")
        prompt = self.tools.render_turn(sample, sample.question, P.history_block(summary))
        return Call(REASON, prompt, seeded(replace(sample.params, max_tokens=self.params.round_tokens), index))

    def next_call(self, sample: Sample, calls: list[CallRecord]) -> Decision:
        if not calls:
            return self._call(sample, None, 0)
        last = calls[-1]
        cut = last.finish_reason == "length"
        iteration = P.parse_iteration(last.output)
        if iteration.kind == P.SUMMARY:
            if len(reasons(calls)) >= self.params.max_rounds:
                return Final("", truncated=True, reason="max_rounds")
            return self._call(sample, iteration.summary, len(calls))
        if iteration.kind == P.CONCLUSION:
            return Final(iteration.conclusion, truncated=cut, reason="length" if cut else "done")
        if cut and SUMMARY_OPEN not in last.output:
            return Final(final_answer_text(last.output), truncated=True, reason="length")
        return Final(final_answer_text(last.output), truncated=cut, reason="format")
