"""The per-sample result handed from the model to lm-eval tasks.

Owns: ``SampleOutput``, a ``str`` (the final answer text a task scores)
that also carries the engine's per-sample statistics, and ``stats_of``,
which task hooks use to read them, and which stats exist (``STAT_KEYS``,
``PARTIAL_KEYS``).  This is how TOK/LAT/rounds reach the
results JSON and the ``--log_samples`` JSONL without changing lm-eval.

Does not know: how the stats were computed (see ``trace``), or any task.
"""

from __future__ import annotations

import math

STAT_KEYS = ("tok", "lat", "rounds", "peak_ctx", "truncated", "format_fail", "error",
             "kv_tokens", "ttft", "decode", "summary_tok", "compression", "early_answer", "wait", "kv_bytes")
"""Each defined in ``trace`` and docs/metrics.md.  ``error``: 1 when a request of the sample failed for good (the
reason is in the sidecar trace), else 0.  New keys go at the end: a response or pickle made before a key existed
reads it as NaN, like a response of another model."""

PARTIAL_KEYS = ("compression", "early_answer")
"""Stats that only some samples have (those that carried a summary): averaged over the samples that have them,
and left out of a question's metrics when none has (``scoring.metrics.question_metrics``), so that the task's
mean runs over the questions that have them; the other stats are averaged over all samples."""


class SampleOutput(str):
    """The final answer text, with ``.stats`` (keys ``STAT_KEYS``) and ``.trace_id``.

    ``stats`` is optional because lm-eval builds one from a plain value: for a ``generate_until`` task with no
    filter and a metric such as ``exact_match`` it casts the gold answer with ``type(result)(gold)``. Such a
    value carries NaN stats, like the response of any other model.
    """

    stats: dict
    trace_id: str

    def __new__(cls, text: object = "", stats: dict | None = None, trace_id: str = "") -> "SampleOutput":
        obj = super().__new__(cls, text)
        obj.stats = {k: _number((stats or {}).get(k)) for k in STAT_KEYS}
        obj.trace_id = trace_id
        return obj

    def __reduce__(self):  # survives pickling (lm-eval's multiprocessing and caches)
        return (SampleOutput, (str(self), self.stats, self.trace_id))


def _number(value) -> float:
    """A stat as stored: absent or None (a time the engine did not report) is NaN."""
    return math.nan if value is None else value


def stats_of(response) -> dict:
    """Stats of one response: its ``.stats``, or NaN for each key when another model produced it."""
    stats = getattr(response, "stats", None)
    return dict(stats) if stats is not None else {k: math.nan for k in STAT_KEYS}
