"""``inftythink sweep`` and the accuracy-cost frontiers.

The grid's syntax and checks; resume through the real ``lm_eval`` CLI on the ``scripted`` backend (a
sweep interrupted after point 2 of 4 reruns only points 3 and 4; a point whose lm-eval finished but was
not stored is imported, not rerun; a point whose lm-eval died mid-run resumes from its call cache; a
SIGKILLed sweep loses no stored point); the frontier maths on hand-made records with exact answers;
the Markdown section.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import wait_until
from inftythink_eval.cli import main
from inftythink_eval.keyvalue import parse_pairs
from inftythink_eval.modes import MODES, mode_param_specs
from inftythink_eval.results import frontier, grid, lmeval_run, sweep
from inftythink_eval.results.render import frontier_markdown, markdown
from inftythink_eval.results.store import Store
from test_leaderboard_fixtures import REPO, make_record, model_args, questions, task_dir, write_script

# --- the grid --------------------------------------------------------------------------------------------


def test_a_grid_is_the_product_of_its_value_lists_in_declared_order():
    points = grid.parse_grid("summarize:max_rounds=4,6;eta=64,128")
    assert [p.label for p in points] == ["summarize max_rounds=4 eta=64", "summarize max_rounds=4 eta=128",
                                         "summarize max_rounds=6 eta=64", "summarize max_rounds=6 eta=128"]
    assert all(isinstance(v, int) for p in points for _k, v in p.params)
    vanilla = grid.parse_grid("vanilla:max_gen_toks=256,512,1024")
    assert [p.gen_kwargs() for p in vanilla] == [{"max_gen_toks": 256}, {"max_gen_toks": 512}, {"max_gen_toks": 1024}]
    assert all(p.model_params() == {} for p in vanilla)
    assert grid.parse_grid("vanilla") == [grid.GridPoint("vanilla")]
    assert grid.parse_grid("delethink:chunk=64;carryover=none,32")[0].params == (("chunk", 64), ("carryover", None))
    # the same point written twice, in any key order, runs once
    assert len(grid.expand(["summarize:eta=64;max_rounds=4", "summarize:max_rounds=4;eta=64,128"])) == 2


def test_every_registered_mode_and_parameter_is_accepted_without_a_list_here():
    """The grid reads the modes' declarations: each mode with each of its own parameters at its default."""
    for mode in MODES:
        for name, (param, _users) in mode_param_specs(mode).items():
            value = "none" if param.default is None else param.default
            (point,) = grid.parse_grid(f"{mode}:{name}={value}")
            assert point.params == ((name, param.default),), (mode, name)


@pytest.mark.parametrize("text, message", [
    ("vanila:max_gen_toks=8", "unknown mode 'vanila'; valid modes: " + ", ".join(MODES)),
    ("summarize:etaa=64", "mode summarize has no parameter 'etaa'; its parameters: max_rounds, eta, summary_tokens, "
                          "summary_temperature, and max_gen_toks"),
    ("vanilla:eta=64", "mode vanilla has no parameter 'eta'; its parameters: (none), and max_gen_toks"),
    ("summarize:eta=1.5", "eta takes int values, got '1.5'"),
    ("summarize:eta=0", "eta must be >= 1, got 0"),
    ("vanilla:max_gen_toks=0", "max_gen_toks must be >= 1, got 0"),
    ("summarize:eta=", "eta has no values"),
    ("summarize:eta", "expected MODE:key=v1,v2;key=v3"),
    ("summarize:eta=1;eta=2", "eta is given twice"),
    ("delethink:chunk=64;carryover=128", "not a valid delethink setting: carryover must be in [0, chunk)"),
])
def test_grid_errors_say_what_is_expected(text, message):
    with pytest.raises(ValueError) as err:
        grid.parse_grid(text)
    assert message in str(err.value)


def test_a_grid_file_holds_the_same_points(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text("grid:\n  - {mode: vanilla, max_gen_toks: [256, 512]}\n  - mode: summarize\n    eta: [64, 128]\n"
                    "    max_rounds: 4\n  - 'inftythink:max_rounds=2'\n")
    assert grid.expand(grid_file=path) == grid.expand(["vanilla:max_gen_toks=256,512",
                                                       "summarize:eta=64,128;max_rounds=4", "inftythink:max_rounds=2"])
    path.write_text("- {mode: summarize, eta: [64, fast]}\n")
    with pytest.raises(grid.GridError, match="entry 1: eta takes int values, got 'fast'"):
        grid.expand(grid_file=path)
    with pytest.raises(grid.GridError, match="the sweep has no points"):
        grid.expand([])


def test_a_point_runs_its_mode_and_parameters_over_the_shared_settings():
    plan = sweep.Plan(model_args="pretrained=x,backend=hf,eta=32,summary_tokens=16", tasks="a,b",
                      points=tuple(grid.parse_grid("summarize:eta=64;max_gen_toks=128")), limit=3,
                      gen_kwargs={"max_gen_toks": 512, "temperature": 0.7})
    spec = plan.spec(plan.points[0], Path("out"), Path("/c"))
    assert spec.model_args == "pretrained=x,backend=hf,eta=64,summary_tokens=16,mode=summarize,cache_dir=/c"
    assert spec.gen_kwargs == {"max_gen_toks": 128, "temperature": 0.7} and spec.limit == 3
    # a stored record of the same run matches whatever its cache folder; another parameter does not
    args = {"model": "inftythink", "model_args": spec.model_args.replace("/c", "/elsewhere"), "limit": 3.0,
            "gen_kwargs": {"max_gen_toks": 128, "temperature": 0.7}, "apply_chat_template": False}
    record = make_record(task="a", mode="summarize", lm_eval_args=args)
    assert sweep.same_run(record, spec)
    assert sweep.stored_for([record], spec, ["a", "b"]) is None  # task b is missing
    assert sweep.stored_for([record, dataclasses.replace(record, task="b")], spec, ["a", "b"]) is not None
    for changed in ({"model_args": args["model_args"].replace("eta=64", "eta=65")}, {"limit": 4.0},
                    {"gen_kwargs": {"max_gen_toks": 256, "temperature": 0.7}}, {"apply_chat_template": True}):
        assert not sweep.same_run(dataclasses.replace(record, lm_eval_args={**args, **changed}), spec), changed


def test_sweep_refuses_bad_input_before_running_anything(tmp_path):
    base = [sys.executable, "-m", "inftythink_eval.cli", "sweep", "--output_path", str(tmp_path / "s")]
    cases = [(["--tasks", "t", "--model_args", "pretrained=x,mode=vanilla", "--grid", "vanilla"], "must not set mode="),
             (["--tasks", "t", "--model_args", "pretrained=x", "--grid", "summarize:etaa=1"], "has no parameter 'etaa'"),
             (["--tasks", "t", "--model_args", "pretrained=x"], "the sweep has no points"),
             (["--grid", "vanilla"], "--model_args and --tasks are required"),
             (["--resume", str(tmp_path / "none")], "sweep.json not found"),
             (["--resume", str(tmp_path), "--tasks", "t"], "--resume DIR takes the plan from DIR/sweep.json")]
    for flags, message in cases:
        proc = subprocess.run(base + flags, cwd=REPO, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2 and message in proc.stderr, (flags, proc.stderr)
    assert not (tmp_path / "s").exists()


# --- resume through the real lm_eval CLI ------------------------------------------------------------------
GRID = ("vanilla:max_gen_toks=10,400", "inftythink:max_rounds=1,2")


def sweep_argv(model: Path, out: Path, store: Path, grids=GRID) -> list[str]:
    return ["sweep", "--model_args", model_args(model), "--tasks", "lbt_math500", "--include_path", str(task_dir()),
            "--limit", "4", *[a for g in grids for a in ("--grid", g)], "--output_path", str(out),
            "--store", str(store), "--bootstrap-iters", "200"]


def label(spec) -> str:
    """A started lm-eval run, as its point: ``inftythink max_rounds=2``, ``vanilla max_gen_toks=10``."""
    pairs = parse_pairs(spec.model_args, "model_args")
    own = [f"{k}={pairs[k]}" for k in ("max_rounds",) if k in pairs]
    own += [f"max_gen_toks={spec.gen_kwargs['max_gen_toks']}"] if "max_gen_toks" in spec.gen_kwargs else []
    return " ".join([pairs["mode"], *own])


@pytest.fixture()
def counted(monkeypatch):
    """Every lm-eval run the sweep starts (the real one), as its point; a run numbered in ``stop_at`` is
    interrupted before it starts, as a Ctrl-C of the sweep there."""
    real, calls, stop_at = lmeval_run.run, [], []

    def run(spec, *a, **k):
        calls.append(label(spec))
        if len(calls) in stop_at:
            raise KeyboardInterrupt
        return real(spec, *a, **k)

    monkeypatch.setattr(lmeval_run, "run", run)
    return calls, stop_at


def test_an_interrupted_sweep_reruns_only_the_missing_points(tmp_path, counted, capsys):
    calls, stop_at = counted
    model, out, store = write_script("sweep-resume"), tmp_path / "sweep", tmp_path / "store"
    stop_at.append(3)
    assert main(sweep_argv(model, out, store)) == 130
    # vanilla budgets first, largest first (the smaller one is derived from its generation)
    assert calls == ["vanilla max_gen_toks=400", "vanilla max_gen_toks=10", "inftythink max_rounds=1"]
    assert len(Store(store).paths()) == 2
    state = json.loads((out / "sweep.json").read_text())
    assert [p["status"] for p in state["points"]] == ["done", "done", "interrupted", "pending"]
    assert "--resume" in capsys.readouterr().err

    calls.clear(), stop_at.clear()
    assert main(sweep_argv(model, out, store)) == 0
    assert calls == ["inftythink max_rounds=1", "inftythink max_rounds=2"]  # points 3 and 4 only
    stored = Store(store).load()
    assert sorted((r.mode, r.mode_params.get("max_rounds") if r.mode != "vanilla" else r.lm_eval_args["gen_kwargs"]
                   ["max_gen_toks"]) for r in stored) == [("inftythink", 1), ("inftythink", 2), ("vanilla", 10),
                                                         ("vanilla", 400)]
    text = capsys.readouterr().out
    assert "[1/4] vanilla max_gen_toks=400: already in the store, skipped" in text
    assert "[3/4] inftythink max_rounds=1 … running (0 run, 2 skipped, 1 after this)" in text
    assert "sweep: 4 point(s): 2 run now, 2 already in the store (skipped)" in text
    assert "lbt_math500  (sweep-resume; 4 points;" in text and "equal accuracy: Target ACC 100.0%" in text

    calls.clear()
    assert main(["sweep", "--resume", str(out)]) == 0 and calls == []  # nothing left: nothing runs
    assert "0 run now, 4 already in the store" in capsys.readouterr().out
    assert main(["sweep", "--show", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "vanilla max_gen_toks=400" in shown and "inftythink max_rounds=2 round_tokens=8192" in shown


def test_a_finished_but_unstored_point_is_imported_not_rerun(tmp_path, monkeypatch, capsys):
    model, out, store = write_script("sweep-unstored"), tmp_path / "sweep", tmp_path / "store"
    real, calls = lmeval_run.run, []

    def killed_after(spec, *a, **k):  # lm-eval finishes, then the sweep dies before it stores the record
        calls.append(spec)
        real(spec, *a, **k)
        raise KeyboardInterrupt

    monkeypatch.setattr(lmeval_run, "run", killed_after)
    argv = sweep_argv(model, out, store, grids=["vanilla:max_gen_toks=400"])
    assert main(argv) == 130 and Store(store).paths() == [] and len(calls) == 1
    calls.clear()
    assert main(argv) == 0 and calls == []
    (record,) = Store(store).load()
    assert record.lm_eval_args["gen_kwargs"] == {"max_gen_toks": 400} and record.acc == 1.0


def test_a_point_killed_mid_run_resumes_from_its_call_cache(tmp_path):
    """lm-eval dies inside point 1 (no rule for question 4); the rerun makes only the calls the cache lacks."""
    model, out, store, log = write_script("sweep-crash"), tmp_path / "sweep", tmp_path / "store", tmp_path / "calls.jsonl"
    script = model / "script.jsonl"
    full = script.read_text()
    q4 = questions("math500")[3]["problem"][-60:]
    script.write_text("".join(line + "\n" for line in full.splitlines() if not json.loads(line)["match"].startswith(q4)))
    argv = [sys.executable, "-m", "inftythink_eval.cli", "sweep", "--model_args", f"{model_args(model)},call_log={log}",
            "--tasks", "lbt_math500", "--include_path", str(task_dir()), "--limit", "4", "--grid",
            "inftythink:max_rounds=2", "--output_path", str(out), "--store", str(store)]
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2 and "finished points are kept: `inftythink sweep --resume" in proc.stderr
    cache = out / "points" / "inftythink-max_rounds=2" / "cache"
    cached = sum(len(p.read_text().splitlines()) for p in cache.glob("calls-*.jsonl"))
    before = [json.loads(line)["prompt"] for line in log.read_text().splitlines()]
    assert cached >= 1 and len(before) == cached and Store(store).paths() == []

    script.write_text(full)
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    after = [json.loads(line)["prompt"] for line in log.read_text().splitlines()][len(before):]
    assert len(after) == 4 * 2 - cached and not set(after) & set(before)  # 4 questions x 2 rounds in all
    (record,) = Store(store).load()
    assert record.acc == 1.0 and record.rounds == 2.0
    assert json.loads((out / "sweep.json").read_text())["points"][0]["runs"] == 2


@pytest.mark.slow  # four scripted lm-eval runs, a kill and a rerun: about 60 s
def test_a_sigkilled_sweep_loses_no_stored_point(tmp_path):
    model, out, store = write_script("sweep-kill"), tmp_path / "sweep", tmp_path / "store"
    argv = [sys.executable, "-m", "inftythink_eval.cli", *sweep_argv(model, out, store)]
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_until(lambda: len(Store(store).paths()) >= 2 or proc.poll() is not None, "two stored points")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the sweep and the lm-eval it runs
        proc.wait()
    kept = {p.name: p.read_bytes() for p in Store(store).paths()}
    assert len(kept) >= 2
    rerun = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert len(Store(store).paths()) == 4
    assert all(Path(p).read_bytes() == kept[p.name] for p in Store(store).paths() if p.name in kept)
    state = json.loads((out / "sweep.json").read_text())
    for entry in state["points"]:  # a point stored before the kill was not run again
        if set(entry["records"]) <= set(kept):
            assert len(list((out / "points" / entry["folder"]).glob("run-*"))) == 1, entry


# --- the frontier on hand-made records --------------------------------------------------------------------
def point(mode: str, acc: list, tok: float, budget=None, lat: float = 1.0, ctx: float = 100.0, **params):
    """A record whose per-question acc is ``acc`` and whose per-question TOK is ``tok`` (+ doc_id, to pair)."""
    samples = [{"doc_id": i, "acc": a, "tok": tok + i, "lat": lat, "peak_ctx": ctx} for i, a in enumerate(acc)]
    mean = sum(acc) / len(acc)
    args = {"gen_kwargs": {"max_gen_toks": budget}} if budget else {}
    return make_record(mode=mode, mode_params=params, acc=mean, acc_ci=(0.0, 1.0), n=len(acc), samples=samples,
                       tok=tok + (len(acc) - 1) / 2, lat=lat, peak_ctx=ctx, lm_eval_args=args)


def hand_made() -> list:
    return [point("vanilla", [1, 0, 0, 0], 100, budget=128),                   # 25% at TOK 101.5
            point("vanilla", [1, 1, 0, 0], 300, budget=512, lat=3.0),          # 50% at 301.5
            point("vanilla", [1, 1, 0, 0], 400, budget=1024, lat=4.0),         # 50% at 401.5: dominated by 512
            point("summarize", [1, 1, 1, 0], 500, eta=64, lat=5.0, ctx=60),    # 75% at 501.5
            point("summarize", [0, 0, 0, 0], 50, eta=32, lat=0.5, ctx=60),     # 0% at 51.5: cheapest
            point("summarize", [1, 1, 0, 0], 250, eta=48, lat=2.5, ctx=60)]    # 50% at 251.5: beats vanilla 512


def test_pareto_points_are_exactly_the_undominated_ones():
    (points,) = frontier.groups(hand_made()).values()
    labels = lambda ps: {p.label for p in ps}  # noqa: E731
    assert labels(frontier.pareto(points, "tok")) == {
        "vanilla max_gen_toks=128", "summarize eta=64",
        "summarize eta=32", "summarize eta=48"}
    # at equal peak context (60) only the most accurate survives; vanilla's 100 never beats it
    assert labels(frontier.pareto(points, "peak_ctx")) == {"summarize eta=64"}
    curves = frontier.curves(points, "tok")
    assert [p.label for p in curves["vanilla"]] == ["vanilla max_gen_toks=128", "vanilla max_gen_toks=512",
                                                    "vanilla max_gen_toks=1024"]
    assert frontier.costs_of(points) == ["tok", "lat", "peak_ctx"]  # no kv_tokens in these samples


def test_equal_accuracy_table_values_and_paired_intervals():
    (points,) = frontier.groups(hand_made()).values()
    ref, goal, rows = frontier.equal_accuracy(points, iters=500)
    assert ref.label == "vanilla max_gen_toks=512" and goal == 0.5  # the best vanilla ACC at its least TOK
    cell = {(r.mode, r.cost): r for r in rows}
    tok = cell[("summarize", "tok")]
    assert tok.point.label.startswith("summarize eta=48") and tok.point.cost("tok") == 251.5
    assert tok.d_cost[0] == -50.0 and tok.d_cost[1] <= -50.0 <= tok.d_cost[2]   # paired per question: all -50
    assert tok.d_acc[:1] == (0.0,)
    assert cell[("vanilla", "tok")].point.label == "vanilla max_gen_toks=512"
    assert cell[("vanilla", "lat")].point.cost("lat") == 3.0
    # a higher target: only summarize eta=64 reaches 75%; vanilla does not, and shows its best point
    _ref, goal, rows = frontier.equal_accuracy(points, target=0.75, iters=500)
    cell = {(r.mode, r.cost): r for r in rows}
    assert cell[("vanilla", "tok")].point is None and cell[("vanilla", "tok")].best.acc == 0.5
    d, lo, hi = cell[("summarize", "tok")].d_acc
    assert d == 0.25 and 0.0 <= lo <= d <= hi < 1.0   # one of four questions gained
    text = frontier.equal_rows(rows)
    assert {"mode": "vanilla", "cost": "TOK", "least cost at target": "not reached",
            "at point": "best: vanilla max_gen_toks=512", "ACC": "50.0"} in text


def test_kv_tokens_are_a_cost_when_the_samples_carry_them():
    records = hand_made()
    with_kv = [dataclasses.replace(r, samples=[{**s, "kv_tokens": 10.0 * (k + 1)} for s in r.samples])
               for k, r in enumerate(records)]
    (points,) = frontier.groups(with_kv).values()
    assert frontier.costs_of(points)[-1] == "kv_tokens" and points[0].cost("kv_tokens") == 10.0
    columns, _rows = frontier.point_rows(points)
    assert "KV tokens" in columns
    (old,) = frontier.groups(records).values()
    assert "KV tokens" not in frontier.point_rows(old)[0]


def test_frontier_section_in_the_markdown_and_absent_with_one_point_per_model():
    records = hand_made()
    text = markdown(records, [])
    section = text.split("## Frontiers")[1].split("## Reported")[0]
    assert "### inftythink_math500 · m" in section
    assert "| vanilla | vanilla max_gen_toks=128 | 25.0 (0.0–100.0) | 102 | 1.00 | 100 | 4×1 | TOK · LAT s |" in section
    assert "| summarize | TOK | 252 | summarize eta=48 | 50.0 | +0.0 [" in section
    assert "Target ACC 50.0% (the best vanilla point, vanilla max_gen_toks=512)" in section
    single = [records[0], dataclasses.replace(records[3], model="other")]
    assert frontier_markdown(single) == [] and "Frontiers" not in markdown(single, [])


@pytest.mark.slow  # SmolLM2-135M on the hf backend, three points of one question and a rerun: 2-3 min on 2 cores
def test_a_real_sweep_gives_vanilla_its_budget_and_each_mode_its_parameters(tmp_path):
    """The real path: SmolLM2 on MATH500 through lm-eval; max_gen_toks reaches the model as the task's budget,
    summarize's eta as its round length; the frontier is printed from the stored records."""
    out, store = tmp_path / "sweep", tmp_path / "store"
    argv = [sys.executable, "-m", "inftythink_eval.cli", "sweep", "--model_args",
            "pretrained=zoo:smollm2-135m-instruct,backend=hf,summary_tokens=8,batch_size=4", "--tasks",
            "inftythink_math500", "--limit", "1", "--apply_chat_template", "--grid", "vanilla:max_gen_toks=8,24",
            "--grid", "summarize:eta=8;max_rounds=2;max_gen_toks=24", "--output_path", str(out), "--store", str(store),
            "--bootstrap-iters", "200"]
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    by_label = {frontier.point_label(r): r for r in Store(store).load()}
    assert set(by_label) == {"vanilla max_gen_toks=8", "vanilla max_gen_toks=24",
                             "summarize max_rounds=2 eta=8 summary_tokens=8 max_gen_toks=24"}
    assert by_label["vanilla max_gen_toks=8"].tok <= 8 < by_label["vanilla max_gen_toks=24"].tok <= 24
    summarize = by_label["summarize max_rounds=2 eta=8 summary_tokens=8 max_gen_toks=24"]
    assert summarize.mode_params["eta"] == 8 and summarize.rounds == 2  # eta=8 cuts round 1 short of an answer
    assert "inftythink_math500  (smollm2-135m-instruct; 3 points;" in proc.stdout
    rerun = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert "0 run now, 3 already in the store" in rerun.stdout and "$ lm_eval" not in rerun.stderr


def test_the_evidence_script_checks_the_window_and_prints_sweeps_the_cli_accepts():
    """scripts/evidence_sweeps.py --dry-run: the window rule from the tiny models' own tokenizer (depth 8 inside
    256 positions, 24 and 96 beyond), and each printed sweep parses as an ``inftythink sweep`` plan."""
    proc = subprocess.run([sys.executable, "scripts/evidence_sweeps.py", "--dry-run"], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    where = {line.split(":")[0].strip(): "inside" in line for line in proc.stdout.splitlines() if "window" in line
             and line.startswith("  d")}
    assert where == {"d8": True, "d24": False, "d96": False}
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import evidence_sweeps
    finally:
        sys.path.pop(0)
    for item in evidence_sweeps.SWEEPS:
        parser = argparse.ArgumentParser()
        sweep.add_arguments(parser)
        args = parser.parse_args(item.argv(Path("out"), Path("store"))[4:])
        assert len(sweep._plan(args).points) >= 4, item.name
