"""Prompt rendering for modes: the ``Tools`` a mode gets from the backends it runs on.

Owns: how a sample's user text becomes a main-backend prompt (protocol
``User:``/``Assistant:``, the model's chat template, or the task text as is),
how a chat becomes a summariser prompt, a chat-template turn with an assistant
prefill (``render_turn``, for formats whose history sits in the assistant turn),
and token (de)coding handed to modes.

System messages in ``render_turn``: a system message where the template has
one; where it raises on the system role or silently drops it, the system text
goes before the question in the user turn (as ``render`` does without a template).
The strings and the chats themselves come from ``formats`` (``with_system``,
``chat_messages``, ``native_prompt``, ``strip_think_opener``).

Does not know: scheduling, caching, lm-eval, what a prefill means, any format's bytes.
"""

from __future__ import annotations

from jinja2 import TemplateError

from inftythink_eval.backends.base import Backend
from inftythink_eval.run.sample import Sample, Tools
from inftythink_eval.formats.inftythink import chat_messages, native_prompt, with_system
from inftythink_eval.formats.plus import strip_think_opener


def chat_turn(backend: Backend, system, text: str, prefill: str = "") -> str:
    """``backend``'s chat template over [system?, user text] with the generation prompt, then ``prefill``.

    A ``<think>`` that the generation prompt already opens is cut (``formats.plus.strip_think_opener``):
    the prefill goes where the assistant turn begins.
    """
    prompt = None
    if system:
        try:
            prompt = backend.apply_chat_template(chat_messages(text, system))
        except TemplateError:  # e.g. "System role not supported"
            prompt = None
        if prompt is not None and system not in prompt:
            prompt = None  # the template dropped the system message
    if prompt is None:
        prompt = backend.apply_chat_template(chat_messages(with_system(system, text)))
    return strip_think_opener(prompt)[0] + prefill


def make_tools(main: Backend, summarizer: Backend) -> Tools:
    def render(sample: Sample, text: str) -> str:
        if sample.native:
            return native_prompt(with_system(sample.system, text))
        if sample.chat:
            return main.apply_chat_template(chat_messages(text, sample.system, sample.history)) + sample.gen_prefix
        return with_system(sample.system, text)

    def render_chat(messages: list[dict]) -> str:
        try:
            return summarizer.apply_chat_template(messages)
        except ValueError:  # no chat template: a plain transcript
            names = {"user": "User", "assistant": "Assistant", "system": "System"}
            return "".join(f"{names[m['role']]}: {m['content']}\n\n" for m in messages) + "Assistant:"

    def render_turn(sample: Sample, text: str, prefill: str) -> str:
        return chat_turn(main, sample.system, text, prefill)

    return Tools(render=render, render_chat=render_chat, encode=main.encode, decode=main.decode,
                 render_turn=render_turn)
