"""Per-question metrics over n scored samples: pass@k (unbiased), G-Pass@k, maj@k, acc, and engine stats.

Owns: the unbiased pass@k estimator (Chen et al. 2021: 1 - C(n-c, k) / C(n, k)),
G-Pass@k_tau and mG-Pass@k (arXiv 2412.13147, named and thresholded as
lighteval's ``GPassAtK``: ``g-pass@{k}_{tau}``, ``mg-pass@{k}``), majority
voting over the first k samples, which k values are reported (powers of two
up to n), the per-question metric dict a task's ``process_results`` returns
(acc = mean pass@1 over all n samples, plus the mean of each engine stat over
the samples, NaN when absent; a stat only some samples have, ``PARTIAL_KEYS``,
is averaged over those and left out of the dict of a question where none has
it, so that lm-eval's mean runs over the questions that have it).

Does not know: how a sample is judged (math/choice/code), lm-eval.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Optional, Sequence

from inftythink_eval.run.output import PARTIAL_KEYS, STAT_KEYS, stats_of

MAX_K = 64  # metric names pass@k / maj@k / g-pass@k are declared in the task YAMLs up to this k
G_PASS_THRESHOLDS = (0.0, 0.25, 0.5, 0.75, 1.0)  # lighteval's GPassAtK default; tau = 0 is pass@k


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


def _at_least(n: int, c: int, k: int, m: int) -> float:
    """P(X >= m) for X ~ Hypergeometric(n, c, k): at least m correct among k of the n samples drawn at random."""
    top = min(c, k)
    if m > top:
        return 0.0
    hits = sum(math.comb(c, j) * math.comb(n - c, k - j) for j in range(m, top + 1))
    return hits / math.comb(n, k)  # exact integers, one rounding


def g_pass_at_k(n: int, c: int, k: int, tau: float) -> float:
    """G-Pass@k_tau: the chance that at least max(ceil(tau * k), 1) of k samples drawn without replacement
    from the n (c of them correct) are correct.  tau = 0 is pass@k; tau = 1 is C(c, k) / C(n, k)."""
    if not 0 <= c <= n or not 1 <= k <= n or not 0.0 <= tau <= 1.0:
        raise ValueError(f"g_pass_at_k needs 0 <= c <= n, 1 <= k <= n and 0 <= tau <= 1, got n={n}, c={c}, k={k}, "
                         f"tau={tau}")
    return _at_least(n, c, k, max(math.ceil(tau * k), 1))


def mg_pass_at_k(n: int, c: int, k: int) -> float:
    """mG-Pass@k = 2 * integral of G-Pass@k_tau over tau in (0.5, 1] = (2/k) * sum over m = ceil(k/2)+1 .. k of
    P(at least m of k correct), as lighteval sums it.  The sum equals the integral for even k only (for k = 1
    it is empty), so it is reported for k >= 2, which with ``report_ks`` means even k."""
    if not 0 <= c <= n or not 2 <= k <= n:
        raise ValueError(f"mg_pass_at_k needs 0 <= c <= n and 2 <= k <= n, got n={n}, c={c}, k={k}")
    return 2.0 * sum(_at_least(n, c, k, m) for m in range(math.ceil(k / 2) + 1, k + 1)) / k


def g_pass_metrics(n: int, c: int, k: int) -> dict[str, float]:
    """The G-Pass family at one k under lighteval's names: ``g-pass@{k}_{tau}`` per threshold, ``mg-pass@{k}``."""
    out = {f"g-pass@{k}_{tau}": g_pass_at_k(n, c, k, tau) for tau in G_PASS_THRESHOLDS}
    if k >= 2:
        out[f"mg-pass@{k}"] = mg_pass_at_k(n, c, k)
    return out


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


def mean_present(values: Sequence[float]) -> float:
    """Mean of the values that are not NaN; NaN when none is."""
    present = [float(v) for v in values if not math.isnan(float(v))]
    return sum(present) / len(present) if present else math.nan


def stat_means(samples: Sequence) -> dict[str, float]:
    """Mean of each engine stat over the samples: NaN when a sample lacks it (e.g. ``--model hf``), except
    for ``PARTIAL_KEYS``, averaged over the samples that have them (NaN when none has)."""
    out = {}
    for name in STAT_KEYS:
        values = [float(stats_of(s).get(name, math.nan)) for s in samples]
        if name in PARTIAL_KEYS:
            out[name] = mean_present(values)
        else:
            out[name] = math.nan if any(math.isnan(v) for v in values) or not values else sum(values) / len(values)
    return out


def question_metrics(correct: Sequence[bool], samples: Sequence, keys: Optional[Sequence[Optional[str]]] = None,
                     timeouts: int = 0, unclosed: int = 0) -> dict[str, float]:
    """All metrics of one question: acc, pass@k, G-Pass@k, maj@k (when ``keys`` given), check_timeout, think_unclosed
    (``unclosed`` of the n samples opened a ``<think>`` and never closed it), engine stats (``PARTIAL_KEYS`` only
    where a sample has them)."""
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
        out.update(g_pass_metrics(n, c, k))
        if keys is not None:
            out[f"maj@{k}"] = maj_at_k(keys, correct, k)
    out["check_timeout"] = timeouts / n
    out["think_unclosed"] = unclosed / n
    out.update(stat_means([samples[i] for i in answered]))
    for name in PARTIAL_KEYS:  # no sample has it (no summary): the question is left out of that metric's mean
        if math.isnan(out[name]):
            del out[name]
    out["error"] = sum(failed) / len(failed)
    return out
