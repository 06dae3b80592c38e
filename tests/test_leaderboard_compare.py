"""``inftythink compare`` on the real small model (SmolLM2-135M, hf backend): both modes printed and stored."""

from __future__ import annotations

import subprocess
import sys

import pytest

from inftythink_eval.results.compare import paired_acc, table
from inftythink_eval.results.ingest import import_path
from inftythink_eval.results.store import Store
from test_leaderboard_fixtures import REPO, make_record, real_compare
from test_leaderboard_import import assert_complete


@pytest.mark.slow  # SmolLM2 in two modes, ~45 s: .ci/run's slow step
def test_compare_on_the_real_model_prints_both_modes_and_stores_both_runs():
    proc, out, store = real_compare()
    text = proc.stdout
    for task in ("inftythink_math500", "inftythink_aime24"):
        section = text.split(task + "  (")[1].split("\n\n")[0]
        header = section.splitlines()[1].split()
        assert header[:3] == ["metric", "vanilla", "summarize"] and "summarize−vanilla" in section
        for metric in ("ACC %", "TOK", "LAT s", "rounds", "peak ctx"):
            assert metric in section
    stored = Store(store).load()
    assert sorted((r.mode, r.task) for r in stored) == sorted(
        (m, t) for m in ("vanilla", "summarize") for t in ("inftythink_math500", "inftythink_aime24"))
    assert "store: 4 record(s) added" in text
    for record in stored:  # real lm-eval outputs of a real model, two modes, two tasks: every field filled
        assert_complete(record)
        assert record.model == "smollm2-135m-instruct" and record.engine.startswith("hf")
        (sample,) = record.samples   # --limit 1: the record's means are this sample's values
        assert (record.tok, record.lat, record.rounds) == (sample["tok"], sample["lat"], sample["rounds"])
        assert sample["tok"] >= 1 and sample["lat"] > 0
        if record.mode == "vanilla":   # one generation of at most max_gen_toks=20
            assert record.rounds == 1 and record.tok <= 20 and record.mode_params == {}
        else:                          # max_rounds=2 (REAL_ARGS), as the run recorded it
            assert 1 <= record.rounds <= 2 and record.mode_params["max_rounds"] == 2
    assert {r.record_id for r in stored} == {r.record_id for r in import_path(out)}  # the store holds exactly these runs


def test_compare_table_and_paired_interval_on_known_records():
    base = make_record(mode="vanilla", acc=0.5, n=20)
    better = make_record(acc=1.0, n=20, tok=2000.0)
    delta, lo, hi = paired_acc(base, better, iters=500)
    assert delta == 0.5 and 0.2 < lo <= 0.5 <= hi <= 0.8
    text = table("inftythink_math500", [base, better], iters=500)
    assert "vanilla" in text and "+50.0 [" in text and "+100%" in text


def test_compare_refuses_bad_modes():
    proc = subprocess.run([sys.executable, "-m", "inftythink_eval.cli", "compare", "--model_args", "pretrained=x",
                           "--tasks", "t", "--modes", "vanilla"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2 and "at least two different modes" in proc.stderr


def test_with_mode_replaces_the_mode_and_refuses_malformed_text():
    from inftythink_eval.results.lmeval_run import LmEvalRun, with_mode

    assert with_mode("pretrained=x, mode=vanilla ,backend=hf", "summarize") == "pretrained=x,backend=hf,mode=summarize"
    with pytest.raises(ValueError, match="--model_args: expected pretrained=.*got 'backend'"):
        with_mode("pretrained=x,backend", "vanilla")
    run = LmEvalRun(model="inftythink", model_args="a=1", tasks="t", output_path="o", gen_kwargs={"max_gen_toks": 8, "top_p": 0.9})
    assert run.argv()[run.argv().index("--gen_kwargs") + 1] == "max_gen_toks=8,top_p=0.9"


@pytest.mark.parametrize("flags, message", [
    (["--model_args", "pretrained=x,mode=vanilla"], "must not set mode="),
    (["--model_args", "pretrained=x,backend"], "--model_args: expected pretrained=zoo:smollm2-135m-instruct,backend=hf, got 'backend'"),
    (["--model_args", "pretrained=x", "--gen_kwargs", "max_gen_toks"], "--gen_kwargs: expected max_gen_toks=256"),
    (["--model_args", "pretrained=x", "--gen_kwargs", "max_gen_toks=8,max_gen_toks=9"], "max_gen_toks is given twice")])
def test_compare_refuses_malformed_key_value_text_before_running_anything(flags, message):
    proc = subprocess.run([sys.executable, "-m", "inftythink_eval.cli", "compare", "--tasks", "t", *flags],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
