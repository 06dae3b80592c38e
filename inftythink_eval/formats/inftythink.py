"""InftyThink protocol strings and the pure functions that build and parse them.

Owns: every byte of the native format (prompts, output tags, the summary
instruction), the official parse rule, the training instance of a round
(``training_pair``/``training_messages``, read from a released-schema row by
``row_fields``), the chat template that renders the native prompt, and the two
compositions every prompt shares: a system text before the question
(``with_system``) and a round's chat (``chat_messages``).  Imported by the
evaluator (``engine``/``modes``), the dataset builder and the SFT recipe, so
training and evaluation formats cannot drift.

Does not know: tokenizers, backends, lm-eval, files.

Source of every constant: ../shared/PROTOCOL.md, which cites the paper
(arXiv 2503.06692) and the public code ZJU-REAL/InftyThink
(``inference/infer_single.py``, ``data_preprocess/generate_data.py``).
Released checkpoints only work if these strings match to the byte.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Sequence

NAME = "inftythink"  # the format's name: the mode, ``inftythink data build --format`` and the training config's format

# --- protocol constants (PROTOCOL.md, "Native format") -----------------------
USER_ROLE = "User:"            # the paper writes <|U|>; the released code uses "User:"
ASSISTANT_ROLE = "Assistant:"  # the paper writes <|A|>; the released code uses "Assistant:"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
SUMMARY_OPEN, SUMMARY_CLOSE = "<summary>", "</summary>"
HISTORY_OPEN, HISTORY_CLOSE = "<history>", "</history>"

# PROTOCOL.md, "Data construction" step 3 (verbatim).
SUMMARY_INSTRUCTION = (
    "Please list what you have achieved in your last response. Note that you "
    "should only output the summarization. You should list all the key steps "
    "and important intermediate conclusion. Please list them with '*'."
)

# PROTOCOL.md, "Official parse of a finished round" (greedy, DOTALL).
OFFICIAL_ROUND_RE = re.compile(
    r"(.+)<think>\n(.+)\n</think>\n<summary>\n(.+)\n</summary>", re.DOTALL
)
# PROTOCOL.md, "Data construction" step 1.
OFFICIAL_SOLUTION_RE = re.compile(r"^<think>\n(.+)\n</think>(.+)$", re.DOTALL)

DEFAULT_MAX_ROUNDS = 10        # the paper evaluates with at most 10 (code caps at 50)
DEFAULT_ROUND_TOKENS = 8192    # max tokens per round in the released code
DEFAULT_ETA = 4096             # segment budget of the paper's main runs


@dataclass(frozen=True)
class Roles:
    """Role strings of the native prompt; configurable, defaults are the code's."""

    user: str = USER_ROLE
    assistant: str = ASSISTANT_ROLE


def native_prompt(question: str, summary: Optional[str] = None, roles: Roles = Roles()) -> str:
    """Prompt of a native round: round 1 without history, round i>1 with S_(i-1).

    The history is replaced each round, never accumulated.
    """
    prompt = f"{roles.user}{question}{roles.assistant}"
    if summary is not None:
        prompt += f"{HISTORY_OPEN}{summary}{HISTORY_CLOSE}"
    return prompt


def native_target(span: str, summary: Optional[str] = None, conclusion: Optional[str] = None) -> str:
    """Model output of a round: a non-final round carries a summary, the final a conclusion."""
    if (summary is None) == (conclusion is None):
        raise ValueError("native_target needs exactly one of summary= (non-final) or conclusion= (final)")
    head = f"{THINK_OPEN}\n{span}\n{THINK_CLOSE}"
    if summary is not None:
        return f"{head}\n{SUMMARY_OPEN}\n{summary}\n{SUMMARY_CLOSE}"
    return f"{head}{conclusion}"


# --- our own composition (not protocol): where a system text goes ------------
SYSTEM_SEPARATOR = "\n\n"  # between a system text and the question when there is no system slot


def with_system(system: Optional[str], text: str) -> str:
    """``{system}\\n\\n{text}``, or ``text`` when there is no system text.

    The one place a system text meets the question where no system slot exists: the native
    prompt (``User:{system}\\n\\n{question}Assistant:``), a plain-text prompt, and a chat template
    that rejects or drops the system role (the text then goes into the user turn).
    """
    return f"{system}{SYSTEM_SEPARATOR}{text}" if system else text


def chat_messages(text: str, system: Optional[str] = None, history: Sequence[dict] = ()) -> list[dict]:
    """The chat of one round for a chat template: [system?] + earlier turns + [user ``text``]."""
    return (([{"role": "system", "content": system}] if system else []) + list(history)
            + [{"role": "user", "content": text}])


def native_chat_template(roles: Roles = Roles()) -> str:
    """A Jinja chat template that renders the round-1 native prompt ``User:{question}Assistant:``.

    So a model trained on native rows gets its exact prompt from any chat-template consumer
    (lm-eval's ``--apply_chat_template``, a chat-rendered vanilla run); a system message goes
    before the question as ``with_system`` puts it.
    """
    return ("{% for m in messages %}{% if m['role'] == 'system' %}{{ m['content'] }}"
            + SYSTEM_SEPARATOR + "{% endif %}{% endfor %}"
            f"{roles.user}"
            "{% for m in messages %}{% if m['role'] == 'user' %}{{ m['content'] }}{% endif %}{% endfor %}"
            f"{{% if add_generation_prompt %}}{roles.assistant}{{% endif %}}")


@dataclass(frozen=True)
class ParsedRound:
    """A round output split by the official rule."""

    think: str
    summary: Optional[str]  # None: the round is final (no <summary>)
    conclusion: str         # text after the last </think> ("" when none)
    ok: bool                # False: the output has <summary> but fails the official parse
    instruction: str = ""   # the official regex's first group: prompt + whatever the model wrote before <think>


def parse_round(output: str, prompt: str = "") -> ParsedRound:
    """Split one round's output.

    A round whose output has no ``<summary>`` is final (truncation included).
    One that has it but does not match the official regex (applied, as the
    released code does, to prompt + output) is a parse failure (``ok=False``).
    """
    if SUMMARY_OPEN not in output:
        return ParsedRound(think=_think_of(output), summary=None,
                           conclusion=final_answer_text(output), ok=True)
    groups = official_round_groups((prompt or " ") + output)  # the (.+) instruction group needs a char
    if groups is None:
        return ParsedRound(think=_think_of(output), summary=None, conclusion="", ok=False)
    return ParsedRound(think=groups[1], summary=groups[2], conclusion="", ok=True,
                       instruction=groups[0][1:] if not prompt else groups[0])


# The official loop's removal of the old history (ZJU-REAL/InftyThink, inference/infer_single.py; PROTOCOL.md):
# greedy `.+` with DOTALL, applied only when the instruction holds `<history>`.  Greedy matters: a summary that
# itself holds `</history>` is removed whole, from the first `<history>` to the last `</history>`.
_HISTORY_RE = re.compile(r"<history>.+</history>", re.DOTALL)


def next_native_prompt(instruction: str, summary: str) -> str:
    """The next round's prompt as the official loop builds it: the instruction group of the last round
    (its prompt plus any text the model wrote before ``<think>``) with the old history removed, then
    ``<history>{summary}</history>``.  For a model that opens ``<think>`` at once this equals
    ``native_prompt(question, summary)``."""
    if HISTORY_OPEN in instruction:
        instruction = _HISTORY_RE.sub("", instruction)
    return instruction + f"{HISTORY_OPEN}{summary}{HISTORY_CLOSE}"


_ROUND_MARK = "\n" + THINK_CLOSE + "\n" + SUMMARY_OPEN + "\n"


def official_round_groups(text: str) -> Optional[tuple[str, str, str]]:
    """``OFFICIAL_ROUND_RE.match(text).groups()`` (or None), found in linear time.

    The greedy regex backtracks over every ``<think>`` and every ``</think>\n<summary>``
    pair: cubic time on an output that repeats the tags (minutes for 50 kB).  Greedy
    groups take the last of each marker that still leaves the rest a match, so:
    the last ``\n</summary>``, the last ``\n</think>\n<summary>\n`` ending at least one
    character before it, the last ``<think>\n`` (not at 0) ending at least one before that.
    """
    end = text.rfind("\n" + SUMMARY_CLOSE)
    mark = text.rfind(_ROUND_MARK, 0, end - 1) if end > 0 else -1
    start = text.rfind(THINK_OPEN + "\n", 1, mark - 1) if mark > 0 else -1
    if start == -1:
        return None
    return text[:start], text[start + len(THINK_OPEN) + 1:mark], text[mark + len(_ROUND_MARK):end]


def _think_of(output: str) -> str:
    start = output.find(THINK_OPEN)
    end = output.rfind(THINK_CLOSE)
    if start == -1 or end == -1 or end < start:
        return output
    inner = output[start + len(THINK_OPEN):end]
    # exactly the template's newlines (``<think>\n{span}\n</think>``): a span's own edge newlines survive
    inner = inner[1:] if inner.startswith("\n") else inner
    return inner[:-1] if inner.endswith("\n") else inner


def final_answer_text(output: str) -> str:
    """The conclusion a mode hands to the task: the text after the last ``</think>``, else all of it.

    Not the scoring rule: an output whose ``<think>`` never closed is handed on
    whole, so that ``scored_text`` (the one truncation rule) can decide and say why.
    """
    cut = output.rfind(THINK_CLOSE)
    return output if cut == -1 else output[cut + len(THINK_CLOSE):]


# --- the one truncation rule (docs/metrics.md, "What is scored") -------------
UNCLOSED_THINK_RULES = ("no_answer", "whole")
DEFAULT_UNCLOSED_THINK = "no_answer"  # as lighteval: a missing </think> scores as an empty answer
THINK_CLOSED, THINK_UNCLOSED, THINK_NONE = "closed", "unclosed", "none"
UNCLOSED_THINK_NOTE = "no answer: <think> never closed"  # a scored sample's note under "no_answer"


def check_unclosed_think(rule: str) -> str:
    """``rule`` when it is a known ``unclosed_think`` value; else a ValueError that says how to set it."""
    if rule not in UNCLOSED_THINK_RULES:
        raise ValueError(f"unclosed_think must be one of {', '.join(UNCLOSED_THINK_RULES)}, got {rule!r}; "
                         "set it in the task's metadata or with lm_eval --metadata '{\"unclosed_think\": \"whole\"}'")
    return rule


@dataclass(frozen=True)
class ScoredText:
    """What of a response a checker sees (``text``), and the response's thinking state (``think``)."""

    text: str
    think: str  # THINK_CLOSED, THINK_UNCLOSED (a <think> opened and never closed) or THINK_NONE (no tags)


def summary_text(output: str) -> str:
    """The summary a summariser wrote, without its thinking: the text after the last ``</think>``; ``""``
    when its ``<think>`` never closed (the same rule as scoring: thinking is never carried on)."""
    return scored_text(output).text.strip()


def summary_cut(output: str, finish_reason: str) -> bool:
    """A summary that is not whole: cut at its token limit, or thinking that never closed."""
    return finish_reason == "length" or scored_text(output).think == THINK_UNCLOSED


def scored_text(output: str, unclosed_think: str = DEFAULT_UNCLOSED_THINK) -> ScoredText:
    """The one truncation rule: the part of a response that a task scores.

    - with a ``</think>``: the text after the last one (thinking is never scored);
    - a ``<think>`` opened and never closed (a trace cut off mid-thought, or one
      reopened after the last ``</think>``): ``""`` (no answer) under
      ``unclosed_think="no_answer"``, the default; under ``"whole"`` the text after
      the last ``</think>``, else all of it (lm-eval's ``think_end_token`` rule);
    - no think tags at all (instruct models): the whole text.
    """
    check_unclosed_think(unclosed_think)
    after = final_answer_text(output)
    if THINK_OPEN in after:
        return ScoredText(after if unclosed_think == "whole" else "", THINK_UNCLOSED)
    return ScoredText(after, THINK_CLOSED if len(after) != len(output) else THINK_NONE)


def split_solution(solution: str) -> Optional[tuple[str, str]]:
    """(trace, conclusion) of an OpenR1-style ``<think>`` solution, or None when it does not match."""
    match = OFFICIAL_SOLUTION_RE.match(solution)
    return None if match is None else (match.group(1), match.group(2))


def summary_chat(question: str, spans_so_far: list[str], instruction: str = SUMMARY_INSTRUCTION) -> list[dict]:
    """Chat that asks a summariser for the cumulative summary of spans 0..i (PROTOCOL.md step 3)."""
    return [
        {"role": "user", "content": question},
        {"role": "assistant", "content": "\n\n".join(spans_so_far)},
        {"role": "user", "content": instruction},
    ]


# --- training instances (PROTOCOL.md, "Data construction" step 4) -----------
# Released schema (hub dataset ZJU-REAL/InftyThink): the text columns a row needs to be trained.
ROW_KEYS = ("question", "reasoning_process", "conclusion")


def training_pair(question: str, reasoning: str, history: Optional[str] = None, summary: Optional[str] = None,
                  conclusion: Optional[str] = None) -> tuple[str, str]:
    """(input, target) of one instance: ``native_prompt(question, history)`` and ``native_target``;
    ``input + target`` is the exact training text (single, first, middle or last round)."""
    return native_prompt(question, history), native_target(reasoning, summary=summary, conclusion=conclusion)


def training_messages(question: str, reasoning: str, history: Optional[str] = None, summary: Optional[str] = None,
                      conclusion: Optional[str] = None) -> list[dict]:
    """The ``messages`` column of an instance: [user input, assistant target] of ``training_pair``."""
    prompt, target = training_pair(question, reasoning, history, summary, conclusion)
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": target}]


def row_fields(row: dict) -> dict:
    """The keyword arguments of ``training_pair``/``training_messages`` from a released-schema row.

    A row whose ``conclusion`` is not null is a final round (its ``summary``, if any, is not part
    of the target); an empty ``history`` is none (round 1).
    """
    final = row.get("conclusion") is not None
    return {"question": row["question"], "reasoning": row["reasoning_process"], "history": row.get("history") or None,
            "summary": None if final else row.get("summary"), "conclusion": row["conclusion"] if final else None}


def is_native_prompt(text: str, roles: Roles = Roles()) -> bool:
    """Whether ``text`` looks like a native prompt (``User:…Assistant:``), e.g. a v1 row's user turn."""
    return text.startswith(roles.user) and roles.assistant in text


# --- our own strings (not protocol): training-free summarisation mode --------
CONTINUE_TEMPLATE = (
    "{question}\n\n"
    "You have already worked on this problem. A summary of your progress so far:\n"
    "{summary}\n\n"
    "Continue from where this summary leaves off; do not start over. "
    "End with the final answer."
)


def continuation_question(question: str, summary: str) -> str:
    """The user turn of a summarize-mode round i>1: the question plus the progress summary."""
    return CONTINUE_TEMPLATE.format(question=question, summary=summary)
