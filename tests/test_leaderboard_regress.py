"""``inftythink regress``: noise-based gates, and the real CLI on scripted lm-eval runs."""

from __future__ import annotations

import shutil
import subprocess
import sys

from inftythink_eval.backends.scripted import word_tokens
from inftythink_eval.results.ingest import import_path
from inftythink_eval.results.regress import Gates, check
from inftythink_eval.results.store import Store
from test_leaderboard_fixtures import REPO, make_record, round_outputs, scripted_degraded, scripted_two_modes, task_dir


def verdicts(base, fresh, gates=Gates()):
    return {line.metric: line.verdict for line in check(base, fresh, gates)}


def test_accuracy_drop_beyond_binomial_noise_is_a_regression():
    base = make_record(acc=0.6, n=200)
    assert verdicts(base, make_record(acc=0.45, n=200))["ACC"] == "REGRESSION"  # 15 points at n=200: z ~ 3
    assert verdicts(base, make_record(acc=0.55, n=200))["ACC"] == "ok"          # 5 points: noise
    assert verdicts(make_record(acc=0.6, n=10), make_record(acc=0.45, n=10))["ACC"] == "ok"  # n=10 cannot tell
    assert verdicts(base, make_record(acc=0.9, n=200))["ACC"] == "ok"           # gains never fail


def test_token_blow_up_and_broken_iteration_are_regressions_latency_is_not_gated():
    base = make_record()
    assert verdicts(base, make_record(tok=1300.0))["TOK"] == "REGRESSION"
    assert verdicts(base, make_record(tok=1050.0))["TOK"] == "ok"
    assert verdicts(base, make_record(tok=500.0))["TOK"] == "ok"                # fewer tokens is not a regression
    assert verdicts(base, make_record(rounds=1.0))["rounds"] == "REGRESSION"    # the iteration stopped iterating
    slow = verdicts(base, make_record(lat=50.0))
    assert slow["LAT s"] == "info" and "REGRESSION" not in slow.values()
    assert verdicts(base, make_record(tok=1300.0), Gates(tok_rel=0.5))["TOK"] == "ok"


def test_runs_that_are_not_comparable_fail():
    lines = check(make_record(), make_record(task_version="2"))
    assert [l.verdict for l in lines] == ["INCOMPARABLE"] and "task_version" in lines[0].change


def regress(*args):
    return subprocess.run([sys.executable, "-m", "inftythink_eval.cli", "regress", *map(str, args)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)


def baseline_dir(tmp_path):
    """The stored inftythink records of the good scripted run: the baseline."""
    store = Store(tmp_path / "baseline")
    store.add(r for r in import_path(scripted_two_modes()) if r.mode == "inftythink")
    assert len(store.paths()) == 2
    return store.root


def test_regress_cli_flags_an_accuracy_drop_and_a_token_blow_up(tmp_path):
    result = regress("--baseline", baseline_dir(tmp_path), "--fresh", scripted_degraded())
    assert result.returncode == 1, result.stdout + result.stderr
    report = result.stdout
    sections = {part.split()[0]: part for part in report.split("scripted-good · inftythink · lbt_")[1:]}
    math, aime = sections["math500"], sections["aime24"]
    acc_math = next(l for l in math.splitlines() if l.strip().startswith("ACC"))
    tok_aime = next(l for l in aime.splitlines() if l.strip().startswith("TOK"))
    assert "100.0%" in acc_math and "0.0%" in acc_math and "REGRESSION" in acc_math
    # 412 vs 52 word tokens: the summary and final rounds with 200 thinking words, then with 20
    assert [sum(len(word_tokens(o)) for o in round_outputs("5", n)) for n in (200, 20)] == [412, 52]
    assert "+692.3%" in tok_aime and "REGRESSION" in tok_aime
    assert "RESULT: FAIL: 2 regression(s) in 2 comparison(s)" in report


def test_regress_cli_reruns_the_baseline_and_passes_an_unchanged_run(tmp_path):
    result = regress("--baseline", baseline_dir(tmp_path), "--include_path", task_dir(),
                     "--output_path", tmp_path / "rerun")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "RESULT: PASS: 0 regression(s) in 2 comparison(s)" in result.stdout
    assert "$ lm_eval --model inftythink" in result.stderr  # it really ran lm-eval again
    assert list((tmp_path / "rerun").rglob("results_*.json"))


def test_regress_cli_bad_baseline_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    result = regress("--baseline", tmp_path / "empty", "--fresh", tmp_path / "empty")
    assert result.returncode == 2 and "no records found" in result.stderr
    shutil.rmtree(tmp_path / "empty")


def test_baselines_load_from_records_model_folders_and_results_files(tmp_path):
    from inftythink_eval.results.regress import load_records

    out = scripted_two_modes()
    model_folder = next(p for p in out.iterdir() if p.is_dir())  # holds results, samples and sidecars side by side
    results = sorted(model_folder.glob("results_*.json"))[0]
    assert len(load_records(out)) == len(load_records(model_folder)) == 4 and len(load_records(results)) == 2
    assert len(load_records(baseline_dir(tmp_path))) == 2
