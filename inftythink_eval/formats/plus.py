"""InftyThink+ format strings and the pure functions that build and parse them.

Owns: every byte of the InftyThink+ format (the history block, the think,
summary and conclusion spans, the assistant turn of a training row, the two
summary-prompt chats of the cold-start recipe, the loss-mask regex of the
history span), which pieces of a rendered training chat carry loss
(``training_pieces``), the parse of one iteration's output, and the format's
name (``inftythink_plus``; the data builder's old spelling ``plus`` is read as
it).  Imported by the evaluator (``modes/inftythink_plus.py``,
``engine/prompts.py``), the data builder and the SFT recipe, so training and
evaluation formats cannot drift.

Does not know: tokenizers, chat templates, backends, files.  The chat
template of the base model renders the chat (``engine.prompts.chat_turn``, the
recipe's tokenizer); this module only says what goes into it.

Source of every constant: ../shared/PROTOCOL_PLUS.md, which cites the repo
ZJU-REAL/InftyThink-Plus (``cold-start/format_inftythink.py``,
``cold-start/inftythink_runner.py``, ``cold-start/prompt/step1.txt``,
``cold-start/prompt/step2.txt``,
``cold-start/ms-swift/swift/plugin/loss_scale/config/inftythink.json``).
It differs from v1 (``formats.inftythink``): the question is a chat user turn, the
history sits inside the assistant turn with newlines around it, and a final
iteration writes its conclusion after ``</think>`` with empty tags.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from inftythink_eval.formats.inftythink import (HISTORY_CLOSE, HISTORY_OPEN, SUMMARY_CLOSE, SUMMARY_OPEN, THINK_CLOSE,
                                                THINK_OPEN)

NAME = "inftythink_plus"  # the format's one name: the mode, ``inftythink data build --format``, the training config
OLD_NAME = "plus"         # the data builder's spelling before issue 20 (``--format plus``): still read as NAME


def format_name(name: str) -> str:
    """``name``, with the old spelling ``plus`` read as ``inftythink_plus``."""
    return NAME if name == OLD_NAME else name


# format_inftythink.py: CONCLUSION_START = CONCLUSION_END = '' (a conclusion is "\n{conclusion}\n").
CONCLUSION_OPEN, CONCLUSION_CLOSE = "", ""

# Data construction (PROTOCOL_PLUS.md "Data"): eta = 6k tokens per span.
DEFAULT_PLUS_ETA = 6000
# inftythink_runner.py: a summary that does not finish is regenerated up to 64 times, then the trace is dropped.
SUMMARY_MAX_RETRIES = 64
# inftythink_runner.py sampling of summaries (Qwen3-4B-Instruct-2507); max_new_tokens is a CLI flag,
# PROTOCOL_PLUS.md reports at most 1024 tokens.
SUMMARY_TEMPERATURE, SUMMARY_TOP_P, SUMMARY_MAX_TOKENS = 0.5, 0.95, 1024

# Items 2-7, identical in step1.txt and step2.txt.
_REQUIREMENTS_2_TO_7 = (
    "2. You need to summarize the steps and conclusions that helped to ultimately solve the problem;\n"
    "3. You do not need to provide the final answer or any additional notes;\n"
    "4. Please summarize as concisely as possible, but do not omit any important steps or conclusions;\n"
    "5. Please note that your reasoning may not be complete;\n"
    "6. Please do not provide any reasoning or conclusions that were not presented.\n"
    "7. Please use '*' to list all summaries."
)
# cold-start/prompt/step1.txt (verbatim; the file has no trailing newline): summary of the first span.
SUMMARY_PROMPT_FIRST = (
    "Please summarize the reasoning and conclusions you reached in your previous truncated response. "
    "Here are the specific requirements:\n\n"
    "1. You need to summarize the key steps and corresponding important conclusions you took in all the "
    "reasoning processes in chronological order;\n"
    + _REQUIREMENTS_2_TO_7
)
# cold-start/prompt/step2.txt (verbatim; no trailing newline): summary of a later span, history included.
SUMMARY_PROMPT_LATER = (
    "Please update your reasoning history based on the reasoning and conclusions reached in the previous "
    "truncated response. The specific requirements are as follows:\n\n"
    "1. You need to summarize the key steps and corresponding important conclusions you took in all "
    "reasoning processes (including your entire reasoning history) in chronological order;\n"
    + _REQUIREMENTS_2_TO_7
)
# inftythink_runner.py: the user turn between the previous summary and the span in later-span chats.
CONTINUE_INSTRUCTION = "Please continue your reasoning based on your past reasoning history."

# loss_scale/config/inftythink.json: {"<history>.+</history>": [0.0]}; ms-swift splits with re.DOTALL.
HISTORY_LOSS_PATTERN = r"<history>.+</history>"
HISTORY_LOSS_RE = re.compile(HISTORY_LOSS_PATTERN, re.DOTALL)

_SUMMARY_ROUND_RE = re.compile(
    rf"^\s*{THINK_OPEN}(.+){THINK_CLOSE}\s*{SUMMARY_OPEN}(.+){SUMMARY_CLOSE}\s*$", re.DOTALL)


_SPACE_RUN = re.compile(r"\s*")


def summary_round_groups(output: str) -> Optional[tuple[str, str]]:
    """``_SUMMARY_ROUND_RE.match(output).groups()`` (or None), found in linear time.

    The greedy regex backtracks over every ``</think>`` for every ``</summary>``: quadratic
    time on an output that repeats the tags.  The same match: ``<think>`` after leading
    whitespace, the last ``</summary>`` (only whitespace after it), and the last ``</think>``
    followed by whitespace, ``<summary>`` and at least one character before that.
    """
    start = len(output) - len(output.lstrip())
    end = output.rfind(SUMMARY_CLOSE)
    if not output.startswith(THINK_OPEN, start) or end == -1 or output[end + len(SUMMARY_CLOSE):].strip():
        return None
    close = end
    while True:
        close = output.rfind(THINK_CLOSE, start + len(THINK_OPEN) + 1, close)
        if close == -1:
            return None
        body = _SPACE_RUN.match(output, close + len(THINK_CLOSE)).end()
        if output.startswith(SUMMARY_OPEN, body) and body + len(SUMMARY_OPEN) < end:
            return output[start + len(THINK_OPEN):close], output[body + len(SUMMARY_OPEN):end]


def history_block(summary: Optional[str]) -> str:
    """``<history>\\n{summary}\\n</history>``, or "" in the first iteration (no summary yet)."""
    return "" if summary is None else f"{HISTORY_OPEN}\n{summary}\n{HISTORY_CLOSE}"


def think_block(reasoning: str) -> str:
    return f"{THINK_OPEN}\n{reasoning}\n{THINK_CLOSE}"


def summary_block(summary: str) -> str:
    return f"{SUMMARY_OPEN}\n{summary}\n{SUMMARY_CLOSE}"


def conclusion_block(conclusion: str) -> str:
    return f"{CONCLUSION_OPEN}\n{conclusion}\n{CONCLUSION_CLOSE}"


def assistant_turn(reasoning: str, history: Optional[str] = None, summary: Optional[str] = None,
                   conclusion: Optional[str] = None) -> str:
    """The assistant content of one training row: history (iteration > 1), think, then summary or conclusion."""
    if (summary is None) == (conclusion is None):
        raise ValueError("assistant_turn needs exactly one of summary= (non-final) or conclusion= (final)")
    end = summary_block(summary) if summary is not None else conclusion_block(conclusion)
    return history_block(history) + think_block(reasoning) + end


def training_messages(question: str, reasoning: str, history: Optional[str] = None,
                      summary: Optional[str] = None, conclusion: Optional[str] = None) -> list[dict]:
    """One cold-start row as a chat: [user question, assistant turn] (format_inftythink.py)."""
    return [{"role": "user", "content": question},
            {"role": "assistant", "content": assistant_turn(reasoning, history, summary, conclusion)}]


def summary_chat_plus(question: str, span: str, previous_summary: Optional[str] = None) -> list[dict]:
    """The chat that asks the summariser for span j's summary (inftythink_runner.py).

    First span: [user q, assistant span, user step1].  Later spans: [user q,
    assistant previous summary, user CONTINUE_INSTRUCTION, assistant span, user step2].
    """
    if previous_summary is None:
        return [{"role": "user", "content": question}, {"role": "assistant", "content": span},
                {"role": "user", "content": SUMMARY_PROMPT_FIRST}]
    return [{"role": "user", "content": question}, {"role": "assistant", "content": previous_summary},
            {"role": "user", "content": CONTINUE_INSTRUCTION}, {"role": "assistant", "content": span},
            {"role": "user", "content": SUMMARY_PROMPT_LATER}]


def history_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of ``text`` that carry no loss (the history block), by the recipe's regex."""
    return [m.span() for m in HISTORY_LOSS_RE.finditer(text)]


def training_pieces(generation_prompt: str, reply: str) -> list[tuple[str, bool]]:
    """The training text of a chat row as (text, trained) pieces, in order, adjacent pieces of a kind merged.

    ``generation_prompt``: the chat template over the turns before the last, with the generation
    prompt (a ``<think>`` it opens itself is cut, as the evaluator does: ``strip_think_opener``);
    ``reply``: the last assistant turn.  Untrained: the prompt and every ``<history>…</history>``
    span of the reply (``history_spans``); trained: the rest of the reply.  The caller tokenizes
    each piece on its own, so the prompt + history ids are what the evaluator feeds the model
    before it writes ``<think>``.
    """
    pieces, cursor = [(strip_think_opener(generation_prompt)[0], False)], 0
    for start, end in history_spans(reply):
        pieces += [(reply[cursor:start], True), (reply[start:end], False)]
        cursor = end
    pieces.append((reply[cursor:], True))
    merged: list[list] = []
    for text, trained in pieces:
        if merged and merged[-1][1] == trained:
            merged[-1][0] += text
        elif text:
            merged.append([text, trained])
    return [(text, trained) for text, trained in merged]


def strip_think_opener(generation_prompt: str) -> tuple[str, bool]:
    """Remove a ``<think>`` (and its newlines) that a chat template's generation prompt already opens.

    Some R1-distill tokenizer revisions end the generation prompt with
    ``<｜Assistant｜><think>\\n``.  InftyThink+ rows put the history *before*
    ``<think>`` and the model writes ``<think>`` itself, so the opener is cut
    and the prefill follows the bare assistant header.  Returns (prompt, cut?).
    """
    body = generation_prompt.rstrip("\n")
    if body.endswith(THINK_OPEN):
        return body[: -len(THINK_OPEN)], True
    return generation_prompt, False


SUMMARY, CONCLUSION, FORMAT = "summary", "conclusion", "format"


@dataclass(frozen=True)
class PlusIteration:
    """One iteration's output, split by the format."""

    kind: str                  # SUMMARY (continue), CONCLUSION (final) or FORMAT (neither: invalid format)
    think: str = ""
    summary: Optional[str] = None
    conclusion: str = ""


def parse_iteration(output: str) -> PlusIteration:
    """Split one iteration's output (the text generated after the prefill).

    - ``<think>…</think><summary>…</summary>`` (whitespace between the blocks and
      after the end allowed, summary not blank) -> SUMMARY.
    - ``<think>…</think>`` then text without ``<summary>`` -> CONCLUSION (the text
      after the last ``</think>``, one edge newline of the format trimmed).
    - anything else (no ``</think>``, an unclosed or trailing ``<summary>``, a blank
      summary) -> FORMAT.
    The template's single newlines inside each block are trimmed, a span's own text is kept.
    """
    if SUMMARY_OPEN in output:
        groups = summary_round_groups(output)
        if groups is None or not _trim(groups[1]).strip():
            return PlusIteration(FORMAT)
        return PlusIteration(SUMMARY, think=_trim(groups[0]), summary=_trim(groups[1]))
    start, cut = output.find(THINK_OPEN), output.rfind(THINK_CLOSE)
    if start == -1 or cut == -1 or cut < start or output[:start].strip():
        return PlusIteration(FORMAT)
    return PlusIteration(CONCLUSION, think=_trim(output[start + len(THINK_OPEN):cut]),
                         conclusion=_trim(output[cut + len(THINK_CLOSE):]))


def _trim(text: str) -> str:
    """Drop exactly the format's edge newlines (``\\n{text}\\n``)."""
    text = text[1:] if text.startswith("\n") else text
    return text[:-1] if text.endswith("\n") else text
