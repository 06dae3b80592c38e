"""Prompt rendering for modes: the ``Tools`` a mode gets from the backends it runs on.

Owns: how a sample's user text becomes a main-backend prompt (protocol
``User:``/``Assistant:``, the model's chat template, or the task text as is),
how a chat becomes a summariser prompt, and token (de)coding handed to modes.

Does not know: scheduling, caching, lm-eval.
"""

from __future__ import annotations

from .backends.base import Backend
from .modes import Sample, Tools
from .templates import native_prompt


def make_tools(main: Backend, summarizer: Backend) -> Tools:
    def render(sample: Sample, text: str) -> str:
        if sample.native:
            return native_prompt(f"{sample.system}\n\n{text}" if sample.system else text)
        if sample.chat:
            messages = ([{"role": "system", "content": sample.system}] if sample.system else []) + \
                       [{"role": "user", "content": text}]
            return main.apply_chat_template(messages)
        return f"{sample.system}\n\n{text}" if sample.system else text

    def render_chat(messages: list[dict]) -> str:
        try:
            return summarizer.apply_chat_template(messages)
        except ValueError:  # no chat template: a plain transcript
            names = {"user": "User", "assistant": "Assistant", "system": "System"}
            return "".join(f"{names[m['role']]}: {m['content']}\n\n" for m in messages) + "Assistant:"

    return Tools(render=render, render_chat=render_chat, encode=main.encode, decode=main.decode)
