"""Mode ``vanilla``: one generation up to the task's token limit.

Owns: the one-call rule: the task's prompt, rendered as the sample says, up to its token limit.

Does not know: rounds, summaries, backends' internals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from inftythink_eval.formats import inftythink as T
from inftythink_eval.run.trace import REASON, Call, CallRecord, Final
from inftythink_eval.modes._base import Decision, Sample, Tools, register, seeded


@register("vanilla", rank=0, summary="one generation up to the task's `max_gen_toks`")
@dataclass(frozen=True)
class Vanilla:
    tools: Tools
    params: Any = None

    def next_call(self, sample: Sample, calls: list[CallRecord]) -> Decision:
        if not calls:
            return Call(REASON, self.tools.render(sample, sample.question), seeded(sample.params, 0))
        last = calls[-1]
        return Final(T.final_answer_text(last.output), truncated=last.finish_reason == "length",
                     reason="length" if last.finish_reason == "length" else "done")
