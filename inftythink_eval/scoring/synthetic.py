"""The synthetic digit-sum benchmark: long step-by-step traces whose state fits a short summary.

Owns: the task itself.  A question names a start value ``x0`` (10..99)
and a depth ``n`` (``x0=45 n=012``); the solution applies
``x -> (x + digitsum(x)) mod 100`` ``n`` times, one fixed-width line per
step that starts with the steps left after it (``R005 45+09=54``), and
the answer is the final ``x``.  Every step needs the previous one, and the
whole state is (steps left, x), so the summary is one short line
(``R005 x=54``).  Counting down makes "stop" a local decision (after
``R000``) for both formats.  The state space is small on purpose: a model of a
million parameters learns the step on two CPU cores in minutes, so what
the benchmark measures is how reasoning survives depth, not arithmetic.  Also here: the task-function
summariser the dataset builder calls, traces in the OpenR1 ``<think>`` form,
lm-eval documents for a depth, and the strict answer check.

Does not know: tokenizers, models, training, lm-eval internals.  Prompt and
target strings come from ``inftythink_eval.formats.inftythink`` only.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from inftythink_eval.formats.inftythink import THINK_CLOSE, THINK_OPEN

MODULUS = 100
STEP_SEP = "\n\n"  # steps are paragraphs, so the protocol's blank-line segmentation cuts between steps
_STEP_RE = re.compile(r"R(\d{3}) (\d{2})\+(\d{2})=(\d{2})")
_QUESTION_RE = re.compile(r"x0=(\d{2}) n=(\d{3})")
_ANSWER_RE = re.compile(r"\s*(\d{1,3})\s*")


def digitsum(x: int) -> int:
    return sum(int(c) for c in str(x))


def step(x: int) -> int:
    """One step of the recurrence."""
    return (x + digitsum(x)) % MODULUS


@dataclass(frozen=True)
class Problem:
    """One question: start value and number of steps."""

    x0: int
    n: int

    def __post_init__(self) -> None:
        if not 10 <= self.x0 <= 99:
            raise ValueError(f"x0 must be a 2-digit start value 10..99, got {self.x0}")
        if not 1 <= self.n <= 999:
            raise ValueError(f"n (the depth) must be 1..999 steps, got {self.n}")

    @property
    def question(self) -> str:
        return f"x0={self.x0} n={self.n:03d}"

    def states(self) -> list[int]:
        """x after steps 0..n."""
        xs = [self.x0]
        for _ in range(self.n):
            xs.append(step(xs[-1]))
        return xs

    @property
    def answer(self) -> str:
        return f"{self.states()[-1]:02d}"

    def lines(self) -> list[str]:
        """One fixed-width line per step: steps left after it, x, digitsum(x), next x."""
        xs = self.states()
        return [f"R{self.n - k:03d} {xs[k - 1]:02d}+{digitsum(xs[k - 1]):02d}={xs[k]:02d}" for k in range(1, self.n + 1)]

    def trace(self) -> str:
        return STEP_SEP.join(self.lines())

    def solution(self) -> str:
        """The OpenR1-style solution ``<think>\\n{trace}\\n</think>{answer}`` (the builder's input)."""
        return f"{THINK_OPEN}\n{self.trace()}\n{THINK_CLOSE}{self.answer}"


def summary_line(left: int, x: int) -> str:
    """The whole state: steps left and the current x."""
    return f"R{left:03d} x={x:02d}"


def parse_question(question: str) -> Problem:
    match = _QUESTION_RE.fullmatch(question.strip())
    if match is None:
        raise ValueError(f"not a synthetic question: {question!r}; expected 'x0=<2 digits> n=<3 digits>'")
    return Problem(int(match.group(1)), int(match.group(2)))


def summarise(question: str, spans_so_far: list[str]) -> str:
    """Task-function summariser: the cumulative summary after the last span is its last line's (steps left, x).

    Same call shape as the protocol's summary chat (question, spans 0..i), so the
    dataset builder can use it in place of a summariser model.
    """
    last = _STEP_RE.findall(spans_so_far[-1]) if spans_so_far else []
    if not last:
        raise ValueError(f"span has no step line like 'R011 45+09=54': {spans_so_far[-1:]!r}")
    left, _, _, x = last[-1]
    return summary_line(int(left), int(x))


def problems(depths: list[int] | range, count: int, seed: int) -> list[Problem]:
    """``count`` problems with depths drawn uniformly from ``depths``, start values from 10..99."""
    rng = random.Random(seed)
    depths = list(depths)
    return [Problem(rng.randint(10, 99), rng.choice(depths)) for _ in range(count)]


def documents(depth: int, num_samples: int, seed: int) -> list[dict]:
    """Evaluation rows at one depth: question, answer, depth (what the lm-eval task reads)."""
    return [{"question": p.question, "answer": p.answer, "depth": p.n, "x0": p.x0}
            for p in problems([int(depth)], int(num_samples), seed)]


def extract_answer(conclusion: str) -> str | None:
    """The answer as a 2-digit string when the conclusion is exactly a number, else None (strict)."""
    match = _ANSWER_RE.fullmatch(conclusion)
    return None if match is None else f"{int(match.group(1)):02d}"


def is_correct(conclusion: str, gold: str) -> bool:
    return extract_answer(conclusion) == f"{int(gold):02d}"


def step_accuracy(trace: str, problem: Problem) -> float:
    """Fraction of the problem's step lines that appear, correct, in a generated trace (a diagnostic)."""
    wanted = set(problem.lines())
    return len(wanted.intersection(m.group(0) for m in _STEP_RE.finditer(trace))) / max(1, len(wanted))


# --- lm-eval task hooks (tasks/inftythink_synthetic/utils.py re-exports these) -------------------
def lm_eval_dataset(depth: int = 16, num_samples: int = 32, seed: int = 1234, **_: object):
    """``custom_dataset`` hook: a test split of ``num_samples`` problems at ``depth`` (from task metadata)."""
    import datasets

    if int(depth) < 1 or int(num_samples) < 1:
        raise ValueError(f"inftythink_synthetic: depth and num_samples must be >= 1, got depth={depth}, "
                         f"num_samples={num_samples}; set them with --metadata '{{\"depth\": 64}}'")
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(documents(int(depth), int(num_samples), int(seed)))})


def lm_eval_results(doc: dict, results: list) -> dict:
    """``process_results`` hook: strict accuracy plus the engine's per-sample stats (NaN for other models)."""
    from inftythink_eval.run.output import PARTIAL_KEYS, stats_of
    from inftythink_eval.formats.inftythink import final_answer_text

    response = results[0]
    stats = {k: v for k, v in stats_of(response).items() if k not in PARTIAL_KEYS}  # summary-only keys: not declared
    return {"acc": float(is_correct(final_answer_text(str(response)), doc["answer"])), **stats}
