"""The build report: counts, drops by reason and length distributions.

Owns: accumulating what a build saw (rows in/out, drops by reason, spans per
trace, tokens per span, summary lengths, summary requests asked vs cached),
rendering it as JSON and a short text table, writing both atomically, and
merging the reports of ``--shard i/N`` runs.  Distributions are stored as
``{value: count}`` histograms so shard reports merge exactly.  A report
records the format's name: reports written before issue 20 say ``plus``;
a merge reads them and records ``inftythink_plus``.

Does not know: how any of the counted things were produced.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Iterable

from inftythink_eval.formats.plus import format_name

_HISTS = ("spans_per_trace", "tokens_per_span", "summary_tokens")
_COUNTS = ("rows_in", "traces_in", "traces_out", "instances_out", "vanilla_out", "summaries_asked",
           "summaries_cached")


class BuildStats:
    """Mutable accumulator; ``to_json()`` is deterministic except the ``timing`` block."""

    def __init__(self) -> None:
        self.counts: Counter = Counter({k: 0 for k in _COUNTS})
        self.drops: Counter = Counter()
        self.hists: dict[str, Counter] = {k: Counter() for k in _HISTS}
        self.timing: dict = {}

    def drop(self, reason: str, n: int = 1) -> None:
        self.drops[reason] += n

    def observe(self, name: str, values: Iterable[int]) -> None:
        self.hists[name].update(int(v) for v in values)

    def to_json(self, config: dict) -> dict:
        return {
            "config": config,
            "counts": dict(self.counts),
            "drops": dict(sorted(self.drops.items())),
            "distributions": {k: describe(h) for k, h in self.hists.items()},
            "histograms": {k: {str(v): c for v, c in sorted(h.items())} for k, h in self.hists.items()},
            "timing": self.timing,
        }

    @classmethod
    def from_json(cls, data: dict) -> "BuildStats":
        stats = cls()
        stats.counts.update(data["counts"])
        stats.drops.update(data["drops"])
        for k, hist in data["histograms"].items():
            stats.hists[k].update({int(v): c for v, c in hist.items()})
        return stats

    def merge(self, other: "BuildStats") -> None:
        self.counts.update(other.counts)
        self.drops.update(other.drops)
        for k in _HISTS:
            self.hists[k].update(other.hists[k])


def describe(hist: Counter) -> dict:
    """count, mean, min, p50, p90, p99, max of a histogram (empty: count 0)."""
    total = sum(hist.values())
    if not total:
        return {"count": 0}
    values = sorted(hist)
    out = {"count": total, "mean": round(sum(v * c for v, c in hist.items()) / total, 2), "min": values[0]}
    for q in (50, 90, 99):
        need, seen = q / 100 * total, 0
        for v in values:
            seen += hist[v]
            if seen >= need:
                out[f"p{q}"] = v
                break
    out["max"] = values[-1]
    return out


def table(report: dict) -> str:
    """A short text table of a report."""
    c, lines = report["counts"], []
    lines.append(f"rows in {c['rows_in']}  traces in {c['traces_in']}  traces out {c['traces_out']}  "
                 f"instances {c['instances_out']}  vanilla {c['vanilla_out']}")
    lines.append(f"summaries asked {c['summaries_asked']}  from cache {c['summaries_cached']}")
    lines.append("drops: " + (", ".join(f"{k} {v}" for k, v in report["drops"].items()) or "none"))
    lines.append(f"{'distribution':<18}{'count':>8}{'mean':>10}{'min':>8}{'p50':>8}{'p90':>8}{'p99':>8}{'max':>8}")
    for name, d in report["distributions"].items():
        cells = [f"{d.get(k, '-'):>8}" for k in ("count",)] + [f"{d.get('mean', '-'):>10}"]
        cells += [f"{d.get(k, '-'):>8}" for k in ("min", "p50", "p90", "p99", "max")]
        lines.append(f"{name:<18}" + "".join(cells))
    timing = report.get("timing") or {}
    if timing:
        lines.append("timing: " + ", ".join(f"{k} {v}" for k, v in timing.items()))
    return "\n".join(lines) + "\n"


def write_report(out: Path, stem: str, report: dict) -> None:
    """``{stem}.json`` and ``{stem}.txt`` in ``out``, each written atomically."""
    for suffix, text in ((".json", json.dumps(report, indent=2, ensure_ascii=False) + "\n"), (".txt", table(report))):
        path = Path(out) / f"{stem}{suffix}"
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)


def merge_reports(out: Path) -> dict:
    """Merge ``stats-part-*.json`` of a sharded build in ``out`` into ``stats.json``; check every shard is there."""
    parts = sorted(Path(out).glob("stats-part-*.json"))
    if not parts:
        raise FileNotFoundError(f"no stats-part-*.json in {out}: run `inftythink data build --shard i/N` first")
    reports = [json.loads(p.read_text(encoding="utf-8")) for p in parts]
    expected = {tuple(r["config"]["shard"]) for r in reports}
    total_shards = reports[0]["config"]["shard"][1]
    missing = sorted(set(range(total_shards)) - {i for i, _ in expected})
    if missing:
        raise ValueError(f"shards {missing} of {total_shards} have no finished report in {out}; run them first")
    merged = BuildStats()
    for report in reports:
        merged.merge(BuildStats.from_json(report))
    config = dict(reports[0]["config"], shard=[0, 1], merged_from=[p.name for p in parts])
    if "format" in config:  # shard reports written before issue 20 say "plus"
        config["format"] = format_name(config["format"])
    if isinstance(config.get("summary"), dict) and "format" in config["summary"]:
        config["summary"] = dict(config["summary"], format=format_name(config["summary"]["format"]))
    result = merged.to_json(config)
    write_report(Path(out), "stats", result)
    return result
