"""Importing real lm-eval output folders (``--model inftythink``, scripted backend) into the store."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import fields

import pytest

from inftythink_eval.backends.scripted import word_tokens
from inftythink_eval.results.ingest import import_path
from inftythink_eval.results.records import Record
from inftythink_eval.results.sidecars import IngestError
from test_leaderboard_fixtures import REPO, copy_of, round_outputs, scripted_two_modes

OPTIONAL_EMPTY = {"limit", "concurrency", "throughput", "pass_at_k", "maj_at_k", "seeds", "format_fail", "truncated",
                  "inftythink_version", "mode_params"}   # mode_params: a mode records only its own (vanilla has none)


def cli(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "inftythink_eval.cli", "leaderboard", *map(str, args)],
                          cwd=cwd, capture_output=True, text=True, timeout=300)


def snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*"))} if folder.exists() else {}


def assert_complete(record: Record):
    """Every field of a record imported from an inftythink run is filled."""
    for f in fields(Record):
        value = getattr(record, f.name)
        if f.name not in OPTIONAL_EMPTY:
            assert value not in (None, "", {}, [], ()), f"{record.key}: {f.name} is empty"
    assert record.revision.startswith("sha256:") and len(record.git_commit) >= 7
    assert record.harness_version == "0.4.13" and record.date.endswith("Z")
    assert len(record.samples) == record.n_questions and record.source["sha256"]


def test_scripted_runs_import_with_every_field_and_exact_counts():
    records = {(r.mode, r.task): r for r in import_path(scripted_two_modes())}
    assert set(records) == {(m, t) for m in ("vanilla", "inftythink") for t in ("lbt_math500", "lbt_aime24")}
    for record in records.values():
        assert_complete(record)
        assert record.acc == 1.0 and record.n_questions == 4 and record.samples_per_question == 1
        assert record.model == "scripted-good" and record.engine.startswith("scripted")
    # TOK in the scripted backend's word tokens: vanilla "<think> step*20 </think>The answer is N." = 25; the
    # native summary round adds 27 (counted by hand, and here by that tokenizer on the script's own outputs)
    summary, final = round_outputs("5", 20)
    assert (len(word_tokens(final)), len(word_tokens(summary))) == (25, 27)
    assert records["vanilla", "lbt_aime24"].tok == 25 and records["inftythink", "lbt_aime24"].tok == 52
    assert records["vanilla", "lbt_aime24"].rounds == 1 and records["inftythink", "lbt_aime24"].rounds == 2
    native = records["inftythink", "lbt_aime24"]
    assert native.rounds_hist == [{"rounds": 2, "n": 4, "correct": 4.0}]
    assert [c[0] for c in native.sawtooth["calls"]] == ["reason", "reason"] and native.sawtooth["doc_id"] == 0
    assert native.mode_params["max_rounds"] == 10 and records["vanilla", "lbt_aime24"].mode_params == {}  # vanilla has no parameters


def test_import_cli_then_reimport_is_a_no_op(tmp_path):
    store = tmp_path / "results"
    first = cli("--store", store, "import", scripted_two_modes())
    assert first.returncode == 0, first.stderr
    assert "4 record(s) added" in first.stdout and len(list(store.glob("*.json"))) == 4
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in store.glob("*.json")}
    again = cli("--store", store, "import", scripted_two_modes())
    assert again.returncode == 0 and "0 record(s) added, 4 already stored" in again.stdout
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in store.glob("*.json")} == before


def _break_results(folder, how):
    results = sorted(folder.rglob("results_*.json"))[-1]
    if how == "truncated":
        text = results.read_text()
        results.write_text(text[: len(text) // 2])
    elif how == "partial":
        data = json.loads(results.read_text())
        del data["results"]
        results.write_text(json.dumps(data))
    elif how == "no-samples":
        for path in folder.rglob("samples_lbt_aime24_*.jsonl"):
            path.unlink()
    elif how == "corrupt-samples":
        path = sorted(folder.rglob("samples_lbt_aime24_*.jsonl"))[-1]
        path.write_text(path.read_text()[:-40])
    elif how == "no-provenance":
        for run in folder.rglob("inftythink_run_*.json"):
            data = json.loads(run.read_text())
            data["git_commit"] = None
            run.write_text(json.dumps(data))
        for res in folder.rglob("results_*.json"):
            data = json.loads(res.read_text())
            data["git_hash"] = None
            res.write_text(json.dumps(data))


@pytest.mark.parametrize("how,message", [("truncated", "not readable JSON"), ("partial", "'results' section is missing"),
                                         ("no-samples", "--log_samples"), ("corrupt-samples", "not a JSON line"),
                                         ("no-provenance", "git_commit is empty")])
def test_bad_input_is_a_clear_error_and_leaves_the_store_untouched(tmp_path, how, message):
    store = tmp_path / "results"
    good = scripted_two_modes()
    (tmp_path / "bad").mkdir()
    bad = copy_of(good, tmp_path / "bad")
    _break_results(bad, how)
    with pytest.raises((IngestError, ValueError), match=message.replace("'", ".")):
        import_path(bad)
    assert cli("--store", store, "import", good).returncode == 0  # a store that already holds runs
    before = snapshot(store)
    result = cli("--store", store, "import", bad, good)  # the good folder must not be half-imported either
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert snapshot(store) == before and not list(store.glob(".tmp-*"))


def test_inftythink_run_without_its_sidecar_is_refused(tmp_path):
    bad = copy_of(scripted_two_modes(), tmp_path)
    for run in bad.rglob("inftythink_run_*.json"):
        run.unlink()
    with pytest.raises(IngestError, match="no inftythink_run_"):
        import_path(bad)


def test_model_args_of_a_results_file_are_read_as_lm_eval_read_them():
    from inftythink_eval.results.ingest import _model_args

    assert _model_args("pretrained=x, backend=hf,mode=summarize,eta=8") == {
        "pretrained": "x", "backend": "hf", "mode": "summarize", "eta": "8"}
    # lm-eval accepted a bare key and a repeated key: old results files holding them still import
    assert _model_args("pretrained=x,trust_remote_code,mode=a,mode=b,k=a=b") == {"pretrained": "x", "mode": "b", "k": "a=b"}
    assert _model_args({"pretrained": "x"}) == {"pretrained": "x"} and _model_args(None) == {}
