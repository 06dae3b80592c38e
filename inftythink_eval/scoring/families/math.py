"""Task family ``math``: a LaTeX answer in ``\\boxed{}``, checked with math-verify under a hard time limit.

Owns: the math prompt, the row schema ``{id, problem, answer}`` and the
conversion to it, the family's hooks (``math_prompt``, ``judge_math``,
``math_results``; base YAML ``tasks/_base/math_template``) and its four
benchmarks with their data entries (MATH500, AIME24, AIME25, AMC23).

Does not know: how equivalence is decided (``scoring.mathcheck``), file
formats (``scoring.datasets``), lm-eval's internals.
"""

from __future__ import annotations

import logging

from inftythink_eval.scoring.families._base import Benchmark, register_family
from inftythink_eval.scoring.families._rows import field, field_or
from inftythink_eval.scoring.judging import Judged, judge_all, question_results
from inftythink_eval.scoring.mathcheck import check_many

log = logging.getLogger(__name__)
PROMPT = "{problem}\n\nPlease reason step by step, and put your final answer within \\boxed{{}}."


def to_row(row: dict, index: int) -> dict:
    problem = field(row, "problem", "question")
    ident = row.get("unique_id") or field_or(row, ("id",), index)
    return {"id": str(ident), "problem": str(problem), "answer": str(field(row, "answer"))}


def math_prompt(doc: dict) -> str:
    return PROMPT.format(problem=doc["problem"])


def _judge_pairs(pairs, rule: str):
    verdicts = check_many([(str(resp), str(doc["answer"]), rule) for resp, doc in pairs], progress=len(pairs) > 100)
    timeouts = sum(v.note == "timeout" for v in verdicts)
    if timeouts:
        log.warning("%d of %d math checks hit the time limit and were scored incorrect (metric check_timeout)",
                    timeouts, len(verdicts))
    return [Judged(v.answer or "", resp, v.correct, v.key, v.note) for (resp, _), v in zip(pairs, verdicts)]


def judge_math(resps, docs):
    """Filter (``function: custom``): judge every repeat of every question with math-verify."""
    return judge_all(resps, docs, _judge_pairs)


def math_results(doc, results):
    return question_results(doc, results, judge_math, vote=True)


FAMILY = register_family(
    "math", schema=("id", "problem", "answer"), to_row=to_row, checker=check_many,
    hooks=(math_prompt, judge_math, math_results), rank=0,
    benchmarks=[
        # name, title, leaderboard group, hub id, hub config, hub split, offline file, rows
        Benchmark("math500", "MATH500", "paper", "HuggingFaceH4/MATH-500", None, "test", "math500/test.jsonl", 500),
        Benchmark("aime24", "AIME24", "paper", "Maxwell-Jia/AIME_2024", None, "train", "aime24/test.jsonl", 30),
        Benchmark("aime25", "AIME25", "appendix", "math-ai/aime25", None, "test", "aime25/test.jsonl", 30),
        Benchmark("amc23", "AMC23", "appendix", "math-ai/amc23", None, "test", "amc23/test.jsonl", 40),
    ])
