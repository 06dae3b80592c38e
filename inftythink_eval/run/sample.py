"""The engine's input and decision types: what a mode reads, what it may use, what it returns.

Owns: ``Sample`` (one generation job: question, sampling, how its prompts are
rendered), ``Tools`` (what a mode may use from the backends), ``Decision`` (a
mode's answer: the next ``Call`` or the ``Final``) and the ``Mode`` protocol.

Does not know: any mode's rules, backends' internals, scheduling, lm-eval.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol, Sequence, Union

from inftythink_eval.backends.base import SamplingParams
from inftythink_eval.run.trace import Call, CallRecord, Final


@dataclass(frozen=True)
class Sample:
    """One generation job (a question and repeat) handed to the engine."""

    id: str
    question: str               # the user content (the task's prompt text)
    params: SamplingParams      # the task's budget and sampling: max_gen_toks, temperature, top_p, until, seed
    system: Optional[str] = None
    chat: bool = False          # render prompts with the backend's chat template
    native: bool = False        # render prompts as the protocol's User:{q}Assistant: (overrides chat)
    history: tuple = field(default=(), compare=False)  # chat turns before the question, {"role", "content"} dicts
    gen_prefix: str = ""        # text the assistant turn starts with (lm-eval's gen_prefix), after the chat template


@dataclass(frozen=True)
class Tools:
    """What modes may use from the outside world: prompt rendering and token (de)coding."""

    render: Callable[[Sample, str], str]          # (sample, user text) -> main-backend prompt
    render_chat: Callable[[list[dict]], str]      # chat -> summarizer-backend prompt
    encode: Callable[[str], list[int]]
    decode: Callable[[Sequence[int]], str]
    # (sample, user text, assistant prefill) -> the main backend's chat template over [system?, user],
    # generation prompt, then the prefill; the assistant turn continues from there.
    render_turn: Optional[Callable[[Sample, str, str], str]] = None


Decision = Union[Call, Final]


class Mode(Protocol):
    name: str
    params: Any

    def next_call(self, sample: Sample, calls: list[CallRecord]) -> Decision: ...
