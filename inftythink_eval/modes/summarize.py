"""Mode ``summarize``: training-free iterative reasoning for any instruction or chat model.

Owns: the round-and-summary rule.  Rounds are capped at ``eta`` tokens; an unfinished round is summarised (same
or another backend, ``formats.inftythink.summary_chat``) and the next round sees the
question and that summary (``formats.inftythink.continuation_question``).

Does not know: backends' internals, scheduling, lm-eval.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Optional

from inftythink_eval.formats import inftythink as T
from inftythink_eval.backends.base import SamplingParams
from inftythink_eval.run.trace import REASON, SUMMARY, Call, CallRecord, Final
from inftythink_eval.modes._base import MAX_ROUNDS, Decision, Param, Sample, Tools, last_summary, reasons, register, seeded

PARAMS = (
    MAX_ROUNDS,
    Param("eta", int, T.DEFAULT_ETA, "most tokens per reasoning round", 1, key=True),
    Param("summary_tokens", int, 1024, "most tokens per summary", 1),
    Param("summary_temperature", float, 0.5, "sampling temperature of summaries (PROTOCOL.md uses 0.5)", 0),
)


@register("summarize", PARAMS, rank=20, summary="training-free, for any instruction/chat model: a round is cut at "
          "`eta` tokens; if unfinished, a summariser (same model, or `summarizer_backend`/`summarizer_pretrained`) "
          "writes a progress summary with the protocol's summary instruction; the next round sees the question and "
          "that summary")
@dataclass(frozen=True)
class Summarize:
    tools: Tools
    params: Any = None

    def _reason(self, sample: Sample, summary: Optional[str], index: int) -> Call:
        text = sample.question if summary is None else T.continuation_question(sample.question, summary)
        budget = replace(sample.params, max_tokens=min(self.params.eta, sample.params.max_tokens))
        return Call(REASON, self.tools.render(sample, text), seeded(budget, index))

    def _summary(self, sample: Sample, calls: list[CallRecord]) -> Call:
        previous = last_summary(calls)
        progress = ([previous] if previous else []) + [calls[-1].output]
        prompt = self.tools.render_chat(T.summary_chat(sample.question, progress))
        params = SamplingParams(max_tokens=self.params.summary_tokens, temperature=self.params.summary_temperature,
                                top_p=1.0, seed=sample.params.seed)
        return Call(SUMMARY, prompt, seeded(params, len(calls)), backend="summarizer")

    def next_call(self, sample: Sample, calls: list[CallRecord]) -> Decision:
        if not calls:
            return self._reason(sample, None, 0)
        last = calls[-1]
        if last.role == SUMMARY:
            return self._reason(sample, T.summary_text(last.output), len(calls))
        if last.finish_reason == "stop":
            return Final(T.final_answer_text(last.output))
        if len(reasons(calls)) >= self.params.max_rounds:
            return Final(T.final_answer_text(last.output), truncated=True, reason="max_rounds")
        return self._summary(sample, calls)
