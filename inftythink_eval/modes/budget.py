"""Mode ``budget``: s1's budget forcing (arXiv 2501.19393), the baseline for bounded-context methods at equal tokens.

Owns: the two-call rule.  Call 1 is the task's prompt (rendered as the sample says), up to
``think_tokens`` (B) tokens, stopping at the task's own stop strings and at the end-of-thinking
marker (``think_end`` without its surrounding blanks, ``</think>`` by default).  Call 2 continues
the same text: ``prompt_1 + output_1 + think_end + answer_prefix``, up to ``answer_tokens`` (A)
tokens with the task's stop strings; its output is the answer (``final_answer_text``), truncated
when it hits A.  Whether the model closed its thinking early or was cut at B, the marker is
written back in the same bytes, so call 2's prompt is fixed by call 1 alone (the backends cut a
stop string from the output, so the marker the model wrote is not in ``output_1``).

One call only when the model answered directly: call 1 stopped (not at B) with no thinking
open at its end, i.e. the last ``<think>`` of ``prompt_1 + output_1`` is not after the last
marker (none at all for an instruct model; a chat template that opens ``<think>`` in the prompt
counts as open).  Its output is then the answer.  A model that stops inside its thinking
(marker, EOS or a task stop string) is forced to answer, as s1 does.  Limit: the backends report
"stop" without saying which stop string matched, so a model that writes the marker without ever
opening ``<think>`` anywhere is read as a direct answer.

Accounting: both calls are ``reason`` calls, so ``rounds`` is 2 when the answer was forced
(1 for a direct answer) and TOK is both calls' output tokens (at most B + A).  ``think_tokens``
and ``answer_tokens`` replace the task's ``max_gen_toks``.  s1 appends ``Final Answer:`` after
the marker; the default ``answer_prefix`` is empty (the task's prompt already says how to answer,
and the InftyThink format puts the conclusion right after ``</think>``): set
``answer_prefix=Final Answer:`` to reproduce s1.  s1's other half (suppressing the marker and
appending "Wait" to think longer) is not part of this mode.

``engine_budget=true``: one call, the budget kept by the engine itself (vLLM's ``thinking_token_budget``
with a ``reasoning_config`` whose start is ``<think>`` and whose forced end is ``think_end + answer_prefix``;
backends that declare ``thinking_budget``; any other is refused before a model loads).  The call may make
B + len(forced end) + A tokens; after B tokens inside thinking the engine writes the forced end and the model
answers in the same call.  The answer is read as call 2's output is, from what follows the first forced end
(else from the whole output: after the model's own last ``</think>``).  Where the rules
differ: a model that stops inside its thinking (EOS or a task stop string) is not forced to answer, and a
model that closes its own thinking goes on in its own words (no ``think_end`` written in); the forced end is
written as token ids, not re-tokenized with the text before it.  ``rounds`` is 1 and TOK counts the forced
end's tokens too.

Does not know: backends' internals, scheduling, lm-eval.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Optional

from inftythink_eval.formats import inftythink as T
from inftythink_eval.run.trace import REASON, Call, CallRecord, Final
from inftythink_eval.modes._base import Decision, Param, Sample, Tools, register, seeded

DEFAULT_THINK_END = f"\n{T.THINK_CLOSE}\n\n"  # the protocol's closing line (``<think>\n{span}\n</think>``), then a blank line

PARAMS = (
    Param("think_tokens", int, 4096, "thinking budget B: most tokens of call 1", 1, key=True),
    Param("answer_tokens", int, 1024, "answer budget A: most tokens of call 2, after the forced end of thinking", 1,
          key=True),
    Param("think_end", Optional[str], None, "text appended to end the thinking; its stripped form is call 1's stop "
          "string (none: newline, </think>, blank line)"),
    Param("answer_prefix", Optional[str], None, "text after think_end that the answer continues (none: nothing; "
          "s1 writes Final Answer:)"),
    Param("engine_budget", bool, False, "one call, the thinking budget kept by the engine (vLLM's "
          "thinking_token_budget; backends that declare thinking_budget)"),
)


def _validate(values: dict) -> dict:
    """Checks only: a default left as None stays None, so records and tables show it as the default."""
    end = values["think_end"]
    if end is not None and not end.strip():
        raise ValueError(f"think_end must hold a marker (e.g. {T.THINK_CLOSE}), got {end!r}; it is also the stop "
                         "string that ends the thinking (leave it out for the default)")
    return values


def thinking_open(text: str, marker: str) -> bool:
    """Whether ``text`` ends inside thinking: its last ``<think>`` comes after its last ``marker``."""
    return text.rfind(T.THINK_OPEN) > text.rfind(marker)  # -1 > anything found: no <think>, not open


@register("budget", PARAMS, validate=_validate, rank=35, summary="s1 budget forcing: think up to `think_tokens`, "
          "then answer in up to `answer_tokens`")
@dataclass(frozen=True)
class Budget:
    tools: Tools
    params: Any = None

    @property
    def think_end(self) -> str:
        return DEFAULT_THINK_END if self.params.think_end is None else self.params.think_end

    @property
    def marker(self) -> str:
        return self.think_end.strip()

    @staticmethod
    def engine_thinking(params: Any) -> Optional[tuple[str, str]]:
        """The (opening, forced end) texts the backend must enforce itself, or None (the two-call rule)."""
        if not params.engine_budget:
            return None
        end = DEFAULT_THINK_END if params.think_end is None else params.think_end
        return T.THINK_OPEN, end + (params.answer_prefix or "")

    def next_call(self, sample: Sample, calls: list[CallRecord]) -> Decision:
        if self.params.engine_budget:
            return self._one_call(sample, calls)
        if not calls:
            stop = sample.params.stop + (() if self.marker in sample.params.stop else (self.marker,))
            think = replace(sample.params, max_tokens=self.params.think_tokens, stop=stop)
            return Call(REASON, self.tools.render(sample, sample.question), seeded(think, 0))
        first = calls[0]
        if len(calls) == 1:
            direct = first.finish_reason == "stop" and not thinking_open(first.prompt + first.output, self.marker)
            if direct:
                return Final(T.final_answer_text(first.output))
            prompt = first.prompt + first.output + self.think_end + (self.params.answer_prefix or "")
            answer = replace(sample.params, max_tokens=self.params.answer_tokens)
            return Call(REASON, prompt, seeded(answer, 1))
        last = calls[-1]
        cut = last.finish_reason == "length"
        return Final(T.final_answer_text(last.output), truncated=cut, reason="length" if cut else "done")

    def _one_call(self, sample: Sample, calls: list[CallRecord]) -> Decision:
        if not calls:
            marks = self.engine_thinking(self.params)
            room = self.params.think_tokens + len(self.tools.encode(marks[1])) + self.params.answer_tokens
            one = replace(sample.params, max_tokens=room, think_budget=self.params.think_tokens, think_marks=marks)
            return Call(REASON, self.tools.render(sample, sample.question), seeded(one, 0))
        output, forced = calls[0].output, self.engine_thinking(self.params)[1]
        at = output.find(forced)  # what follows it is what call 2 of the two-call rule writes
        answer = T.final_answer_text(output[at + len(forced):] if at != -1 else output)
        cut = calls[0].finish_reason == "length"
        return Final(answer, truncated=cut, reason="length" if cut else "done")
