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
import time
from dataclasses import dataclass
from itertools import product
from typing import Optional, Sequence

from inftythink_eval.formats.inftythink import DEFAULT_UNCLOSED_THINK, THINK_UNCLOSED, UNCLOSED_THINK_NOTE, scored_text
from inftythink_eval.scoring.timelimit import TIMED_OUT, shared_pool

CHECK_SECONDS = 10.0      # hard limit per check (worker killed past it)
_INNER_SECONDS = 5        # math-verify's own (signal) limits inside the worker


@dataclass(frozen=True)
class MathVerdict:
    """One checked response: ``answer`` is what was extracted (None: nothing found)."""

    correct: bool
    answer: Optional[str]
    key: Optional[str]    # canonical form for majority voting (equal keys = same answer)
    note: str             # "boxed", "fallback", "no answer", UNCLOSED_THINK_NOTE, "timeout", "error: ..."


class _InnerTimeout(Exception):
    """math-verify's own (signal) time limit fired inside a parse or a comparison."""


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


def _raise_if_threaded(exc: Exception) -> None:
    """math-verify's signal limit refuses to run outside a main thread: a setup error, never "not equal"."""
    if isinstance(exc, ValueError) and "threaded environment" in str(exc):
        raise exc


def _mv_parse(text: str) -> list:
    """math-verify's ``parse`` with its errors read as "nothing parsed", as its own default does,
    except its time limit, which raises ``_InnerTimeout`` (counted in check_timeout, not scored silently)."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse
    from math_verify.errors import TimeoutException

    try:
        return parse(text, extraction_config=[LatexExtractionConfig(), ExprExtractionConfig()],
                     parsing_timeout=_INNER_SECONDS, raise_on_error=True)
    except TimeoutException as exc:
        raise _InnerTimeout("math-verify parse") from exc
    except Exception as exc:  # noqa: BLE001 - unparseable input is "nothing parsed", as in math-verify's default
        _raise_if_threaded(exc)
        return []


def _mv_equal(gold: list, pred: list) -> tuple[bool, bool]:
    """(equal, timed out): math-verify's ``verify`` over every (gold, pred) pair, as ``verify`` itself does,
    a pair that errs counting as unequal and a pair that hits math-verify's time limit reported."""
    from math_verify import verify
    from math_verify.errors import TimeoutException

    timed_out = False
    for g, p in product(gold, pred):
        start = time.monotonic()
        try:
            if verify(g, p, timeout_seconds=_INNER_SECONDS, raise_on_error=True):
                return True, timed_out
            # math-verify's limit is a SIGALRM that raises in whatever Python code runs when it fires; inside a
            # finalizer (a weakref callback during garbage collection) Python prints and drops it, and verify
            # runs on.  An unequal verdict past the limit is read as the timeout it should have been, so the
            # score does not depend on when the collector ran.
            timed_out |= time.monotonic() - start >= _INNER_SECONDS
        except TimeoutException:
            timed_out = True
        except Exception as exc:  # noqa: BLE001 - an error in one comparison is "not equal", as in math-verify's
            _raise_if_threaded(exc)
    return False, timed_out


def _equivalent(gold: str, pred: str) -> bool:
    """Equal under math-verify; raises ``_InnerTimeout`` when unequal but some step hit its time limit."""
    candidates = {(gold, pred), (light_normalize(gold), light_normalize(pred))}
    timed_out = False
    for g, p in candidates:
        if g and g == p:
            return True
        try:
            gp, pp = _mv_parse("\\boxed{" + g + "}"), _mv_parse("\\boxed{" + p + "}")
        except _InnerTimeout:
            timed_out = True
            continue
        equal, late = _mv_equal(gp, pp) if gp and pp else (False, False)
        if equal:
            return True
        timed_out = timed_out or late
    if timed_out:
        raise _InnerTimeout("math-verify comparison")
    return False


def _fallback_answer(text: str) -> Optional[str]:
    """No box: math-verify's extraction ("final answer is ...", last expression) on the final text."""
    parsed = _mv_parse(text)
    return parsed[1] if len(parsed) > 1 and isinstance(parsed[1], str) else None


def check_math(response: str, gold: str, unclosed_think: str = DEFAULT_UNCLOSED_THINK) -> MathVerdict:
    """Is the answer in ``response`` equivalent to ``gold``?  Pure; may be slow on hostile input.

    What is read is ``formats.inftythink.scored_text`` (the truncation rule, ``unclosed_think``).  A check
    that math-verify's own time limit cut short is incorrect with note "timeout", like a hard timeout.
    """
    scored = scored_text(str(response), unclosed_think)
    if scored.think == THINK_UNCLOSED and not scored.text:
        return MathVerdict(False, None, None, UNCLOSED_THINK_NOTE)
    answer, note = last_boxed(scored.text), "boxed"
    try:
        if answer is None:
            answer, note = _fallback_answer(scored.text), "fallback"
        if answer is None or not answer.strip():
            return MathVerdict(False, None, None, "no answer")
        return MathVerdict(_equivalent(str(gold), answer), answer, light_normalize(answer), note)
    except _InnerTimeout:
        return MathVerdict(False, answer, light_normalize(answer) if answer else None, "timeout")


# Imported by each checking worker before its first call, outside the time limit: math-verify (and sympy under
# it) take seconds to import on a loaded machine, which must not turn a cold worker's first check into a timeout.
_WORKER_PRELOAD = ("math_verify", "inftythink_eval.scoring.mathcheck")


def check_many(pairs: Sequence[tuple[str, str]], limit: float = CHECK_SECONDS,
               progress: bool = False) -> list[MathVerdict]:
    """``check_math`` over (response, gold[, unclosed_think]) tuples in parallel worker processes,
    each under ``limit`` seconds.

    A check past the limit, or one that crashed, is incorrect and says so in ``note``.
    """
    def one(pair):
        try:
            result = shared_pool(preload=_WORKER_PRELOAD).call(check_math, pair, limit)
        except RuntimeError as exc:
            return MathVerdict(False, None, None, f"error: {exc}")
        return MathVerdict(False, None, None, "timeout") if result is TIMED_OUT else result

    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    with ThreadPoolExecutor(shared_pool(preload=_WORKER_PRELOAD).size) as threads:
        return list(tqdm(threads.map(one, pairs), total=len(pairs), desc="math checks", disable=not progress))
