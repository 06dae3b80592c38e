"""The task-family registry is the one place benchmarks live: YAMLs, data loader, hooks and leaderboard read it.

Each test would fail if a part kept its own list: a leaf YAML whose hooks are not the registered
family's, a leaderboard group or heading not derived from the registry, ``tasks/_base/utils.py``
missing a registered hook, and (end to end, in a fresh process) a family module written to a
temporary folder that must show up in the data loader, the hooks, lm-eval and the group tables
with no other file touched.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from inftythink_eval.results import reference, render
from inftythink_eval.results.records import benchmark_of, group_of
from inftythink_eval.scoring import families, hooks
from inftythink_eval.scoring.families import BENCHMARKS, FAMILIES, GROUPS, HOOKS, OTHER, Benchmark
from test_leaderboard_fixtures import make_record

REPO = Path(__file__).resolve().parents[1]
TASKS_DIR = REPO / "tasks"


def _utils_module(path: Path):
    """``tasks/_base/utils.py`` loaded the way lm-eval loads a ``!function`` module."""
    spec = importlib.util.spec_from_file_location("utils", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def leaf_configs():
    from lm_eval.tasks import TaskManager
    from lm_eval.tasks._yaml_loader import load_yaml

    index = TaskManager(include_path=str(TASKS_DIR), include_defaults=False).task_index
    return {name: load_yaml(index[bench.task].yaml_path) for name, bench in BENCHMARKS.items()}


def test_the_three_families_and_seven_benchmarks_are_registered_in_table_order():
    assert list(FAMILIES) == ["math", "choice", "code"]
    assert list(BENCHMARKS) == ["math500", "aime24", "aime25", "amc23", "gpqa_diamond", "humaneval", "mbpp"]
    for family in FAMILIES.values():
        assert [b.family for b in family.benchmarks] == [family.name] * len(family.benchmarks)
        assert {f"{family.name}_prompt", f"judge_{family.name}", f"{family.name}_results"} == set(family.hooks)


def test_every_benchmark_has_a_leaf_yaml_whose_data_and_hooks_are_the_registry_s(leaf_configs):
    for name, bench in BENCHMARKS.items():
        family = FAMILIES[bench.family]
        leaf = TASKS_DIR / name / f"{bench.task}.yaml"
        assert f"include: ../_base/{family.template}" in leaf.read_text(), leaf
        cfg = leaf_configs[name]
        assert cfg["task"] == bench.task and cfg["dataset_kwargs"] == {"benchmark": name}
        assert cfg["custom_dataset"] is hooks.load_benchmark
        used = [cfg["doc_to_text"], cfg["filter_list"][0]["filter"][0]["filter_fn"], cfg["process_results"]]
        assert used == list(family.hooks.values()), name  # prompt, judging filter, process_results, in that order
        assert cfg.get("unsafe_code", False) is family.unsafe_code


def test_task_utils_export_every_registered_hook_and_nothing_of_their_own():
    utils = _utils_module(TASKS_DIR / "_base" / "utils.py")
    for name, fn in HOOKS.items():
        assert getattr(utils, name) is fn, name
    assert utils.load_benchmark is hooks.load_benchmark
    exported = {n for n in vars(utils) if not n.startswith("_")}
    assert exported == {"load_benchmark", *HOOKS}


def test_leaderboard_groups_are_the_registry_s():
    assert families.group_order() == list(GROUPS) and list(GROUPS)[-1] == OTHER
    records = []
    for bench in BENCHMARKS.values():
        for task in (bench.task, f"{bench.task}_n16", f"{bench.task}_n32"):
            assert benchmark_of(task) == bench.name and group_of(task) == bench.group
            records.append(make_record(task=task))
    records.append(make_record(task="inftythink_synthetic_d4"))
    tables = render.table_rows(records)
    assert list(tables) == [g for g in GROUPS if any(b.group == g for b in BENCHMARKS.values()) or g == OTHER]
    for group, tasks in tables.items():
        assert {group_of(t) for t in tasks} == {group}
    assert render.group_title("paper") == "Paper benchmarks (MATH500, AIME24, GPQA-diamond)"
    assert render.group_title("appendix") == "Appendix benchmarks (AIME25, AMC23, HumanEval, MBPP)"
    headings = [line[3:] for line in render.markdown(records, []).splitlines() if line.startswith("## ")]
    assert headings[:-1] == [render.group_title(g) for g in tables]


def test_lm_eval_groups_hold_only_benchmarks_of_the_matching_leaderboard_group():
    import yaml

    for group in ("paper", "appendix"):
        for suffix in ("", "_n16"):
            listed = yaml.safe_load((TASKS_DIR / "groups" / f"inftythink_{group}{suffix}.yaml").read_text())["task"]
            assert [benchmark_of(t) for t in listed] == [b.name for b in families.members(group)], (group, suffix)


def test_reported_rows_and_paper_columns_name_registered_benchmarks():
    assert {row.benchmark for row in reference.load()} <= set(BENCHMARKS)
    assert set(reference.PAPER_COLUMNS) | set(reference.PLUS_COLUMNS) <= set(BENCHMARKS)


def test_the_synthetic_task_stays_outside_the_registry_and_in_group_other():
    assert not any("synthetic" in name for name in BENCHMARKS)
    assert group_of("inftythink_synthetic_d48") == OTHER


def test_registration_errors_say_what_was_expected_and_change_nothing():
    before = (dict(FAMILIES), dict(BENCHMARKS), dict(HOOKS))
    row = lambda r, i: r  # noqa: E731
    entry = Benchmark("new", "New", "paper", "x/y", None, "test", "new/test.jsonl", 1)
    with pytest.raises(ValueError, match="registered twice"):
        families.register_family("math", schema=(), to_row=row, checker=row, hooks=(), benchmarks=())
    with pytest.raises(ValueError, match="names leaderboard group 'nowhere'; expected one of paper, appendix"):
        families.register_family("n1", schema=(), to_row=row, checker=row, hooks=(),
                                 benchmarks=[Benchmark("new", "New", "nowhere", "x/y", None, "test", "n.jsonl", 1)])
    with pytest.raises(ValueError, match="benchmark 'aime24' is already registered by family 'math'"):
        families.register_family("n2", schema=(), to_row=row, checker=row, hooks=(),
                                 benchmarks=[Benchmark("aime24", "A", "paper", "x/y", None, "test", "n.jsonl", 1)])

    def math_prompt(doc):
        return ""
    with pytest.raises(ValueError, match="hook 'math_prompt' is already taken by math; expected names of its own"):
        families.register_family("n3", schema=(), to_row=row, checker=row, hooks=(math_prompt,), benchmarks=[entry])
    with pytest.raises(ValueError, match="declared twice"):
        families.register_group("paper", "again", rank=5)
    assert (dict(FAMILIES), dict(BENCHMARKS), dict(HOOKS)) == before


# --- a new family: one module (plus its YAMLs), nothing else touched ------------------------------
FAMILY_MODULE = '''"""Task family ``echo`` (a test fixture): the answer is the question's last word.

Owns: its prompt, row schema, checker, hooks, a leaderboard group and two benchmarks.

Does not know: anything else.
"""
from inftythink_eval.formats.inftythink import final_answer_text
from inftythink_eval.scoring.families import Benchmark, register_family, register_group
from inftythink_eval.scoring.judging import Judged, judge_all, question_results


def check(response, gold):
    return final_answer_text(str(response)).strip() == gold


def to_row(row, index):
    return {"id": str(row.get("id", index)), "question": str(row["q"]), "answer": str(row["q"]).split()[-1]}


def echo_prompt(doc):
    return "Repeat the last word: " + doc["question"]


def _pairs(pairs, rule):
    return [Judged(str(r), r, check(r, d["answer"]), str(r), "echo") for r, d in pairs]


def judge_echo(resps, docs):
    return judge_all(resps, docs, _pairs)


def echo_results(doc, results):
    return question_results(doc, results, judge_echo, vote=True)


register_group("extra", "Extra benchmarks", rank=2)
register_family("echo", schema=("id", "question", "answer"), to_row=to_row, checker=check,
                hooks=(echo_prompt, judge_echo, echo_results), rank=3, benchmarks=[
    Benchmark("echo7", "Echo-7", "extra", "nobody/echo", None, "test", "echo/test.jsonl", 3),
    Benchmark("echo_a", "Echo-A", "appendix", "nobody/echo", "a", "test", "echo/a.jsonl.gz", 2),
])
'''

TEMPLATE = """include: common_template
doc_to_text: !function utils.echo_prompt
doc_to_target: "{{answer}}"
filter_list:
  - name: none
    filter:
      - function: custom
        filter_fn: !function utils.judge_echo
process_results: !function utils.echo_results
"""

CHECK = '''
import json, sys
from pathlib import Path
tmp = Path(sys.argv[1])
from inftythink_eval.results import render                 # imported before the family exists: the tables are live
from inftythink_eval.results.records import group_of
from inftythink_eval.scoring import families
from test_leaderboard_fixtures import make_record
found = families.discover(tmp / "families")
from inftythink_eval.scoring.datasets import load_rows
from lm_eval.evaluator import simple_evaluate
from lm_eval.tasks import TaskManager
records = [make_record(task=t) for t in ("inftythink_echo7", "inftythink_echo_a_n16", "inftythink_math500")]
manager = TaskManager(include_path=str(tmp / "tasks"), include_defaults=False)
out = simple_evaluate(model="inftythink", model_args=f"backend=scripted,script={tmp / 'script.json'},mode=vanilla",
                      tasks=["inftythink_echo7"], task_manager=manager)
print(json.dumps({"found": found, "rows": load_rows("echo7"), "rows_a": len(load_rows("echo_a")),
                  "groups": [group_of("inftythink_echo7"), group_of("inftythink_echo_a")],
                  "titles": [render.group_title(g) for g in render.table_rows(records)],
                  "acc": out["results"]["inftythink_echo7"]["acc,none"]}))
'''


def test_a_family_module_in_a_new_folder_reaches_loader_hooks_lm_eval_and_leaderboard(tmp_path):
    import gzip

    (tmp_path / "families").mkdir()
    (tmp_path / "families" / "echo.py").write_text(FAMILY_MODULE)
    data = tmp_path / "data" / "echo"
    data.mkdir(parents=True)
    questions = ["say red", "say green", "say blue"]
    (data / "test.jsonl").write_text("".join(json.dumps({"id": i, "q": q}) + "\n" for i, q in enumerate(questions)))
    (data / "a.jsonl.gz").write_bytes(gzip.compress(b'{"q": "one"}\n{"q": "two"}\n'))
    base = tmp_path / "tasks" / "_base"
    base.mkdir(parents=True)
    for name in ("common_template", "utils.py"):  # the suite's own files, as they are
        shutil.copy(TASKS_DIR / "_base" / name, base / name)
    (base / "echo_template").write_text(TEMPLATE)
    (tmp_path / "tasks" / "echo7").mkdir()
    (tmp_path / "tasks" / "echo7" / "inftythink_echo7.yaml").write_text(
        "task: inftythink_echo7\ninclude: ../_base/echo_template\ndataset_kwargs:\n  benchmark: echo7\nmetadata:\n  version: 1\n")
    script = [{"match": q, "output": f"<think>\nok\n</think> {q.split()[-1] if q != 'say blue' else 'red'}"}
              for q in questions]
    (tmp_path / "script.json").write_text(json.dumps(script))
    env = {"INFTYTHINK_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(REPO / "tests")}
    import os

    done = subprocess.run([sys.executable, "-c", CHECK, str(tmp_path)], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path, env={**os.environ, **env})
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["found"] == ["echo"]
    assert [r["answer"] for r in got["rows"]] == ["red", "green", "blue"] and got["rows_a"] == 2
    assert got["groups"] == ["extra", "appendix"]
    assert got["titles"] == ["Paper benchmarks (MATH500, AIME24, GPQA-diamond)",
                             "Appendix benchmarks (AIME25, AMC23, HumanEval, MBPP, Echo-A)", "Extra benchmarks (Echo-7)"]
    assert got["acc"] == pytest.approx(2 / 3)
