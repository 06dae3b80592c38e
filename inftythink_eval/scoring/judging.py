"""What every task family's judging filter and ``process_results`` share.

Owns: the ``Judged`` sample (a ``SampleOutput`` carrying its verdict), the
doc field that carries a task's truncation rule (``RULE_FIELD``), judging
ALL n repeats of every question in one pass (``judge_all``: flatten, judge
under the task's rule, regroup per question) and turning one question's
judged samples into acc, pass@k, maj@k, check_timeout, think_unclosed and the
engine's stats (``question_results``).  A family module
(``scoring/families/*.py``) builds its three hooks from these.

Does not know: any family's prompt or checker, files and hub ids
(``scoring.datasets``), the registry (``scoring.families``), models and engines.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

from inftythink_eval.formats.inftythink import DEFAULT_UNCLOSED_THINK, THINK_UNCLOSED, check_unclosed_think, scored_text
from inftythink_eval.run.output import SampleOutput, stats_of
from inftythink_eval.scoring.metrics import question_metrics

RULE_FIELD = "unclosed_think"  # the doc field that carries the task's truncation rule to the judging filters

# judge_pairs([(response, doc), ...], rule) -> [Judged, ...]: one family's checker over a flat list
PairJudge = Callable[[list, str], list]


class Judged(SampleOutput):
    """What was extracted from one response (the string), its verdict, and the response's engine stats."""

    correct: bool
    key: Optional[str]   # majority-vote key (None: no answer / no voting)
    note: str            # how it was judged: boxed, fallback, no answer, timeout, passed, AssertionError, ...
    think: str           # the response's thinking state (templates.scored_text): closed, unclosed, none

    def __new__(cls, text: str, source, correct: bool, key: Optional[str], note: str,
                think: Optional[str] = None) -> "Judged":
        obj = super().__new__(cls, text, stats_of(source), getattr(source, "trace_id", ""))
        obj.correct, obj.key, obj.note = bool(correct), key, note
        obj.think = think if think is not None else scored_text(str(source)).think
        return obj

    def __reduce__(self):
        return (_rebuild, (str(self), self.stats, self.trace_id, self.correct, self.key, self.note, self.think))


def _rebuild(text, stats, trace_id, correct, key, note, think=None) -> Judged:
    source = SampleOutput("", stats, trace_id)
    return Judged(text, source, correct, key, note, think)


def rule_of(docs: Sequence) -> str:
    """The truncation rule of one task's docs (stamped by ``hooks.load_benchmark``; the default when absent)."""
    rules = {doc.get(RULE_FIELD, DEFAULT_UNCLOSED_THINK) for doc in docs} or {DEFAULT_UNCLOSED_THINK}
    if len(rules) > 1:
        raise ValueError(f"docs of one judging pass carry different {RULE_FIELD} rules {sorted(rules)}; "
                         "expected one per task (set it in the task's metadata)")
    return check_unclosed_think(rules.pop())


def judge_all(resps: Sequence, docs: Sequence, judge_pairs: PairJudge) -> list[list[Judged]]:
    """Flatten (question, repeat) pairs, judge them in one pass under the task's rule, regroup per question."""
    groups = [list(r) if isinstance(r, (list, tuple)) else [r] for r in resps]
    pairs = [(resp, doc) for group, doc in zip(groups, docs) for resp in group]
    judged = judge_pairs(pairs, rule_of(docs))
    out, start = [], 0
    for group in groups:
        out.append(judged[start:start + len(group)])
        start += len(group)
    return out


def question_results(doc: dict, results: list, judge: Callable, vote: bool) -> dict:
    """One question's metrics; ``judge`` (the family's filter) scores raw responses when the filter did not run."""
    samples = results[0] if isinstance(results[0], (list, tuple)) else list(results)
    if not all(isinstance(s, Judged) for s in samples):  # the judging filter was not applied
        samples = judge([samples], [doc])[0]
    keys = [s.key for s in samples] if vote else None
    timeouts = sum(s.note == "timeout" for s in samples)
    unclosed = sum(s.think == THINK_UNCLOSED for s in samples)
    return question_metrics([s.correct for s in samples], samples, keys, timeouts, unclosed)
