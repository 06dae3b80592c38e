"""Sampling-noise statistics the leaderboard, compare and regress share.

Owns: the Wilson interval for a proportion, a normal interval for a mean
of per-question scores, the paired bootstrap for a difference of means
over the same questions, and the Agresti-Caffo tolerance for a drop in a
proportion between two runs.  Pure functions of lists of numbers.

Does not know: records, files, lm-eval.
"""

from __future__ import annotations

import math
import random
from typing import Optional, Sequence

Z95 = 1.959963984540054


def _clean(values: Sequence[Optional[float]]) -> list[float]:
    return [float(v) for v in values if v is not None and not math.isnan(float(v))]


def mean(values: Sequence[Optional[float]]) -> Optional[float]:
    vals = _clean(values)
    return sum(vals) / len(vals) if vals else None


def stderr(values: Sequence[Optional[float]]) -> Optional[float]:
    """Standard error of the mean (sample standard deviation / sqrt(n)); 0 for one value."""
    vals = _clean(values)
    if not vals:
        return None
    if len(vals) == 1:
        return 0.0
    m = sum(vals) / len(vals)
    var = sum((v - m) ** 2 for v in vals) / (len(vals) - 1)
    return math.sqrt(var / len(vals))


def wilson(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (sensible at 0/n and n/n)."""
    if n <= 0:
        raise ValueError("wilson() needs n >= 1 trials")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def accuracy_interval(per_question: Sequence[float], z: float = Z95) -> tuple[float, float]:
    """95% interval of ACC from per-question scores.

    All scores 0 or 1 (one sample per question): the Wilson interval.  Scores
    that are means over several samples: mean +- z * standard error over
    questions (questions are the independent unit), clipped to [0, 1].
    """
    vals = _clean(per_question)
    if not vals:
        raise ValueError("accuracy_interval() needs at least one per-question score")
    if all(v in (0.0, 1.0) for v in vals):
        return wilson(sum(vals), len(vals), z)
    m, se = sum(vals) / len(vals), stderr(vals) or 0.0
    return max(0.0, m - z * se), min(1.0, m + z * se)


def paired_bootstrap(a: Sequence[float], b: Sequence[float], iters: int = 2000,
                     seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """Mean of (b - a) over paired questions and its percentile bootstrap interval.

    ``a`` and ``b`` are per-question scores of the same questions, in the same
    order.  Returns (delta, low, high).
    """
    if len(a) != len(b) or not a:
        raise ValueError(f"paired_bootstrap() needs two equally long, non-empty lists (got {len(a)} and {len(b)})")
    diffs = [float(y) - float(x) for x, y in zip(a, b)]
    rng = random.Random(seed)
    n = len(diffs)
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(iters))
    lo_i = int((1 - level) / 2 * iters)
    hi_i = min(iters - 1, int((1 + level) / 2 * iters))
    return sum(diffs) / n, means[lo_i], means[hi_i]


def proportion_drop_tolerance(p0: float, n0: int, p1: float, n1: int, z: float) -> float:
    """Largest drop p0 - p1 that sampling noise explains (Agresti-Caffo, one-sided at ``z``).

    Adds one success and one failure to each run, so the tolerance stays
    positive at 0% and 100%.
    """
    if n0 <= 0 or n1 <= 0:
        raise ValueError("proportion_drop_tolerance() needs n0, n1 >= 1")
    q0 = (p0 * n0 + 1) / (n0 + 2)
    q1 = (p1 * n1 + 1) / (n1 + 2)
    return z * math.sqrt(q0 * (1 - q0) / (n0 + 2) + q1 * (1 - q1) / (n1 + 2))
