"""``inftythink data build --format inftythink_plus``: InftyThink+ cold-start rows, chained summaries,
regenerate-then-drop; ``plus`` (the name before issue 20) still works as an alias.

The scripted backend gives exact control of every summary (its text and whether it finished); one
test runs the real SmolLM2 on the hf backend over a short trace.  Each row must be the chat of
``formats.plus.training_messages`` and parse back with the evaluator's ``parse_iteration``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from inftythink_eval.backends.scripted import ScriptedBackend
from inftythink_eval.data import BuildConfig, Columns, SummaryConfig, build
from inftythink_eval.data.segment import token_counter
from inftythink_eval.data.summarize import BackendSummarizer
from inftythink_eval.formats.plus import (CONCLUSION, CONTINUE_INSTRUCTION, DEFAULT_PLUS_ETA, SUMMARY,
                                            SUMMARY_PROMPT_FIRST, SUMMARY_PROMPT_LATER, parse_iteration,
                                            summary_chat_plus, training_messages)

COLUMNS = Columns(question="question", solution=None, trace="trace", conclusion="answer")
UNFINISHED = {"text": "* a summary that runs out of tok", "finish_reason": "length"}


def _rows(n: int = 6) -> list[dict]:
    """Question i has 1 + i % 4 paragraphs of 10 words: with eta 8 words, one span per paragraph (so 6 rows
    give 1+2+3+4+1+2 = 13 instances, and 13 - 6 = 7 summaries: a trace's final span gets none)."""
    return [{"question": f"Question {i}?", "answer": f"Answer {i}.",
             "trace": "\n\n".join(f"Step {k} of problem {i} has some words in it." for k in range(1 + i % 4))}
            for i in range(n)]


def _summary(question: str, k: int) -> str:
    return f"* progress {k} on {question}"


def _script(rows: list[dict], special: dict | None = None) -> list[dict]:
    """One rule per (question, span): span k's summary chat holds "Step k of problem i" as its span."""
    rules = []
    for i, row in enumerate(rows):
        for k in range(4):
            outputs = (special or {}).get((i, k), [_summary(row["question"], k)])
            rules.append({"match": f"Step {k} of problem {i} has", "outputs": outputs})
    return rules


def _config(out: Path, **kw) -> BuildConfig:
    return BuildConfig(**{"source": "mem", "out": str(out), "format": "inftythink_plus", "eta": 8, "tokenizer": "words",
                          "columns": COLUMNS, "progress": False, **kw})


def _build(out: Path, rows: list[dict], special: dict | None = None, **kw) -> tuple[dict, ScriptedBackend]:
    config = _config(out, **kw)
    backend = ScriptedBackend(script=_script(rows, special), call_log=str(out.parent / f"{out.name}-calls.jsonl"))
    return build(config, summarizer=BackendSummarizer(backend, config.summary), rows=rows), backend


def _load(out: Path, folder: str = "instances") -> list[dict]:
    return [row for path in sorted((out / folder).glob("*.parquet")) for row in pq.read_table(path).to_pylist()]


def _calls(out: Path) -> list[str]:
    return [json.loads(line)["prompt"] for line in (out.parent / f"{out.name}-calls.jsonl").read_text().splitlines()]


def test_the_hand_counted_sizes_are_what_the_builders_tokenizer_counts():
    paragraphs = [p for row in _rows() for p in row["trace"].split("\n\n")]
    assert len(paragraphs) == 13 and set(token_counter("words").count(paragraphs)) == {10}   # each over eta 8


def test_rows_are_cold_start_chats_with_history_in_the_assistant_turn(tmp_path):
    rows = _rows()
    report, _ = _build(tmp_path / "out", rows)
    built = _load(tmp_path / "out")
    assert report["counts"]["traces_out"] == 6 and len(built) == report["counts"]["instances_out"] == 13
    by_uid = defaultdict(list)
    for row in built:
        by_uid[row["uuid"]].append(row)
        final = row["conclusion"] is not None
        assert row["messages"] == training_messages(row["question"], row["reasoning_process"], row["history"],
                                                    None if final else row["summary"],
                                                    row["conclusion"] if final else None)
        reply = row["messages"][1]["content"]
        after_history = reply.split("</history>", 1)[-1]
        parsed = parse_iteration(after_history)
        assert parsed.think == row["reasoning_process"]
        if final:
            assert parsed.kind == CONCLUSION and parsed.conclusion == row["conclusion"] and row["summary"] is None
        else:
            assert parsed.kind == SUMMARY and parsed.summary == row["summary"]
        assert reply.startswith("<history>\n") == (row["reasoning_index"] > 0)
    for group in by_uid.values():
        group.sort(key=lambda r: r["reasoning_index"])
        assert all(b["history"] == a["summary"] for a, b in zip(group, group[1:]))
        assert group[-1]["summary"] is None, "the final span gets no summary (PROTOCOL_PLUS)"
    vanilla = _load(tmp_path / "out", "vanilla")
    assert len(vanilla) == 6 and vanilla[0]["messages"] == training_messages(
        vanilla[0]["question"], vanilla[0]["reasoning_process"], conclusion=vanilla[0]["conclusion"])


def test_summary_prompts_are_the_recipes_two_chats_rendered_by_the_backend(tmp_path):
    rows = _rows(4)
    _, backend = _build(tmp_path / "out", rows)
    prompts = _calls(tmp_path / "out")
    assert len(prompts) == 0 + 1 + 2 + 3, "spans minus one per trace: the final span is not summarised"
    question, spans = rows[3]["question"], rows[3]["trace"].split("\n\n")
    mine = [p for p in prompts if question in p]
    expected = [backend.apply_chat_template(summary_chat_plus(question, spans[0]))]
    expected += [backend.apply_chat_template(summary_chat_plus(question, spans[k], _summary(question, k - 1)))
                 for k in (1, 2)]
    assert mine == expected
    assert SUMMARY_PROMPT_FIRST in mine[0] and SUMMARY_PROMPT_LATER not in mine[0]
    assert all(SUMMARY_PROMPT_LATER in p and CONTINUE_INSTRUCTION in p for p in mine[1:])
    assert spans[0] not in mine[2], "a later chat holds the previous summary, not the earlier spans"


def test_an_unfinished_summary_is_regenerated_then_the_trace_is_dropped_and_counted(tmp_path):
    rows = _rows(8)
    special = {(1, 0): [UNFINISHED, UNFINISHED, _summary("Question 1?", 0)],   # finishes at the third try
               (3, 1): [UNFINISHED]}                                          # never finishes
    report, _ = _build(tmp_path / "out", rows, special, summary=SummaryConfig.for_format("inftythink_plus", n=5))
    assert report["counts"]["traces_out"] == 7 and report["drops"] == {"summary_unfinished": 1}
    built = _load(tmp_path / "out")
    assert {r["question"] for r in built} == {r["question"] for r in rows} - {"Question 3?"}
    assert next(r for r in built if r["question"] == "Question 1?")["summary"] == _summary("Question 1?", 0)
    asked = Counter(p for p in _calls(tmp_path / "out"))
    tries = Counter()
    for prompt, n in asked.items():
        for i, row in enumerate(rows):
            for k in range(4):
                if f"Step {k} of problem {i} has" in prompt:
                    tries[(i, k)] += n
    assert tries[(1, 0)] == 3, "regenerated until it finished"
    assert tries[(3, 1)] == 5, "regenerated up to the limit (n tries), then given up"
    assert (3, 2) not in tries, "a dropped trace's later spans are never asked"
    assert report["counts"]["summaries_asked"] == sum(tries.values())


def test_plus_defaults_follow_protocol_plus_and_mismatches_are_clear_errors(tmp_path):
    config = BuildConfig(source="x.jsonl", out=str(tmp_path), format="inftythink_plus")
    assert config.eta == DEFAULT_PLUS_ETA == 6000
    s = config.summary
    assert (s.format, s.temperature, s.top_p, s.max_tokens, s.n, s.summarize_last) == (
        "inftythink_plus", 0.5, 0.95, 1024, 65, False)
    assert BuildConfig(source="x.jsonl", out=str(tmp_path)).eta == 4096
    with pytest.raises(ValueError, match="summary format 'inftythink' does not match the build format "
                                         "'inftythink_plus'"):
        BuildConfig(source="x.jsonl", out=str(tmp_path), format="inftythink_plus", summary=SummaryConfig(n=2))
    with pytest.raises(ValueError, match="summariser was made for format 'inftythink'"):
        build(_config(tmp_path / "o"), summarizer=BackendSummarizer(ScriptedBackend(script=[])), rows=_rows(2))
    with pytest.raises(ValueError, match=r"format must be one of inftythink, inftythink_plus \(or the alias plus\)"):
        BuildConfig(source="x.jsonl", out=str(tmp_path), format="v2")


def test_plus_is_an_alias_of_inftythink_plus_and_old_caches_and_reports_still_read(tmp_path):
    """``format="plus"`` (the builder's name before issue 20) builds the same config; the summariser id, part of
    every cache key, still says ``fmt=plus`` so a cache written before the rename hits; an old shard report
    that says ``plus`` merges into one that says ``inftythink_plus``."""
    from inftythink_eval.data.stats import merge_reports

    old, new = (BuildConfig(source="x.jsonl", out=str(tmp_path), format=f) for f in ("plus", "inftythink_plus"))
    assert old == new and old.format == old.summary.format == "inftythink_plus"
    assert SummaryConfig.for_format("plus") == SummaryConfig.for_format("inftythink_plus")
    assert BackendSummarizer(ScriptedBackend(script=[]), new.summary).id.endswith("|fmt=plus")
    first, _ = _build(tmp_path / "out", _rows(3))
    report = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert report["config"]["format"] == report["config"]["summary"]["format"] == "inftythink_plus"
    legacy = dict(report, config=dict(report["config"], format="plus", shard=[0, 1],
                                      summary=dict(report["config"]["summary"], format="plus")))
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "stats-part-0-of-1.json").write_text(json.dumps(legacy))
    merged = merge_reports(tmp_path / "old")
    assert merged["config"]["format"] == merged["config"]["summary"]["format"] == "inftythink_plus"
    assert merged["counts"] == first["counts"]


def test_rerun_takes_every_summary_from_the_cache_and_writes_identical_files(tmp_path):
    rows = _rows()
    first, _ = _build(tmp_path / "out", rows)
    before = {p.name: p.read_bytes() for p in sorted((tmp_path / "out").glob("*/*.parquet"))}
    second, _ = _build(tmp_path / "out", rows)
    assert first["counts"]["summaries_asked"] == 7 and second["counts"]["summaries_asked"] == 0
    assert second["counts"]["summaries_cached"] == 7 and len(_calls(tmp_path / "out")) == 7
    assert {p.name: p.read_bytes() for p in sorted((tmp_path / "out").glob("*/*.parquet"))} == before


def test_shards_cover_the_source(tmp_path):
    rows = _rows(10)
    for i in range(3):
        _build(tmp_path / "sharded", rows, shard=(i, 3))
    _build(tmp_path / "whole", rows)
    key = lambda r: (r["uuid"], r["reasoning_index"])  # noqa: E731
    assert sorted(_load(tmp_path / "sharded"), key=key) == sorted(_load(tmp_path / "whole"), key=key)


def test_cli_format_plus_alias_with_a_scripted_summarizer(tmp_path):
    rows = _rows(5)
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    script = tmp_path / "script.json"
    script.write_text(json.dumps(_script(rows, {(2, 0): [UNFINISHED]})))
    proc = subprocess.run([sys.executable, "-m", "inftythink_eval.cli", "data", "build", "--format", "plus",
                           "--source", str(source), "--out", str(tmp_path / "out"), "--eta", "8", "--tokenizer",
                           "words", "--question-column", "question", "--trace-column", "trace",
                           "--conclusion-column", "answer", "--no-progress", "--summary-n", "3",
                           "--summarizer", f"scripted:script={script}"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "traces out 4" in proc.stdout and "summary_unfinished 1" in proc.stdout
    report = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert report["config"]["format"] == "inftythink_plus" and report["config"]["summary"]["n"] == 3
    assert report["config"]["summary"]["top_p"] == 0.95, "unset flags keep the plus defaults"
    assert all(r["messages"][0] == {"role": "user", "content": r["question"]} for r in _load(tmp_path / "out"))


@pytest.mark.timeout(900)   # bounds a hang: ~100 s measured on 2 cores under a heavy load
def test_smollm2_on_a_short_trace_keeps_a_finished_summary_or_drops_the_trace_after_its_tries(tmp_path):
    """The real model on the hf backend: the recipe's first-span chat through SmolLM2's chat template.
    SmolLM2-135M rarely ends a summary of these prompts within a few dozen tokens (measured: 0 of 8
    finished within 160), so this run usually takes the regenerate-then-drop path; either way the
    accounting must match the cache record by record."""
    from inftythink_eval.checkpoints.fetch import smollm2_folder

    trace = ("We need the sum of the first ten positive integers.\n\n"
             "Pair them: 1 and 10, 2 and 9, 3 and 8, 4 and 7, 5 and 6; five pairs of 11, so the total is 55.")
    rows = [{"question": "What is 1 + 2 + ... + 10?", "trace": trace, "answer": "The answer is 55."}]
    folder = str(smollm2_folder())
    # each paragraph is over eta 10 SmolLM2 tokens, so each is a span: two spans, one summary chat
    assert min(token_counter(folder).count(trace.split("\n\n"))) > 10
    config = _config(tmp_path / "out", tokenizer=folder, eta=10, summarizer=f"hf:pretrained={folder},batch_size=2",
                     summary=SummaryConfig.for_format("plus", max_tokens=24, n=2))
    try:
        report = build(config, rows=rows)
    except ValueError as exc:   # SourceError: no trace survived
        assert "no trace survived the build ({'summary_unfinished': 1})" in str(exc)
        report = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert report["distributions"]["spans_per_trace"]["max"] == 2
    log = tmp_path / "out" / "cache" / "summaries-00000-of-00001.jsonl"
    records = [json.loads(line)["v"] for line in log.read_text(encoding="utf-8").splitlines()]
    finished = [r for r in records if r["finish"] == "stop" and r["text"].strip()]
    assert report["counts"]["summaries_asked"] == len(records) == (1 if finished else 2)
    if finished:
        first, final = _load(tmp_path / "out")
        assert first["summary"] == final["history"] == finished[0]["text"].strip()
        assert parse_iteration(first["messages"][1]["content"]).summary == first["summary"]
        assert final["messages"][1]["content"].startswith(f"<history>\n{final['history']}\n</history><think>\n")
    else:
        assert report["counts"]["traces_out"] == 0 and report["drops"] == {"summary_unfinished": 1}
        assert all(r["finish"] == "length" for r in records) and _load(tmp_path / "out") == []
