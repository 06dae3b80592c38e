"""The build pipeline with scripted backends: instances parse back, n-choice rule, kill and resume, shards, CLI."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import Future
from pathlib import Path

import datasets
import pytest

from inftythink_eval.backends.scripted import ScriptedBackend
from inftythink_eval.data import BuildConfig, Columns, SummaryConfig, build
from inftythink_eval.data.segment import token_counter
from inftythink_eval.data.summarize import BackendSummarizer, make_summarizer, parse_spec
from inftythink_eval.formats.inftythink import parse_round

TESTS = Path(__file__).parent
COLUMNS = Columns(question="question", solution=None, trace="trace", conclusion="answer")
# PROTOCOL.md "Data construction" step 3, verbatim: written out here, not imported, so a drifted constant fails
PROTOCOL_SUMMARY_INSTRUCTION = (
    "Please list what you have achieved in your last response. Note that you should only output the summarization. "
    "You should list all the key steps and important intermediate conclusion. Please list them with '*'.")


class SeededScripted(ScriptedBackend):
    """The scripted backend whose output is unfinished ("length") for seeds below ``finish_from``."""

    def __init__(self, finish_from: int = 0, **kw) -> None:
        super().__init__(**kw)
        self.finish_from, self.params = finish_from, []

    def submit(self, request):
        self.params.append(request.params)
        future = super().submit(request)
        if request.params.seed >= self.finish_from:
            return future
        cut = Future()
        cut.set_result(dataclasses.replace(future.result(), finish_reason="length"))
        return cut


def _rows(n: int = 12) -> list[dict]:
    """Question i has 1 + i % 4 paragraphs of 10 words; with eta 8 words each paragraph is a span, so n rows
    give sum(1 + i % 4) spans: 30 for 12 rows, 40 for 16, 60 for 24 (the counts the tests below expect)."""
    return [{"question": f"Question {i}?", "answer": f"Answer {i}.",
             "trace": "\n\n".join(f"Step {k} of problem {i} has some words in it." for k in range(1 + i % 4))}
            for i in range(n)]


def _write_source(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _script(rows: list[dict]) -> list[dict]:
    return [{"match": r["question"], "outputs": [f"* progress on {r['question']}"]} for r in rows]


def _load(out: Path, folder: str = "instances"):
    return datasets.load_dataset("parquet", data_files=str(out / folder / "*.parquet"), split="train")


def run_build(out: str, source: str, script: str, call_log: str, shard: str = "0/1", stall_at: int = 0) -> None:
    """Entry point of the subprocesses below (the scripted backend, 30 ms per request, one at a time).

    ``stall_at`` > 0: the backend logs its ``stall_at``-th request, then hangs in it until the process is
    killed, so the parent kills at a known point instead of racing the build's speed.
    """
    if stall_at:
        serve_one, served = ScriptedBackend._one, itertools.count(1)

        def one(self, request):
            completion = serve_one(self, request)   # logs the request
            if next(served) == stall_at:
                threading.Event().wait()            # in flight forever
            return completion

        ScriptedBackend._one = one
    i, n = map(int, shard.split("/"))
    build(BuildConfig(source=source, out=out, eta=8, tokenizer="words", columns=COLUMNS, block_rows=2,
                      summarizer=f"scripted:script={script},call_log={call_log},max_batch=1,delay=0.03",
                      summary=SummaryConfig(n=2), shard=(i, n), rows_per_file=7, progress=False))


def test_the_hand_counted_span_numbers_are_what_the_builders_tokenizer_counts():
    """The sizes in ``_rows``'s docstring, counted by the builder's own ``words`` tokenizer."""
    paragraphs = [p for row in _rows(24) for p in row["trace"].split("\n\n")]
    assert len(paragraphs) == 60 and set(token_counter("words").count(paragraphs)) == {10}   # each over eta 8


def test_instances_follow_the_protocol_and_parse_back(tmp_path):
    rows = _rows()
    backend = ScriptedBackend(script=_script(rows), call_log=tmp_path / "calls.jsonl")
    report = build(BuildConfig(source="mem", out=str(tmp_path), eta=8, tokenizer="words", columns=COLUMNS,
                               progress=False), summarizer=BackendSummarizer(backend), rows=rows)
    ds = _load(tmp_path)
    assert report["counts"]["traces_out"] == 12 and len(ds) == report["counts"]["instances_out"] == 30  # _rows
    assert ds.column_names == ["uuid", "reasoning_index", "question", "history", "reasoning_process", "summary",
                               "conclusion", "messages"]
    by_uid: dict = {}
    for row in ds:
        by_uid.setdefault(row["uuid"], []).append(row)
        prompt, target = row["messages"][0]["content"], row["messages"][1]["content"]
        parsed = parse_round(target, prompt)
        assert parsed.ok and parsed.think == row["reasoning_process"]
        if row["conclusion"] is None:
            assert parsed.summary == row["summary"] == f"* progress on {row['question']}"
        else:
            assert parsed.summary is None and parsed.conclusion == row["conclusion"]
        assert prompt.startswith(f"User:{row['question']}Assistant:")
        assert (row["history"] is None) == (row["reasoning_index"] == 0)
    for uid, group in by_uid.items():
        assert [r["reasoning_index"] for r in group] == list(range(len(group)))
        assert sum(r["summary"] is not None for r in group) == len(group)   # one summary per span
        assert all(b["history"] == a["summary"] for a, b in zip(group, group[1:]))
    calls = [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    assert len(calls) == 30 and PROTOCOL_SUMMARY_INSTRUCTION in calls[0]["prompt"]
    assert len(_load(tmp_path, "vanilla")) == 12


def test_summary_prompt_is_cumulative_with_protocol_sampling(tmp_path):
    rows = _rows(4)
    backend = SeededScripted(script=_script(rows), call_log=tmp_path / "calls.jsonl")
    build(BuildConfig(source="mem", out=str(tmp_path), eta=8, tokenizer="words", columns=COLUMNS, progress=False),
          summarizer=BackendSummarizer(backend), rows=rows)
    prompts = [json.loads(l)["prompt"] for l in (tmp_path / "calls.jsonl").read_text().splitlines()]
    question, spans = rows[3]["question"], rows[3]["trace"].split("\n\n")
    # the chat of span i: [user: question, assistant: spans 0..i joined by "\n\n", user: the instruction]
    expected = [backend.apply_chat_template([{"role": "user", "content": question},
                                             {"role": "assistant", "content": "\n\n".join(spans[:i + 1])},
                                             {"role": "user", "content": PROTOCOL_SUMMARY_INSTRUCTION}])
                for i in range(4)]
    assert [p for p in prompts if question in p] == expected
    # temperature 0.5, at most 2048 tokens; every first choice finishes, so only choice 0 (seed 0) is asked
    assert len(backend.params) == 1 + 2 + 3 + 4
    assert {(p.temperature, p.max_tokens, p.seed) for p in backend.params} == {(0.5, 2048, 0)}


def test_first_finished_choice_is_kept_and_later_choices_asked_only_when_needed(tmp_path):
    rows = _rows(3)
    backend = SeededScripted(finish_from=2, script=_script(rows))
    report = build(BuildConfig(source="mem", out=str(tmp_path / "a"), eta=8, tokenizer="words", columns=COLUMNS,
                               summary=SummaryConfig(n=4, seed=0), progress=False),
                   summarizer=BackendSummarizer(backend), rows=rows)
    assert sorted(Counter(p.seed for p in backend.params).items()) == [(0, 6), (1, 6), (2, 6)]   # choice 3 never asked
    assert report["counts"]["traces_out"] == 3
    backend = SeededScripted(finish_from=9, script=_script(rows))
    with pytest.raises(ValueError, match="no trace survived.*summary_unfinished"):
        build(BuildConfig(source="mem", out=str(tmp_path / "b"), eta=8, tokenizer="words", columns=COLUMNS,
                          summary=SummaryConfig(n=2), progress=False), summarizer=BackendSummarizer(backend), rows=rows)


def test_rerun_takes_every_summary_from_the_cache(tmp_path):
    source = _write_source(tmp_path / "in.jsonl", _rows())
    script = tmp_path / "script.json"
    script.write_text(json.dumps(_script(_rows())))
    spec = f"scripted:script={script},call_log={tmp_path / 'calls.jsonl'}"
    config = BuildConfig(source=str(source), out=str(tmp_path / "out"), eta=8, tokenizer="words", columns=COLUMNS,
                         summarizer=spec, progress=False)
    first, second = build(config), build(config)
    assert first["counts"]["summaries_asked"] == 30 and second["counts"]["summaries_asked"] == 0
    assert second["counts"]["summaries_cached"] == 30
    assert len((tmp_path / "calls.jsonl").read_text().splitlines()) == 30


def _spawn(out: Path, source: Path, script: Path, log: Path, shard: str = "0/1", stall_at: int = 0) -> subprocess.Popen:
    code = (f"import sys; sys.path.insert(0, {str(TESTS)!r}); import test_data_build as t; "
            f"t.run_build({str(out)!r}, {str(source)!r}, {str(script)!r}, {str(log)!r}, {shard!r}, {stall_at})")
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _files(out: Path) -> dict:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.glob("*/*.parquet"))}


def _lines(path: Path) -> int:
    """Complete lines of a file that another process appends to (0 before it exists)."""
    return path.read_text(encoding="utf-8").count("\n") if path.exists() else 0


def test_sigkill_mid_build_then_rerun_is_byte_identical_and_asks_each_summary_once(tmp_path):
    rows = _rows(24)
    source = _write_source(tmp_path / "in.jsonl", rows)
    script = tmp_path / "script.json"
    script.write_text(json.dumps(_script(rows)))
    killed_log, clean_log = tmp_path / "killed.jsonl", tmp_path / "clean.jsonl"
    proc = _spawn(tmp_path / "resumed", source, script, killed_log, stall_at=21)
    cache = tmp_path / "resumed" / "cache" / "summaries-00000-of-00001.jsonl"
    # kill in a known state: 20 summaries recorded in the cache, the 21st asked and in flight (it never returns)
    deadline = time.monotonic() + 300   # bounds a hang, not the build's speed
    while not (_lines(killed_log) == 21 and _lines(cache) == 20):
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, f"not stalled: {_lines(killed_log)} asked, {_lines(cache)} cached"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _lines(killed_log) == 21 and not (tmp_path / "resumed" / "stats.json").exists()
    for out, log in ((tmp_path / "resumed", killed_log), (tmp_path / "clean", clean_log)):
        proc = _spawn(out, source, script, log)
        assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()
    assert _files(tmp_path / "resumed") == _files(tmp_path / "clean") != {}
    asked = Counter(json.loads(l)["prompt"] for l in killed_log.read_text().splitlines())
    once = Counter(json.loads(l)["prompt"] for l in clean_log.read_text().splitlines())
    assert sum(once.values()) == 60 and set(asked) == set(once)   # one summary per span (_rows)
    extra = asked - once
    assert sum(extra.values()) == 1   # exactly the request in flight at the kill is asked again; cached ones are not


def test_shards_cover_the_source_and_merge(tmp_path):
    rows = _rows(10)
    source = _write_source(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out"
    for i in range(3):
        build(BuildConfig(source=str(source), out=str(out), eta=8, tokenizer="words", columns=COLUMNS,
                          shard=(i, 3), progress=False), summarizer=lambda q, spans: f"* {q} {len(spans)}")
    whole = tmp_path / "whole"
    build(BuildConfig(source=str(source), out=str(whole), eta=8, tokenizer="words", columns=COLUMNS, progress=False),
          summarizer=lambda q, spans: f"* {q} {len(spans)}")
    key = lambda r: (r["uuid"], r["reasoning_index"])  # noqa: E731
    assert sorted(_load(out).to_list(), key=key) == sorted(_load(whole).to_list(), key=key)
    proc = subprocess.run([sys.executable, "-m", "inftythink_eval.cli", "data", "merge", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    merged = json.loads((out / "stats.json").read_text())
    assert merged["counts"] == json.loads((whole / "stats.json").read_text())["counts"]
    (out / "stats-part-1-of-3.json").unlink()
    proc = subprocess.run([sys.executable, "-m", "inftythink_eval.cli", "data", "merge", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "shards [1] of 3" in proc.stderr


def summarize_last_line(question: str, spans: list[str]) -> str:
    """A python-function summariser for the CLI test."""
    return "* " + spans[-1].splitlines()[-1]


def test_cli_builds_with_a_python_function_summarizer(tmp_path):
    source = _write_source(tmp_path / "in.jsonl", _rows(5))
    env = dict(os.environ, PYTHONPATH=f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    proc = subprocess.run([sys.executable, "-m", "inftythink_eval.cli", "data", "build", "--source", str(source),
                           "--out", str(tmp_path / "out"), "--eta", "12", "--tokenizer", "words",
                           "--question-column", "question", "--trace-column", "trace", "--conclusion-column",
                           "answer", "--segmenter", "strict", "--no-progress",
                           "--summarizer", "python:test_data_build:summarize_last_line"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "traces out 5" in proc.stdout and "tokens_per_span" in proc.stdout
    ds = _load(tmp_path / "out")
    assert {r["summary"] for r in ds if r["reasoning_index"] == 0} >= {"* Step 0 of problem 1 has some words in it."}
    bad = subprocess.run([sys.executable, "-m", "inftythink_eval.cli", "data", "build", "--source",
                          str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o2"), "--tokenizer", "words"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "does not exist" in bad.stderr


def test_summarizer_specs():
    assert parse_spec("hf:pretrained=/m,batch_size=8,trust_remote_code=true") == (
        "hf", {"pretrained": "/m", "batch_size": 8, "trust_remote_code": True})
    assert make_summarizer("none") is None
    assert make_summarizer("python:test_data_build:summarize_last_line").id == "python:test_data_build:summarize_last_line"
    with pytest.raises(ValueError, match="unknown backend 'nope'"):
        make_summarizer("nope:x=1")
    with pytest.raises(ValueError, match="expected key=value"):
        parse_spec("hf:pretrained")


class Gated(ScriptedBackend):
    """Answers nothing until ``expected`` requests are in.

    A builder that waited for one answer before asking the rest would stall here; the 120 s bound only
    ends that hang: the gate then opens for good and the answer held so long is recorded in ``early``.
    """

    def __init__(self, expected: int, **kw) -> None:
        super().__init__(**kw)
        self.expected, self.requests, self.all_in, self.early = expected, 0, threading.Event(), []

    def submit(self, request):
        answer, held = super().submit(request), Future()
        self.requests += 1
        if self.requests == self.expected:
            self.all_in.set()

        def release() -> None:
            if not self.all_in.wait(120):
                self.early.append(request.prompt)
                self.all_in.set()
            held.set_result(answer.result())

        threading.Thread(target=release, daemon=True).start()
        return held


def test_a_round_of_requests_goes_to_the_backend_at_once_and_gives_the_files_of_a_serial_run(tmp_path):
    rows = _rows(16)
    backend = Gated(expected=40, script=_script(rows))   # 40 spans (_rows): one summary request each
    report = build(BuildConfig(source="mem", out=str(tmp_path / "a"), eta=8, tokenizer="words", columns=COLUMNS,
                               progress=False), summarizer=BackendSummarizer(backend), rows=rows)
    assert report["counts"]["summaries_asked"] == 40 == backend.requests
    assert backend.early == [], "every request must be in before any answer is needed"
    serial = build(BuildConfig(source="mem", out=str(tmp_path / "b"), eta=8, tokenizer="words", columns=COLUMNS,
                               progress=False), summarizer=BackendSummarizer(ScriptedBackend(script=_script(rows))),
                   rows=rows)
    assert _files(tmp_path / "a") == _files(tmp_path / "b") and serial["counts"] == report["counts"]


def test_repeated_ids_with_different_traces_keep_their_own_summaries(tmp_path):
    rows = [{"id": "same", "question": "Q?", "answer": "A", "trace": "First thing here.\n\nSecond thing there."},
            {"id": "same", "question": "Q?", "answer": "A", "trace": "Other start now.\n\nOther end now."}]
    columns = Columns(question="question", solution=None, trace="trace", conclusion="answer", uid="id")
    build(BuildConfig(source="mem", out=str(tmp_path), eta=2, tokenizer="words", columns=columns, progress=False),
          summarizer=lambda q, spans: "* " + spans[-1], rows=rows)
    ds = _load(tmp_path)
    assert [r["summary"] for r in ds] == ["* First thing here.", "* Second thing there.",
                                          "* Other start now.", "* Other end now."]


def test_cache_cuts_a_torn_last_line_and_keeps_every_finished_record(tmp_path):
    from inftythink_eval.data.cache import SummaryCache, cache_key

    cache = SummaryCache(tmp_path, "s")
    key = cache_key("u", 0, 8, "official", "scripted:x", 0, "prompt")
    cache.put_many([(key, {"text": "* a", "finish": "stop"})])
    cache.close()
    with open(tmp_path / "s.jsonl", "a", encoding="utf-8") as handle:
        handle.write('{"k": "torn-by-a-kill", "v": {"te')          # a write interrupted by SIGKILL
    cache = SummaryCache(tmp_path, "s")
    assert cache.get(key) == {"text": "* a", "finish": "stop"} and len(cache) == 1
    other = cache_key("u", 1, 8, "official", "scripted:x", 0, "prompt")
    assert other != key != cache_key("u", 0, 8, "strict", "scripted:x", 0, "prompt")
    cache.put_many([(other, {"text": "* b", "finish": "length"})])
    cache.close()
    assert len(SummaryCache(tmp_path, "s")) == 2
    assert all(line.endswith("}") for line in (tmp_path / "s.jsonl").read_text().splitlines())


@pytest.mark.parametrize("span", ["plain", "ends with a newline\n", "\nstarts with one", "\n\nboth\n\n"])
def test_every_kind_of_instance_parses_back_to_its_exact_span(span):
    """A span's own edge newlines survive the round trip (found on a real s1K trace whose last span
    ends in "\\n"): the parser removes exactly the template's newlines, in final and middle rounds."""
    from inftythink_eval.formats.inftythink import native_prompt, native_target

    final = parse_round(native_target(span, conclusion="42"), native_prompt("q", "h"))
    middle = parse_round(native_target(span, summary="s"), native_prompt("q"))
    assert final.ok and final.think == span and final.conclusion == "42"
    assert middle.ok and middle.think == span and middle.summary == "s"
