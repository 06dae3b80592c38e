"""Math answer checking: the last ``\\boxed{}`` of the final answer, verified with math-verify.

Owns: finding the answer in a response (last ``\\boxed{}``/``\\fbox{}``, else
math-verify's own "final answer"/last-expression extraction), numeric and
light LaTeX normalisation ("025" = 25, "27.0" = 27, ``10\\%`` = 10, degrees,
``\\text{}``, ``\\dfrac``), the equivalence check, and the key used for
majority voting.  ``check_math`` is a pure function of strings meant to run
inside a ``timelimit`` worker; ``check_many`` runs many under a hard limit.

Does not know: lm-eval, tasks, engines, where answers come from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Sequence

from ..templates import final_answer_text
from .timelimit import TIMED_OUT, shared_pool

CHECK_SECONDS = 10.0      # hard limit per check (worker killed past it)
_INNER_SECONDS = 5        # math-verify's own (signal) limits inside the worker


@dataclass(frozen=True)
class MathVerdict:
    """One checked response: ``answer`` is what was extracted (None: nothing found)."""

    correct: bool
    answer: Optional[str]
    key: Optional[str]    # canonical form for majority voting (equal keys = same answer)
    note: str             # "boxed", "fallback", "no answer", "timeout", "error: ..."


_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
_NUMBER_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_THOUSANDS_RE = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")


def last_boxed(text: str) -> Optional[str]:
    """Content of the last ``\\boxed{...}`` (balanced braces); None when there is none.

    A last box that never closes (an answer cut at the end) yields the rest of
    the text, without trailing ``$``/``.``/spaces.
    """
    found = None
    for match in _BOX_RE.finditer(text):
        depth, start = 1, match.end()
        for i in range(start, len(text)):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                found = text[start:i]
                break
        else:
            found = text[start:].rstrip(" \n\t$.") or None
    return found


def normalize_number(text: str) -> Optional[str]:
    """Canonical decimal text of a plain number ("025" -> "25", "27.0" -> "27", "1,000" -> "1000"); else None."""
    s = text.strip().strip("$").strip()
    if _THOUSANDS_RE.match(s):
        s = s.replace(",", "")
    if not _NUMBER_RE.match(s):
        return None
    sign = "-" if s.startswith("-") else ""
    s = s.lstrip("+-")
    whole, _, frac = s.partition(".")
    whole, frac = whole.lstrip("0") or "0", frac.rstrip("0")
    out = whole + ("." + frac if frac else "")
    return "0" if out == "0" else sign + out


_STRIP_PATTERNS = [
    (re.compile(r"\\left|\\right"), ""),
    (re.compile(r"\\[,!;: ]"), ""),
    (re.compile(r"\^\s*\{?\\circ\}?|°"), ""),
    (re.compile(r"\\%|%"), ""),
    (re.compile(r"\\[dt]frac"), r"\\frac"),
    (re.compile(r"\\text\{\s*([^{}]*?)\s*\}"), r"\1"),
    (re.compile(r"\\(?:mathrm|textbf|mathbf)\{([^{}]*)\}"), r"\1"),
    (re.compile(r"\s+"), ""),
    (re.compile(r"\.$"), ""),
]
_UNIT_RE = re.compile(r"^(.*?\d)\s*\\(?:text|mbox|mathrm)\{\s*[a-zA-Z ]+\}\s*$")


def light_normalize(latex: str) -> str:
    """String form used for quick equality and voting: no spacing, \\left/\\right, degrees, percent, \\text."""
    s = latex.strip().strip("$")
    unit = _UNIT_RE.match(s)
    if unit:
        s = unit.group(1)
    for pattern, repl in _STRIP_PATTERNS:
        s = pattern.sub(repl, s)
    number = normalize_number(s)
    return number if number is not None else s


def _parse(latex: str):
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    configs = [LatexExtractionConfig(), ExprExtractionConfig()]
    return parse("\\boxed{" + latex + "}", extraction_config=configs, parsing_timeout=_INNER_SECONDS)


def _equivalent(gold: str, pred: str) -> bool:
    from math_verify import verify

    candidates = {(gold, pred), (light_normalize(gold), light_normalize(pred))}
    for g, p in candidates:
        if g and g == p:
            return True
        gp, pp = _parse(g), _parse(p)
        if gp and pp and verify(gp, pp, timeout_seconds=_INNER_SECONDS):
            return True
    return False


def _fallback_answer(text: str) -> Optional[str]:
    """No box: math-verify's extraction ("final answer is ...", last expression) on the final text."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    parsed = parse(text, extraction_config=[LatexExtractionConfig(), ExprExtractionConfig()],
                   parsing_timeout=_INNER_SECONDS)
    return parsed[1] if len(parsed) > 1 and isinstance(parsed[1], str) else None


def check_math(response: str, gold: str) -> MathVerdict:
    """Is the answer in ``response`` equivalent to ``gold``?  Pure; may be slow on hostile input."""
    text = final_answer_text(str(response))
    answer, note = last_boxed(text), "boxed"
    if answer is None:
        answer, note = _fallback_answer(text), "fallback"
    if answer is None or not answer.strip():
        return MathVerdict(False, None, None, "no answer")
    return MathVerdict(_equivalent(str(gold), answer), answer, light_normalize(answer), note)


def check_many(pairs: Sequence[tuple[str, str]], limit: float = CHECK_SECONDS,
               progress: bool = False) -> list[MathVerdict]:
    """``check_math`` over (response, gold) pairs in parallel worker processes, each under ``limit`` seconds.

    A check past the limit, or one that crashed, is incorrect and says so in ``note``.
    """
    def one(pair):
        try:
            result = shared_pool().call(check_math, pair, limit)
        except RuntimeError as exc:
            return MathVerdict(False, None, None, f"error: {exc}")
        return MathVerdict(False, None, None, "timeout") if result is TIMED_OUT else result

    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    with ThreadPoolExecutor(shared_pool().size) as threads:
        return list(tqdm(threads.map(one, pairs), total=len(pairs), desc="math checks", disable=not progress))
