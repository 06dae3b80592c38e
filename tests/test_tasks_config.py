"""Task YAMLs: every task and group resolves through lm-eval's TaskManager with the settings we promise."""

import os
from pathlib import Path

import pytest

from inftythink_eval.scoring.datasets import BENCHMARKS
from inftythink_eval.scoring.families import FAMILIES
from inftythink_eval.scoring.codecheck import CodeEvalNotAllowed, extract_code
from inftythink_eval.scoring.hooks import choice_prompt, code_prompt, judge_code, math_prompt

TASKS_DIR = Path(__file__).resolve().parents[1] / "tasks"
LEAVES = [f"inftythink_{name}" for name in BENCHMARKS]
PLUS_LEAVES = ["inftythink_math500", "inftythink_aime24", "inftythink_aime25", "inftythink_gpqa_diamond"]
VARIANTS = [f"{n}_n16" for n in LEAVES] + [f"{n}_n32" for n in PLUS_LEAVES]
DATA = os.environ.get("INFTYTHINK_DATA_DIR", "/work/shared/data")


@pytest.fixture(scope="module")
def manager():
    from lm_eval.tasks import TaskManager

    # only our folder (fast); discovery without --include_path is proven by the CLI runs in test_tasks_gold.py
    return TaskManager(include_path=str(TASKS_DIR), include_defaults=False)


@pytest.fixture(scope="module")
def configs(manager):
    from lm_eval.tasks._yaml_loader import load_yaml

    index = manager.task_index
    return {name: load_yaml(index[name].yaml_path) for name in LEAVES + VARIANTS}


def test_all_tasks_and_groups_resolve(manager):
    names = set(manager.all_tasks)
    for name in LEAVES + VARIANTS:
        assert name in names, name
    for group in ("inftythink_paper", "inftythink_appendix", "inftythink_all", "inftythink_paper_n16",
                  "inftythink_appendix_n16", "inftythink_all_n16", "inftythink_plus_n32"):
        assert group in names, group


def test_leaf_settings(configs):
    for name in LEAVES:
        cfg = configs[name]
        kwargs = cfg["generation_kwargs"]
        assert kwargs["until"] == [] and kwargs["max_gen_toks"] >= 16384 and kwargs["do_sample"] is False, name
        assert cfg["repeats"] == 1 and cfg["num_fewshot"] == 0 and cfg["metadata"]["version"] >= 1
        assert cfg["filter_list"][0]["name"] == "none" and cfg["filter_list"][0]["filter"][0]["function"] == "custom"
        metrics = {m["metric"] for m in cfg["metric_list"]}
        assert {"acc", "pass@1", "pass@16", "maj@16", "tok", "lat", "rounds", "peak_ctx", "truncated",
                "format_fail", "check_timeout"} <= metrics
        assert cfg.get("unsafe_code", False) is FAMILIES[BENCHMARKS[name[len("inftythink_"):]].family].unsafe_code


def test_paper_protocol_variants(configs):
    for name in LEAVES:
        cfg = configs[f"{name}_n16"]
        kwargs = cfg["generation_kwargs"]
        assert cfg["repeats"] == 16 and kwargs["temperature"] == 0.7 and kwargs["top_p"] == 0.95
        assert kwargs["do_sample"] is True and kwargs["until"] == []
        assert cfg["dataset_kwargs"] == configs[name]["dataset_kwargs"]


def test_plus_protocol_variants(configs, manager):
    """InftyThink+ (PROTOCOL_PLUS.md): 32 samples at T=0.7 on the four benchmarks it reports; top_p as v1."""
    for name in PLUS_LEAVES:
        cfg = configs[f"{name}_n32"]
        kwargs = cfg["generation_kwargs"]
        assert cfg["repeats"] == 32 and kwargs["temperature"] == 0.7 and kwargs["top_p"] == 0.95
        assert kwargs["do_sample"] is True and kwargs["until"] == [] and kwargs["max_gen_toks"] == 32768
        assert cfg["dataset_kwargs"] == configs[name]["dataset_kwargs"]
        assert {"pass@32", "maj@32"} <= {m["metric"] for m in cfg["metric_list"]}
    from lm_eval.tasks._yaml_loader import load_yaml

    group = load_yaml(manager.task_index["inftythink_plus_n32"].yaml_path)
    assert group["task"] == [f"{n}_n32" for n in PLUS_LEAVES]


def test_every_leaf_starts_with_a_card():
    for path in TASKS_DIR.glob("*/inftythink_*.yaml"):
        if "synthetic" in path.parts[-2]:
            continue  # owned by the training part
        head = path.read_text().splitlines()[0]
        assert head.startswith("# "), path


def test_hooks_are_one_line_imports():
    source = (TASKS_DIR / "_base" / "utils.py").read_text()
    assert "def " not in source and "from inftythink_eval.scoring.hooks import *" in source


def test_prompts():
    math = math_prompt({"problem": "What is 1+1?"})
    assert math.startswith("What is 1+1?") and "\\boxed{}" in math
    choice = choice_prompt({"question": "Q?", "choices": ["w", "x", "y", "z"]})
    assert "A) w\nB) x\nC) y\nD) z" in choice and "letter" in choice
    code = code_prompt({"entry_point": "f", "prompt": "def f():\n    pass\n", "first_test": ""})
    assert "```python\ndef f():" in code
    mbpp = code_prompt({"entry_point": "", "prompt": "Write f.", "first_test": "assert f() == 1"})
    assert "assert f() == 1" in mbpp


def test_code_is_taken_from_the_final_answer_only():
    assert extract_code("<think>\n```python\nbad()\n```\n</think> ```python\ngood()\n```") == "good()\n"
    assert extract_code("```\nx = 1\n```") == "x = 1\n"
    assert extract_code("```python\na = 1\n```\n```python\nb = 2\n```") == "b = 2\n"
    assert extract_code("no code") is None
    assert extract_code("```python\ncut = True") == "cut = True"  # cut at the token limit


def test_code_needs_consent(monkeypatch):
    monkeypatch.delenv("HF_ALLOW_CODE_EVAL", raising=False)
    doc = {"setup": "", "tests": "", "entry_point": ""}
    with pytest.raises(CodeEvalNotAllowed, match="HF_ALLOW_CODE_EVAL=1 and pass --confirm_run_unsafe_code"):
        judge_code([["```python\nprint(1)\n```"]], [doc])


def test_lm_eval_refuses_code_tasks_without_confirmation(monkeypatch, manager):
    from lm_eval.evaluator import simple_evaluate

    monkeypatch.setenv("INFTYTHINK_DATA_DIR", DATA)
    with pytest.raises(ValueError, match="unsafe"):
        simple_evaluate(model="inftythink", model_args="backend=scripted,mode=vanilla",
                        tasks=["inftythink_humaneval"], limit=1, task_manager=manager)


def test_process_results_scores_every_repeat_even_without_the_filter():
    import pickle

    from inftythink_eval.run.output import SampleOutput
    from inftythink_eval.scoring.hooks import Judged, choice_results, judge_math, math_results

    stats = {"tok": 4, "lat": 0.5, "rounds": 2, "peak_ctx": 9, "truncated": 0, "format_fail": 0}
    samples = [SampleOutput(text, stats) for text in (r"\boxed{5}", r"\boxed{6}", r"\boxed{05}", "no idea")]
    out = math_results({"answer": "5"}, [samples])  # raw responses: judged on the fly
    assert out["acc"] == 0.5 and out["pass@4"] == 1.0 and out["maj@4"] == 1.0 and out["rounds"] == 2
    judged = judge_math([samples], [{"answer": "5"}])[0]
    assert [j.correct for j in judged] == [True, False, True, False] and judged[3].note == "no answer"
    again = pickle.loads(pickle.dumps(judged[0]))
    assert isinstance(again, Judged) and again.correct and again.key == "5" and again.stats["tok"] == 4
    assert choice_results({"answer": "B"}, [["The answer is (B)", "**C**"]])["acc"] == 0.5
