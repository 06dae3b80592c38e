"""Task family ``choice``: four options shuffled per question, the answer is a letter.

Owns: the multiple-choice prompt, the row schema ``{id, question, choices: [4],
answer: letter, gold_text}`` and the conversion to it (GPQA's deterministic
per-question shuffle, ``gpqa_order``), the family's hooks (``choice_prompt``,
``judge_choice``, ``choice_results``; base YAML ``tasks/_base/choice_template``)
and its benchmark GPQA-diamond with its data entry (the password-protected
zip, read in memory).

Does not know: how a letter is found in a response (``scoring.choice``), file
formats (``scoring.datasets``), lm-eval's internals.
"""

from __future__ import annotations

import hashlib

from inftythink_eval.formats.inftythink import THINK_UNCLOSED, UNCLOSED_THINK_NOTE, scored_text
from inftythink_eval.scoring.choice import extract_choice
from inftythink_eval.scoring.families._base import Benchmark, register_family
from inftythink_eval.scoring.families._rows import field, field_or
from inftythink_eval.scoring.judging import Judged, judge_all, question_results

LETTERS = "ABCD"
GPQA_ZIP_PASSWORD = b"deserted-untie-orchid"  # published in the idavidrein/gpqa README
GPQA_SHUFFLE_SEED = "inftythink-gpqa-v1"       # changing it changes every GPQA prompt: bump the task version
PROMPT = ("Answer the following multiple-choice question. Think step by step, then give your final answer "
          "as the letter of the correct option in \\boxed{{}}, for example \\boxed{{A}}.\n\n{question}\n\n{options}")


def gpqa_order(record_id: str) -> list[int]:
    """Deterministic shuffle of [correct, wrong1, wrong2, wrong3] for one question (documented in docs/tasks.md).

    Positions are sorted by sha256("{GPQA_SHUFFLE_SEED}/{record_id}/{i}"), so the order depends only on
    the seed and the question's Record ID, never on Python's hash seed or row order.
    """
    digest = lambda i: hashlib.sha256(f"{GPQA_SHUFFLE_SEED}/{record_id}/{i}".encode()).hexdigest()  # noqa: E731
    return sorted(range(4), key=digest)


def to_row(row: dict, index: int) -> dict:
    options = [field(row, "Correct Answer")] + [field(row, f"Incorrect Answer {i}") for i in (1, 2, 3)]
    options = [str(o).strip() for o in options]
    record_id = str(field_or(row, ("Record ID",), index))
    order = gpqa_order(record_id)
    return {"id": record_id, "question": str(field(row, "Question")).strip(), "choices": [options[i] for i in order],
            "answer": LETTERS[order.index(0)], "gold_text": options[0]}


def choice_prompt(doc: dict) -> str:
    options = "\n".join(f"{letter}) {text}" for letter, text in zip(LETTERS, doc["choices"]))
    return PROMPT.format(question=doc["question"], options=options)


def _judge_pairs(pairs, rule: str):
    out = []
    for resp, doc in pairs:
        letter = extract_choice(resp, unclosed_think=rule)
        scored = scored_text(str(resp), rule)
        note = "letter" if letter else UNCLOSED_THINK_NOTE if scored.think == THINK_UNCLOSED and not scored.text \
            else "no answer"
        out.append(Judged(letter or "", resp, letter == doc["answer"], letter, note))
    return out


def judge_choice(resps, docs):
    """Filter: extract and check the letter of every repeat."""
    return judge_all(resps, docs, _judge_pairs)


def choice_results(doc, results):
    return question_results(doc, results, judge_choice, vote=True)


FAMILY = register_family(
    "choice", schema=("id", "question", "choices", "answer", "gold_text"), to_row=to_row, checker=extract_choice,
    hooks=(choice_prompt, judge_choice, choice_results), rank=1,
    benchmarks=[
        Benchmark("gpqa_diamond", "GPQA-diamond", "paper", "Idavidrein/gpqa", "gpqa_diamond", "train", "gpqa/dataset.zip",
                  198, gated=True, member="dataset/gpqa_diamond.csv", password=GPQA_ZIP_PASSWORD),
    ])
