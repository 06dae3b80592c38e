"""The dataset build pipeline and its Python API, ``build(...)``.

Owns: the order of the stages (read -> shard -> traces -> segment in blocks
-> summarise through the cache -> instances -> Parquet shards + report),
drop accounting at every stage, the progress bar and output layout::

    OUT/instances/part-IIIII-of-NNNNN-KKKKK.parquet   InftyThink instances (released schema; inftythink_plus: chats)
    OUT/vanilla/part-IIIII-of-NNNNN-KKKKK.parquet     unsegmented SFT rows (Vanilla baseline)
    OUT/cache/summaries-IIIII-of-NNNNN.jsonl          every summary choice ever returned
    OUT/stats.json, OUT/stats.txt                     the report (stats-part-I-of-N.* when sharded)

A rerun with the same options re-segments (deterministic) and takes every
summary from the cache, so its files are identical to an uninterrupted run;
the report is written last, so its presence marks a finished build.

Does not know: segmentation rules, backends, the protocol strings (each
stage's module owns them).
"""

from __future__ import annotations

import dataclasses
import time
from itertools import islice
from pathlib import Path
from typing import Iterable, Iterator, Optional

from inftythink_eval.data.cache import SummaryCache
from inftythink_eval.data.config import BuildConfig
from inftythink_eval.data.instances import SCHEMA, VANILLA_SCHEMA, ShardWriter, instances, vanilla_row
from inftythink_eval.data.segment import SegmentSpec, Segmented, segment_blocks, token_counter
from inftythink_eval.data.sources import Drop, SourceError, Trace, check_columns, read_rows, to_traces
from inftythink_eval.data.stats import BuildStats, write_report
from inftythink_eval.data.summarize import Job, make_summarizer, run_summaries
from inftythink_eval.formats import plus


def build(config: BuildConfig, summarizer=None, rows: Optional[Iterable[dict]] = None) -> dict:
    """Build InftyThink instances; returns the report (also written to ``OUT/stats.json``).

    ``summarizer`` overrides ``config.summarizer``: a callable ``fn(question, spans_so_far) -> str | None``
    or a summariser object.  ``rows`` (dicts) replaces ``config.source`` as the input.
    """
    out = Path(config.out)
    i, n = config.shard
    tag = f"part-{i:05d}-of-{n:05d}"
    stem = "stats" if n == 1 else f"stats-part-{i}-of-{n}"
    for stale in (out / f"{stem}.json", out / f"{stem}.txt"):
        stale.unlink(missing_ok=True)
    counter = token_counter(config.tokenizer)  # loads the tokenizer early: a bad --tokenizer fails here
    summ = make_summarizer(summarizer if summarizer is not None else config.summarizer, config.summary)
    owned = summarizer is None or isinstance(summarizer, str)  # close only what this call created
    made_for = getattr(getattr(summ, "config", None), "format", config.format)
    if made_for != config.format:
        raise ValueError(f"the summariser was made for format {made_for!r}, the build is {config.format!r}; "
                         f"make it with SummaryConfig.for_format({config.format!r}) (or pass config.summary)")
    cache = SummaryCache(out / "cache", f"summaries-{i:05d}-of-{n:05d}")
    writer = ShardWriter(out / "instances", tag, SCHEMA, config.rows_per_file)
    vanilla = ShardWriter(out / "vanilla", tag, VANILLA_SCHEMA, config.rows_per_file) if config.vanilla else None
    stats, started = BuildStats(), time.monotonic()
    spec = SegmentSpec(config.segmenter, config.eta, config.tokenizer, config.max_paragraph_tokens)
    bar = _progress(config.progress)
    try:
        blocks = _blocks(config, rows, stats)
        for block, segmented in segment_blocks(blocks, spec, config.workers):
            if vanilla is not None:
                vanilla.add([vanilla_row(t, config.format) for t in block])
            _emit(segmented, summ, cache, config, writer, stats, counter)
            _tick(bar, stats, len(block), started)
        writer.close()
        if vanilla is not None:
            vanilla.close()
    finally:
        cache.close()
        bar.close()
        if summ is not None and owned:
            summ.close()
    stats.counts["vanilla_out"] = vanilla.rows if vanilla is not None else 0
    stats.timing = _timing(stats, time.monotonic() - started)
    report = stats.to_json(_config_json(config, summ))
    write_report(out, stem, report)
    if summ is not None and stats.counts["traces_in"] and not stats.counts["traces_out"]:
        raise SourceError(f"no trace survived the build ({dict(stats.drops)}); see {out / (stem + '.txt')}")
    return report


def _blocks(config: BuildConfig, rows, stats: BuildStats) -> Iterator[list[Trace]]:
    """Blocks of this shard's traces; drops are counted as they are met."""
    raw = read_rows(rows if rows is not None else config.source, config.hub_config, config.split)
    if config.limit is not None:
        raw = islice(raw, config.limit)
    i, n = config.shard
    block: list[Trace] = []
    checked = False
    for index, row in enumerate(raw):
        if not checked and isinstance(row, dict):
            check_columns(row, config.columns)
            checked = True
        if index % n != i:
            continue
        stats.counts["rows_in"] += 1
        for item in to_traces(row, config.columns):
            stats.counts["traces_in"] += 1
            if isinstance(item, Drop):
                stats.drop(item.reason)
            else:
                block.append(item)
        if len(block) >= config.block_rows:
            yield block
            block = []
    if block:
        yield block
    if not checked and stats.counts["rows_in"]:
        raise SourceError(f"source {config.source}: no row could be read ({dict(stats.drops)}); expected "
                          "UTF-8 JSON lines or Parquet rows")


def _emit(segmented: list, summ, cache: SummaryCache, config: BuildConfig, writer: ShardWriter,
          stats: BuildStats, counter) -> None:
    """Summarise the kept traces of one block and write their instances."""
    kept: list[Segmented] = []
    for item in segmented:
        if isinstance(item, Drop):
            stats.drop(item.reason)
            continue
        stats.observe("spans_per_trace", [len(item.spans)])
        stats.observe("tokens_per_span", item.span_tokens)
        if summ is None and len(item.spans) > 1:
            stats.drop("no_summarizer")
        else:
            kept.append(item)
    summaries: dict = {}
    if summ is not None and kept:
        last = 0 if config.summary.summarize_last else 1
        jobs = [Job(s.trace.uid, s.trace.question, s.spans, k, slot) for slot, s in enumerate(kept)
                for k in range(len(s.spans) - last)]
        outcome = run_summaries(summ, jobs, cache, (config.eta, config.segmenter), chained=config.format == plus.NAME)
        summaries = outcome.summaries
        stats.counts["summaries_asked"] += outcome.asked
        stats.counts["summaries_cached"] += outcome.cached
    for slot, seg in enumerate(kept):
        wanted = len(seg.spans) if (summ is not None and config.summary.summarize_last) else len(seg.spans) - 1
        mine = [summaries.get((slot, k)) for k in range(len(seg.spans))]
        if any(mine[k] is None for k in range(wanted)):
            stats.drop("summary_unfinished")
            continue
        writer.add(instances(seg, mine, config.format))
        stats.counts["traces_out"] += 1
        stats.counts["instances_out"] += len(seg.spans)
        stats.observe("summary_tokens", counter.count([s for s in mine if s is not None]))


def _progress(enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(desc="build", unit=" rows", disable=not enabled, dynamic_ncols=True)


def _tick(bar, stats: BuildStats, rows: int, started: float) -> None:
    bar.update(rows)
    elapsed = max(time.monotonic() - started, 1e-9)
    spans = sum(stats.hists["tokens_per_span"].values())
    bar.set_postfix(spans_s=f"{spans / elapsed:.1f}", summaries_s=f"{stats.counts['summaries_asked'] / elapsed:.2f}",
                    kept=stats.counts["traces_out"], refresh=False)


def _timing(stats: BuildStats, elapsed: float) -> dict:
    spans = sum(stats.hists["tokens_per_span"].values())
    rate = (lambda x: round(x / elapsed, 2)) if elapsed > 0 else (lambda x: 0.0)
    return {"seconds": round(elapsed, 2), "rows_per_s": rate(stats.counts["rows_in"]), "spans_per_s": rate(spans),
            "summaries_per_s": rate(stats.counts["summaries_asked"])}


def _config_json(config: BuildConfig, summ) -> dict:
    data = dataclasses.asdict(config)
    data["shard"] = list(config.shard)
    data["summarizer_id"] = getattr(summ, "id", None)
    data.pop("progress", None)
    return data
