"""The per-sample result handed from the model to lm-eval tasks.

Owns: ``SampleOutput``, a ``str`` (the final answer text a task scores)
that also carries the engine's per-sample statistics, and ``stats_of``,
which task hooks use to read them.  This is how TOK/LAT/rounds reach the
results JSON and the ``--log_samples`` JSONL without changing lm-eval.

Does not know: how the stats were computed (see ``trace``), or any task.
"""

from __future__ import annotations

import math

STAT_KEYS = ("tok", "lat", "rounds", "peak_ctx", "truncated", "format_fail", "error")
"""``error``: 1 when a request of the sample failed for good (the reason is in the sidecar trace), else 0."""


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
        obj.stats = {k: (stats or {}).get(k, math.nan) for k in STAT_KEYS}
        obj.trace_id = trace_id
        return obj

    def __reduce__(self):  # survives pickling (lm-eval's multiprocessing and caches)
        return (SampleOutput, (str(self), self.stats, self.trace_id))


def stats_of(response) -> dict:
    """Stats of one response: its ``.stats``, or NaN for each key when another model produced it."""
    stats = getattr(response, "stats", None)
    return dict(stats) if stats is not None else {k: math.nan for k in STAT_KEYS}
