"""The one truncation rule: a ``<think>`` opened and never closed scores as no answer (configurable).

The rule itself (``formats.inftythink.scored_text``), then through the real task hooks
(``load_benchmark`` stamps the task's rule on the docs, the judging filters and
``process_results`` apply it and report ``think_unclosed``), then through the
real ``lm_eval`` CLI with the scripted backend: the default rule, a task whose
metadata sets ``unclosed_think: whole``, and ``--log_samples`` saying why.
"""

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from inftythink_eval.scoring.datasets import load_rows
from inftythink_eval.scoring import SandboxLimits, check_many, hooks
from inftythink_eval.scoring.codecheck import check_code_many
from inftythink_eval.scoring.families import code as code_family, math as math_family
from inftythink_eval.formats.inftythink import (DEFAULT_UNCLOSED_THINK, THINK_CLOSED, THINK_NONE, THINK_UNCLOSED,
                                       UNCLOSED_THINK_NOTE, scored_text)

ROOT = Path(__file__).resolve().parents[1]
ISSUE_EXAMPLE = "<think>\nso the answer is 42, but let me double check"


@pytest.mark.parametrize("output, rule, text, think", [
    (ISSUE_EXAMPLE, "no_answer", "", THINK_UNCLOSED),
    (ISSUE_EXAMPLE, "whole", ISSUE_EXAMPLE, THINK_UNCLOSED),
    ("<think>\nx\n</think>\nThe answer is 42.", "no_answer", "\nThe answer is 42.", THINK_CLOSED),
    ("x\n</think>42", "no_answer", "42", THINK_CLOSED),                      # <think> was in the prompt
    ("The answer is 42.", "no_answer", "The answer is 42.", THINK_NONE),     # instruct model: scored whole
    ("<think>a</think>41<think>\nno, 42", "no_answer", "", THINK_UNCLOSED),  # reopened after the last </think>
    ("<think>a</think>41<think>\nno, 42", "whole", "41<think>\nno, 42", THINK_UNCLOSED),
])
def test_the_rule(output, rule, text, think):
    got = scored_text(output, rule)
    assert (got.text, got.think) == (text, think)


def test_default_is_no_answer_and_a_wrong_rule_says_how_to_set_it():
    assert DEFAULT_UNCLOSED_THINK == "no_answer"
    with pytest.raises(ValueError, match=r"no_answer, whole.*--metadata"):
        scored_text("x", "drop")


@pytest.fixture
def hang_only_limits(monkeypatch):
    """The real judging hooks, with limits that only bound a hang: a check or a program that must pass is not
    raced against the product's 10 s limits (which would also have to cover a cold worker importing sympy)."""
    monkeypatch.setattr(math_family, "check_many", functools.partial(check_many, limit=300))
    monkeypatch.setattr(code_family, "check_code_many",
                        functools.partial(check_code_many, limits=SandboxLimits(wall_s=300, cpu_s=300)))


def _docs(benchmark: str, rule=None, n: int = 1) -> list[dict]:
    kwargs = {} if rule is None else {"unclosed_think": rule}
    data = hooks.load_benchmark(benchmark, version=2, **kwargs)["test"]  # lm-eval also passes metadata keys
    return [data[i] for i in range(n)]


@pytest.mark.parametrize("rule, acc", [(None, 0.0), ("no_answer", 0.0), ("whole", 1.0)])
def test_math_task_hooks_apply_the_tasks_rule(rule, acc, hang_only_limits):
    (doc,) = _docs("math500", rule)
    assert doc["unclosed_think"] == (rule or "no_answer")  # --log_samples shows the rule with each doc
    cut = f"<think>\nso the answer is \\boxed{{{doc['answer']}}}, but let me double check"
    closed = f"<think>\nwork\n</think>\nThe answer is \\boxed{{{doc['answer']}}}."
    bare = f"The answer is \\boxed{{{doc['answer']}}}."
    judged = hooks.judge_math([[cut, closed, bare]], [doc])
    metrics = hooks.math_results(doc, judged[0])
    assert [s.correct for s in judged[0]] == [bool(acc), True, True]
    assert judged[0][0].note == (UNCLOSED_THINK_NOTE if acc == 0.0 else "boxed")
    assert metrics["think_unclosed"] == pytest.approx(1 / 3)
    assert metrics["acc"] == pytest.approx((2 + acc) / 3)


def test_choice_task_hooks_apply_the_rule():
    (doc,) = _docs("gpqa_diamond")
    judged = hooks.judge_choice([[f"<think>\nthe answer is ({doc['answer']}), unless"]], [doc])[0]
    assert not judged[0].correct and judged[0].note == UNCLOSED_THINK_NOTE
    assert hooks.choice_results(doc, judged)["think_unclosed"] == 1.0


def test_code_task_hooks_apply_the_rule(monkeypatch, hang_only_limits):
    monkeypatch.setenv("HF_ALLOW_CODE_EVAL", "1")
    (doc,) = _docs("mbpp")
    program = f"```python\n{doc['reference']}\n```"
    judged = hooks.judge_code([[f"<think>\ndraft:\n{program}\nhmm, not sure", f"<think>\nok\n</think>\n{program}"]],
                              [doc])[0]
    assert [j.correct for j in judged] == [False, True], [j.note for j in judged]
    assert judged[0].note == UNCLOSED_THINK_NOTE


def _lm_eval(tmp: Path, tasks: str, include: Path, script: Path) -> Path:
    out = tmp / "out"
    cmd = [sys.executable, "-m", "lm_eval", "--model", "inftythink", "--model_args",
           f"backend=scripted,script={script},mode=vanilla", "--tasks", tasks, "--include_path", str(include),
           "--limit", "2", "--output_path", str(out), "--log_samples"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp,
                          env=dict(os.environ, TOKENIZERS_PARALLELISM="false"))
    assert done.returncode == 0, done.stderr[-4000:]
    return next(p for p in out.iterdir() if p.is_dir())


def test_lm_eval_cli_scores_a_cut_trace_as_no_answer_and_says_why(tmp_path):
    rows = load_rows("math500")[:2]
    outputs = [f"<think>\nso the answer is \\boxed{{{rows[0]['answer']}}}, but let me double check",  # cut off
               f"The answer is \\boxed{{{rows[1]['answer']}}}."]                                     # no tags
    script = tmp_path / "script.jsonl"
    script.write_text("".join(json.dumps({"match": r["problem"], "output": o}) + "\n" for r, o in zip(rows, outputs)))
    include = tmp_path / "tasks"
    include.mkdir()
    (include / "whole.yaml").write_text(f"include: {ROOT / 'tasks/math500/inftythink_math500.yaml'}\n"
                                        "task: itt_math500_whole\nmetadata: {version: 2, unclosed_think: whole}\n")
    folder = _lm_eval(tmp_path, "inftythink_math500,itt_math500_whole", include, script)
    results = json.loads(max(folder.glob("results_*.json")).read_text())["results"]
    assert results["inftythink_math500"]["acc,none"] == 0.5        # the cut-off trace earns nothing
    assert results["itt_math500_whole"]["acc,none"] == 1.0          # unless the task asks for the old rule
    for task in ("inftythink_math500", "itt_math500_whole"):
        assert results[task]["think_unclosed,none"] == 0.5
    samples = [json.loads(l) for l in max(folder.glob("samples_inftythink_math500_*.jsonl")).read_text().splitlines()]
    cut = next(s for s in samples if s["doc"]["problem"] == rows[0]["problem"])
    assert cut["acc"] == 0.0 and cut["think_unclosed"] == 1.0 and cut["doc"]["unclosed_think"] == "no_answer"
    assert cut["filtered_resps"] == [[""]]
