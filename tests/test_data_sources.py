"""Sources: local formats, column options, OpenR1 shapes, and bad input counted as drops or clear errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from inftythink_eval.data import PRESETS, BuildConfig, Columns, SourceError, build
from inftythink_eval.data.cli import add_arguments, config_from_args
from inftythink_eval.data.sources import Drop, Trace, read_rows, to_traces

DATA = Path(os.environ.get("INFTYTHINK_DATA_DIR", "/work/shared/data"))
THINK = "<think>\nFirst I add.\n\nThen I check.\n</think>The answer is 4."


def _jsonl(path: Path, lines: list) -> Path:
    with open(path, "wb") as handle:
        for line in lines:
            handle.write(line if isinstance(line, bytes) else (json.dumps(line) + "\n").encode())
    return path


def test_openr1_messages_and_generations_shapes():
    row = {"problem": "2+2?", "uuid": "r1",
           "messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": THINK}],
           "generations": [THINK, "no tags here", THINK], "correctness_math_verify": [True, True, False]}
    (trace,) = to_traces(row, PRESETS["openr1"])
    assert trace == Trace("r1", "2+2?", "First I add.\n\nThen I check.", "The answer is 4.")
    items = to_traces(row, PRESETS["openr1-generations"])
    assert items[0] == Trace("r1-g0", "2+2?", "First I add.\n\nThen I check.", "The answer is 4.")
    assert items[1] == Drop("no_think_tags", "r1-g1")
    assert items[2] == Drop("incorrect_generation", "r1-g2")


def test_s1k_parquet_with_trace_and_conclusion_columns():
    rows = list(read_rows(DATA / "reasoning_traces" / "s1k_head5.parquet"))
    traces = [t for r in rows for t in to_traces(r, PRESETS["s1k"])]
    assert len(traces) == 5 and all(isinstance(t, Trace) and len(t.trace) > 5000 for t in traces)
    assert len({t.uid for t in traces}) == 5


def test_bad_lines_are_counted_as_drops_with_reasons(tmp_path):
    source = _jsonl(tmp_path / "in.jsonl", [
        {"question": "Q1", "solution": THINK},
        b"\xff\xfe not utf-8 at all\n",
        b"{not json\n",
        {"question": "Q2", "solution": "no think tags"},
        {"question": "Q3", "solution": "<think>\n   \n</think>x"},
        {"question": "Q4"},
        {"question": "", "solution": THINK},
        {"question": "Q5", "solution": THINK.replace("4", "5")},
    ])
    report = build(BuildConfig(source=str(source), out=str(tmp_path / "out"), eta=3, tokenizer="words",
                               columns=Columns(question="question"), progress=False),
                   summarizer=lambda q, spans: f"* {len(spans)} spans of {q}")
    assert report["counts"]["rows_in"] == 8 and report["counts"]["traces_out"] == 2
    assert report["drops"] == {"bad_json": 1, "empty_question": 1, "empty_trace": 1,
                               "missing_column:solution": 1, "no_think_tags": 1, "non_utf8_line": 1}
    assert "non_utf8_line 1" in (tmp_path / "out" / "stats.txt").read_text()


def test_missing_column_in_the_first_row_is_a_clear_error(tmp_path):
    source = _jsonl(tmp_path / "in.jsonl", [{"prompt": "Q", "answer": THINK}])
    with pytest.raises(SourceError, match=r"no column 'problem'.*available columns: answer, prompt.*--question-column"):
        build(BuildConfig(source=str(source), out=str(tmp_path / "o"), tokenizer="words", progress=False))


def test_parquet_schema_without_the_column_is_a_clear_error(tmp_path):
    pq.write_table(pa.table({"question": ["Q"], "text": ["T"]}), tmp_path / "x.parquet")
    with pytest.raises(SourceError, match="no column 'solution'"):
        build(BuildConfig(source=str(tmp_path / "x.parquet"), out=str(tmp_path / "o"), tokenizer="words",
                          columns=Columns(question="question"), progress=False))


def test_whole_input_unusable_is_an_error(tmp_path):
    source = _jsonl(tmp_path / "in.jsonl", [b"\xff\xff\n", b"\xfe\n"])
    with pytest.raises(SourceError, match="no row could be read"):
        build(BuildConfig(source=str(source), out=str(tmp_path / "o"), tokenizer="words", progress=False))
    source = _jsonl(tmp_path / "in2.jsonl", [{"problem": "Q", "solution": "plain, no think"}])
    with pytest.raises(SourceError, match="no trace survived.*no_think_tags"):
        build(BuildConfig(source=str(source), out=str(tmp_path / "o2"), tokenizer="words", progress=False),
              summarizer=lambda q, s: "* s")


def test_missing_source_file_and_bad_options_say_what_to_do(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        list(read_rows(str(tmp_path / "nope.jsonl")))
    with pytest.raises(ValueError, match="exactly one of solution="):
        Columns(question="q", solution="s", trace="t")
    with pytest.raises(ValueError, match="segmenter must be one of official, strict"):
        BuildConfig(source="x", out="y", segmenter="greedy")
    with pytest.raises(ValueError, match="shard must be i/N"):
        BuildConfig(source="x", out="y", shard=(3, 2))


def test_folder_source_reads_every_file_in_order(tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    _jsonl(folder / "a.jsonl", [{"problem": "Q1", "solution": THINK}])
    pq.write_table(pa.table({"problem": ["Q2"], "solution": [THINK]}), folder / "b.parquet")
    assert [r["problem"] for r in read_rows(str(folder))] == ["Q1", "Q2"]


def test_cli_flags_become_one_config():
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["build", "--source", "s.jsonl", "--out", "o", "--trace-column", "t",
                              "--conclusion-column", "a", "--question-column", "q", "--shard", "1/3",
                              "--summary-n", "2", "--eta", "512", "--segmenter", "strict"])
    config = config_from_args(args)
    assert config.columns == Columns(question="q", solution=None, trace="t", conclusion="a")
    assert config.shard == (1, 3) and config.summary.n == 2 and config.summary.temperature == 0.5
    assert config.eta == 512 and config.segmenter == "strict"


def test_unreachable_hub_id_is_a_clear_error(tmp_path):
    import subprocess
    import sys

    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-m", "inftythink_eval.cli", "data", "build", "--source",
                           "open-r1/OpenR1-Math-220k", "--preset", "openr1", "--out", str(tmp_path), "--tokenizer",
                           "words", "--no-progress"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2
    assert "cannot load hub dataset 'open-r1/OpenR1-Math-220k'" in proc.stderr and "local .jsonl/.parquet" in proc.stderr
