"""Rendering: LEADERBOARD.md holds every record; index.html loads in real headless Chromium without script errors."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import sys

import pytest

from inftythink_eval.results import plots
from inftythink_eval.results.ingest import import_path
from inftythink_eval.results.render import markdown, mode_params_text, model_text, table_rows
from inftythink_eval.results.write import render_all
from inftythink_eval.results import reference
from test_leaderboard_fixtures import REPO, scripted_degraded, scripted_two_modes

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def records():
    return import_path(scripted_two_modes()) + import_path(scripted_degraded())


def test_markdown_has_every_record_groups_deltas_and_reported_rows(records):
    text = markdown(records, reference.load())
    for record in records:
        assert record.record_id in text, record.key
    assert "## Paper benchmarks" in text and "### lbt_math500" in text and "### lbt_aime24" in text
    aime = text.split("### lbt_aime24")[1].split("###")[0]
    aime_native = next(line for line in aime.splitlines() if line.startswith("| scripted-good") and "| inftythink |" in line)
    assert "+108%" in aime_native  # TOK 52 vs the vanilla 25 of the same model and task
    assert "## Reported in the papers (not measured here)" in text and "80.8" in text and "UNVERIFIED" in text
    plus_aime = text.split("### aime24 (reported)")[1].split("###")[0]
    assert "| InftyThink+ | DeepSeek-R1-Distill-Qwen-1.5B | InftyThink+ RL-T | 6000 | 50.9 | +24.3 |" in plus_aime


def test_mode_params_come_from_the_sidecar_and_the_modes_declarations(records):
    """No hand-kept list: key parameters and non-defaults of the record's own mode, as its run recorded them."""
    native = next(r for r in records if r.mode == "inftythink")
    assert set(native.mode_params) == {"max_rounds", "round_tokens", "retry", "max_retries", "user_role", "assistant_role"}
    assert mode_params_text(native) == f"max_rounds={native.mode_params['max_rounds']} round_tokens={native.mode_params['round_tokens']}"
    retried = dataclasses.replace(native, mode_params={**native.mode_params, "retry": True})
    assert mode_params_text(retried).endswith("retry=True")
    plugin = dataclasses.replace(native, mode="someone_elses_mode", mode_params={"b": 2, "a": 1})
    assert mode_params_text(plugin) == "a=1 b=2"
    assert mode_params_text(dataclasses.replace(native, mode="vanilla")) == ""  # a registered mode shows only its own
    assert mode_params_text(dataclasses.replace(native, mode="delethink", mode_params={"chunk": 64, "carryover": 32,
                                                                                     "keep_head": 100, "max_chunks": 3})) \
        == "chunk=64 carryover=32 max_chunks=3"


def test_limit_runs_are_labelled_ci_baselines(records):
    full = dataclasses.replace(records[0], limit=None)
    assert model_text(full) == full.model
    assert model_text(dataclasses.replace(full, limit=3)) == f"{full.model} [CI baseline: --limit 3, not a result]"


def test_depth_curve_draws_acc_and_tok_by_depth(records):
    base = records[0]
    curve = [dataclasses.replace(base, task=f"inftythink_synthetic_d{d}", acc=a, tok=t, mode=m)
             for m, points in (("inftythink", ((4, 1.0, 78), (24, 1.0, 472))), ("vanilla", ((4, 1.0, 70), (24, 0.0, 230))))
             for d, a, t in points]
    assert plots.depth_of("inftythink_synthetic_d170") == 170 and plots.depth_of("inftythink_math500_n32") is None
    svg = plots.depth_curve(curve + records)
    assert svg.startswith("<svg") and "ACC by depth" in svg and f"{base.model} · vanilla" in svg
    assert plots.depth_curve(records) is None  # no depth task: the page says so
    assert [plots.marker(m) for m in ("vanilla", "inftythink", "summarize", "delethink")] == ["o", "s", "^", "D"]


def test_plots_draw_every_record_they_are_given(records):
    """Every plot of the page names each record it draws (its SVG keeps text as text); the depth curve has no
    depth task here (test_depth_curve_draws_acc_and_tok_by_depth)."""
    assert set(plots.PLOTS) == {"depth-curve", "acc-vs-tok", "frontier", "accuracy-by-round", "sawtooth", "distributions"}
    texts = {name: set(re.findall(r"<text[^>]*>([^<]*)</text>", draw(records) or ""))
             for name, (_title, draw) in plots.PLOTS.items()}
    by_task = {f"{r.model} · {r.mode} · {r.task}" for r in records}
    assert texts["acc-vs-tok"] >= {f"{r.model} · {r.mode}" for r in records} | {r.task for r in records}
    assert texts["accuracy-by-round"] >= by_task and texts["distributions"] >= by_task
    # the frontier: one panel per task of the model with two settings (vanilla and inftythink), a line per mode
    two = {(r.task, r.model) for r in records if r.model == "scripted-good"}
    assert texts["frontier"] >= {f"{task} · {model}" for task, model in two} | {"vanilla", "inftythink", "Pareto (ACC vs TOK)"}
    assert not any("scripted-bad" in t for t in texts["frontier"])  # one setting only: no frontier
    pair = plots.sawtooth_pair(records)
    assert [r.mode for r in pair] == ["vanilla", "inftythink"] and pair[0].task == pair[1].task
    assert texts["sawtooth"] >= {f"Sawtooth: one sample of {pair[-1].task}, {pair[-1].model}",
                                 *(f"{r.mode} (doc {r.sawtooth['doc_id']})" for r in pair)}
    assert texts["depth-curve"] == set()
    untraced = [dataclasses.replace(r, sawtooth={}) for r in records]
    assert plots.sawtooth(untraced) is None  # no traces: the page says so instead


def _depth_records(base):
    """A tiny iterative model and its vanilla twin on three depths (made up numbers), and a CI-baseline row."""
    made = [dataclasses.replace(base, model=model, mode=mode, task=f"inftythink_synthetic_d{d}", acc=acc, tok=tok,
                                limit=None)
            for model, mode, points in (("tiny-it", "inftythink", ((4, 1.0, 78), (24, 1.0, 472), (170, 0.75, 3555))),
                                        ("tiny-van", "vanilla", ((4, 1.0, 70), (24, 0.25, 230), (170, 0.0, 250))))
            for d, acc, tok in points]
    return made + [dataclasses.replace(made[0], model="smol", mode="vanilla", acc=0.0, limit=2)]


def test_depths_sort_by_number_and_an_iterative_model_is_compared_with_its_vanilla_twin(records):
    def depth_tasks(twin_of):
        (tasks,) = [t for t in table_rows(_depth_records(records[0]), twin_of).values()
                    if "inftythink_synthetic_d4" in t]
        return tasks

    tasks = depth_tasks({"tiny-it": "tiny-van"})
    assert list(tasks) == ["inftythink_synthetic_d4", "inftythink_synthetic_d24", "inftythink_synthetic_d170"]
    budgeted = dataclasses.replace(records[0], lm_eval_args={**records[0].lm_eval_args, "gen_kwargs": {"max_gen_toks": 64}})
    (row,) = [r for t in table_rows([budgeted], twin_of={}).values() for rows in t.values() for r in rows]
    assert row["params"].endswith("max_gen_toks=64")   # a sweep's vanilla budgets tell their rows apart
    d24 = {row["model"]: row for row in tasks["inftythink_synthetic_d24"]}
    assert d24["tiny-it"]["ΔACC"] == "+75.0 twin" and d24["tiny-it"]["ΔTOK"] == "+105% twin"
    assert d24["tiny-van"]["ΔACC"] == ""                       # the twin itself is the baseline
    alone = depth_tasks({})["inftythink_synthetic_d24"]   # no twin declared: no Δ for the iterative model
    assert next(r for r in alone if r["model"] == "tiny-it")["ΔACC"] == ""
    d4 = [row["model"] for row in tasks["inftythink_synthetic_d4"]]
    assert d4[-1].startswith("smol [CI baseline")              # pipeline checks after the results


def test_the_depth_curve_follows_the_setting_measured_at_the_most_depths(records):
    """A sweep's later points at a few depths (another budget) do not replace the curve run's records."""
    base = dataclasses.replace(records[0], model="tiny", mode="vanilla", limit=None, date="2026-01-01T00:00:00")
    curve = [dataclasses.replace(base, task=f"inftythink_synthetic_d{d}", acc=1.0) for d in (4, 8, 24, 48)]
    swept = [dataclasses.replace(base, task=f"inftythink_synthetic_d{d}", acc=0.0, date="2026-02-01T00:00:00",
                                 lm_eval_args={**base.lm_eval_args, "gen_kwargs": {"max_gen_toks": 64}})
             for d in (8, 24)]
    (line,) = plots.depth_lines(curve + swept).values()
    assert sorted(line) == [4, 8, 24, 48] and all(r.acc == 1.0 for r in line.values())


def test_the_zoo_declares_the_tiny_models_twin():
    from inftythink_eval.checkpoints.cards import vanilla_twins

    assert vanilla_twins() == {"tiny-synthetic-inftythink": "tiny-synthetic-vanilla",
                               "tiny-synthetic-inftythink-plus": "tiny-synthetic-vanilla"}


def test_acc_vs_tok_lists_every_model_in_its_legend_and_leaves_depths_to_the_depth_curve(records):
    one_each = [dataclasses.replace(records[0], model="only-in-a", task="lbt_a"),
                dataclasses.replace(records[0], model="only-in-b", task="lbt_b")]
    texts = set(re.findall(r"<text[^>]*>([^<]*)</text>", plots.acc_vs_tok(one_each + _depth_records(records[0]))))
    assert {f"only-in-a · {records[0].mode}", f"only-in-b · {records[0].mode}"} <= texts
    assert not any("synthetic_d" in t for t in texts)


def chromium(url, tmp_path):
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
           "--enable-logging=stderr", "--v=0", "--virtual-time-budget=3000", "--dump-dom", url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    errors = [l for l in proc.stderr.splitlines() if "CONSOLE" in l and re.search(r"Uncaught|Error", l)]
    return proc.stdout, errors


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed: apt-get install -y chromium")
def test_page_loads_in_headless_chromium_and_shows_every_record(records, tmp_path):
    broken = tmp_path / "broken.html"
    broken.write_text("<html><body><script>notDefined();</script></body></html>")
    assert chromium(broken.as_uri(), tmp_path)[1], "the console-error detector must see a broken page"

    _md, page = render_all(records, tmp_path / "site")
    dom, errors = chromium(page.as_uri(), tmp_path)
    assert errors == []
    assert 'data-ready="yes"' in dom  # the page script ran to its end
    shown = set(re.findall(r'<tr class="record" data-id="([0-9a-f]+)"', dom))
    assert shown == {r.record_id for r in records}
    assert re.search(rf'id="shown">{len(records)}<', dom)
    assert dom.count("<svg") >= 4 and "Reported in the papers" in dom
    frontier = dom.split('<section class="plot" id="frontier">')[1].split("</section>")[0]
    assert "<svg" in frontier and "lbt_math500 · scripted-good" in frontier and "Pareto (ACC vs TOK)" in frontier
    assert '<h2 id="frontiers">Frontiers</h2>' in dom and "<h3>lbt_aime24 · scripted-good</h3>" in dom
    # a visitor meets the depth curve first, then the frontiers, then every record
    order = [dom.index(mark) for mark in ('id="depth-curve"', 'id="frontiers"', 'id="frontier"', 'id="records"',
                                          'class="record"', "Reported in the papers")]
    assert order == sorted(order)


def test_render_cli_writes_both_pages(tmp_path):
    store = tmp_path / "results"
    env_args = ["--store", str(store), "--out", str(tmp_path / "site")]
    base = [sys.executable, "-m", "inftythink_eval.cli", "leaderboard", *env_args]
    assert subprocess.run(base + ["import", str(scripted_two_modes())], cwd=REPO, capture_output=True).returncode == 0
    proc = subprocess.run(base + ["render"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "rendered 4 record(s)" in proc.stdout
    assert (tmp_path / "site" / "LEADERBOARD.md").is_file() and (tmp_path / "site" / "index.html").is_file()


def test_pass_and_majority_at_the_largest_k_are_shown():
    from test_leaderboard_fixtures import make_record

    record = make_record(samples_per_question=4, pass_at_k={"pass@1": 0.5, "pass@4": 0.75}, maj_at_k={"maj@4": 0.625})
    assert "pass@4 75.0 · maj@4 62.5" in markdown([record], [])
