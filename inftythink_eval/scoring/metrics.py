"""Per-question metrics over n scored samples: pass@k (unbiased), maj@k, acc, and engine stats.

Owns: the unbiased pass@k estimator (Chen et al. 2021: 1 - C(n-c, k) / C(n, k)),
majority voting over the first k samples, which k values are reported
(powers of two up to n), and the per-question metric dict a task's
``process_results`` returns (acc = mean pass@1 over all n samples, plus the
mean of each engine stat over the samples, NaN when absent).

Does not know: how a sample is judged (math/choice/code), lm-eval.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Optional, Sequence

from inftythink_eval.run.output import STAT_KEYS, stats_of

MAX_K = 64  # metric names pass@k / maj@k are declared in the task YAMLs up to this k


def report_ks(n: int) -> list[int]:
    """k values reported for n samples: 1, 2, 4, ... up to n (and at most ``MAX_K``)."""
    ks, k = [], 1
    while k <= min(n, MAX_K):
        ks.append(k)
        k *= 2
    return ks


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def maj_at_k(keys: Sequence[Optional[str]], correct: Sequence[bool], k: int) -> float:
    """1.0 when the most common answer among the first k samples is correct.

    Samples without an answer (key None) do not vote; ties go to the answer
    seen first; no answer at all scores 0.
    """
    votes = Counter(key for key in keys[:k] if key is not None)
    if not votes:
        return 0.0
    top = max(votes.values())
    winner = next(key for key in keys[:k] if key is not None and votes[key] == top)
    return float(next(ok for key, ok in zip(keys, correct) if key == winner))


def stat_means(samples: Sequence) -> dict[str, float]:
    """Mean of each engine stat over the samples (NaN when a stat is missing, e.g. ``--model hf``)."""
    out = {}
    for name in STAT_KEYS:
        values = [float(stats_of(s)[name]) for s in samples]
        out[name] = math.nan if any(math.isnan(v) for v in values) or not values else sum(values) / len(values)
    return out


def question_metrics(correct: Sequence[bool], samples: Sequence, keys: Optional[Sequence[Optional[str]]] = None,
                     timeouts: int = 0, unclosed: int = 0) -> dict[str, float]:
    """All metrics of one question: acc, pass@k, maj@k (when ``keys`` given), check_timeout, think_unclosed
    (``unclosed`` of the n samples opened a ``<think>`` and never closed it), engine stats."""
    if len(correct) == 0:
        raise ValueError("question_metrics needs at least one sample")
    failed = [stats_of(s).get("error") == 1 for s in samples]
    answered = [i for i, bad in enumerate(failed) if not bad] or list(range(len(correct)))
    all_failed = not any(not bad for bad in failed) and any(failed)
    # a sample whose request failed for good is left out of ACC, pass@k and maj@k; a question with no
    # answered sample counts as unsolved (lm-eval's mean cannot skip a question; docs/metrics.md)
    correct = [correct[i] and not all_failed for i in answered]
    keys = [keys[i] for i in answered] if keys is not None else None
    n, c = len(correct), sum(bool(x) for x in correct)
    out: dict[str, float] = {"acc": c / n}
    for k in report_ks(n):
        out[f"pass@{k}"] = pass_at_k(n, c, k)
        if keys is not None:
            out[f"maj@{k}"] = maj_at_k(keys, correct, k)
    out["check_timeout"] = timeouts / n
    out["think_unclosed"] = unclosed / n
    out.update(stat_means([samples[i] for i in answered]))
    out["error"] = sum(failed) / len(failed)
    return out
