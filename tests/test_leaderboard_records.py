"""Unit tests: statistics, record validation, the append-only store, the paper's reference rows."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import replace
from pathlib import Path

import pytest

from inftythink_eval.results import reference, stats
from inftythink_eval.results.records import Record, RecordError, benchmark_of, group_of, validate
from inftythink_eval.results.store import Store, StoreError
from test_leaderboard_fixtures import make_record

PROTOCOL = Path(__file__).resolve().parents[2] / "shared" / "PROTOCOL.md"


@pytest.mark.parametrize("k,n,low,high", [(0, 3, 0.0, 0.5615), (0, 10, 0.0, 0.2775), (5, 10, 0.2366, 0.7634),
                                          (10, 10, 0.7225, 1.0)])
def test_wilson_matches_published_values(k, n, low, high):
    lo, hi = stats.wilson(k, n)
    assert lo == pytest.approx(low, abs=1e-4) and hi == pytest.approx(high, abs=1e-4)


def test_accuracy_interval_uses_questions_when_scores_are_means():
    lo, hi = stats.accuracy_interval([0.5, 0.25, 0.75, 0.5])  # sd 0.2041 over 4 questions: se 0.1021
    assert lo == pytest.approx(0.5 - 1.96 * 0.10206, abs=1e-3) and hi == pytest.approx(0.5 + 1.96 * 0.10206, abs=1e-3)
    assert stats.accuracy_interval([1, 0, 1]) == stats.wilson(2, 3)


def test_paired_bootstrap_is_exact_on_degenerate_pairs_and_covers_the_mean():
    assert stats.paired_bootstrap([0, 0, 0], [1, 1, 1]) == (1.0, 1.0, 1.0)
    a, b = [1, 0, 1, 0, 1, 1, 0, 0, 1, 0] * 3, [1, 1, 1, 0, 1, 1, 1, 0, 1, 1] * 3
    delta, lo, hi = stats.paired_bootstrap(a, b, iters=500)
    assert delta == pytest.approx(0.3) and lo < delta < hi and -1 < lo and hi < 1
    with pytest.raises(ValueError, match="equally long"):
        stats.paired_bootstrap([1], [1, 0])


def test_drop_tolerance_shrinks_with_more_questions_and_stays_positive_at_the_edges():
    assert stats.proportion_drop_tolerance(1.0, 5, 1.0, 5, 2.576) > 0
    assert stats.proportion_drop_tolerance(0.5, 1000, 0.5, 1000, 2.576) < stats.proportion_drop_tolerance(0.5, 10, 0.5, 10, 2.576)


@pytest.mark.parametrize("task,bench,group", [("inftythink_math500", "math500", "paper"),
                                              ("inftythink_gpqa_diamond_n16", "gpqa_diamond", "paper"),
                                              ("inftythink_aime25", "aime25", "appendix"),
                                              ("lbt_aime24", "aime24", "paper"), ("synthetic_depth", "synthetic_depth", "other")])
def test_benchmark_groups(task, bench, group):
    assert benchmark_of(task) == bench and group_of(task) == group


def test_record_round_trips_through_json():
    record = make_record()
    again = Record.from_dict(json.loads(record.to_json()))
    assert again == record and again.record_id == record.record_id


@pytest.mark.parametrize("field", ["git_commit", "revision", "harness_version", "date", "task_version", "hardware"])
def test_records_without_provenance_are_refused(field):
    with pytest.raises(RecordError, match=field):
        validate(make_record(**{field: ""}))


def test_record_with_impossible_values_is_refused():
    with pytest.raises(RecordError, match="acc_ci"):
        validate(make_record(acc=0.9, acc_ci=(0.1, 0.2)))
    data = make_record().to_dict()
    del data["acc"]
    with pytest.raises(RecordError, match="missing field"):
        Record.from_dict(data)


def test_store_is_append_only_and_all_or_nothing(tmp_path):
    store = Store(tmp_path / "results")
    first = make_record()
    report = store.add([first])
    assert len(report.added) == 1 and store.load() == [first]
    assert store.add([first]).added == ()  # re-adding the same run is a no-op
    before = {p.name: p.read_bytes() for p in store.paths()}
    tampered = replace(first, acc=0.2, acc_ci=(0.1, 0.3))  # same run id, different content
    other = make_record(task="inftythink_aime24")
    with pytest.raises(StoreError, match="append-only"):
        store.add([other, tampered])
    assert {p.name: p.read_bytes() for p in store.paths()} == before  # nothing written, not even `other`
    assert not list((tmp_path / "results").glob(".tmp-*"))


def test_store_reports_a_corrupt_stored_file(tmp_path):
    store = Store(tmp_path)
    store.add([make_record()])
    store.paths()[0].write_text("{ half")
    with pytest.raises(RecordError, match="not readable JSON"):
        store.load()


def test_reference_rows_match_protocol_and_are_marked_reported():
    rows = reference.load()
    assert rows and all(r.kind == "reported" and r.citation for r in rows)
    assert any(not r.verified for r in rows) and all("UNVERIFIED" in r.citation for r in rows if not r.verified)
    if not PROTOCOL.is_file():
        pytest.skip(f"{PROTOCOL} is not on this machine; the JSON copy cannot be cross-checked")
    parsed = reference.parse_protocol_table(PROTOCOL.read_text(), citation="")
    main = [r for r in rows if r.eta is None and r.verified and r.paper == "InftyThink"]
    assert len(parsed) == 30 and [(p.model, p.method, p.benchmark, p.acc, p.tok, p.tps) for p in parsed] == \
        [(r.model, r.method, r.benchmark, r.acc, r.tok, r.tps) for r in main]


def test_plus_reference_rows_match_protocol_plus():
    """InftyThink+ rows (R1-Distill-Qwen-1.5B table and Qwen3-4B-Base lines) equal PROTOCOL_PLUS.md's numbers."""
    plus = [r for r in reference.load() if r.paper == "InftyThink+"]
    assert len(plus) == 40 and all(r.tps is None and r.lat and r.verified for r in plus)
    t = {(r.model, r.method, r.benchmark): (r.acc, r.tok, r.lat) for r in plus}
    assert t["DeepSeek-R1-Distill-Qwen-1.5B", "InftyThink+ RL-T", "math500"] == (0.9156, 6100.0, 34.26)
    assert t["Qwen3-4B-Base", "InftyThink+ RL-TE", "gpqa_diamond"] == (0.4817, 7580.0, 156.09)
    source = PROTOCOL.with_name("PROTOCOL_PLUS.md")
    if not source.is_file():
        pytest.skip(f"{source} is not on this machine; the JSON copy cannot be cross-checked")
    parsed = reference.parse_plus_protocol(source.read_text())
    assert [dataclasses.astuple(p) for p in parsed] == [dataclasses.astuple(r) for r in plus]


def test_run_sidecar_is_the_latest_started_not_after_the_results(tmp_path):
    from inftythink_eval.results.sidecars import run_sidecar, traces_sidecar

    for stamp, started in (("2026-01-01T10-00-00.0", "2026-01-01T10:00:00"), ("2026-01-01T11-00-00.0", "2026-01-01T11:00:00"),
                           ("2026-01-01T13-00-00.0", "2026-01-01T13:00:00")):
        (tmp_path / f"inftythink_run_{stamp}.json").write_text(json.dumps({"started_at": started, "mode": stamp[11:13]}))
        (tmp_path / f"inftythink_traces_{stamp}.jsonl").write_text("")
    results = tmp_path / "results_2026-01-01T12-00-00.5.json"
    path, run = run_sidecar(results)
    assert run["mode"] == "11" and traces_sidecar(results, path).name == "inftythink_traces_2026-01-01T11-00-00.0.jsonl"
    assert run_sidecar(tmp_path / "results_2026-01-01T09-00-00.0.json") == (None, {})


def test_committed_store_is_valid_and_rendered():
    root = Path(__file__).resolve().parents[1] / "leaderboard"
    records = Store(root / "results").load()  # every stored file validates (provenance included)
    assert records, "leaderboard/results/ holds no records"
    rendered = (root / "LEADERBOARD.md").read_text(encoding="utf-8")
    missing = [r.record_id for r in records if r.record_id not in rendered]
    assert not missing, f"run `inftythink leaderboard render`: LEADERBOARD.md lacks {missing}"
    stored = {r.record_id for r in records}
    baselines = [Record.from_dict(json.loads(p.read_text()), str(p)) for p in (root / "baselines").rglob("*.json")]
    assert baselines and all(b.record_id in stored for b in baselines)
