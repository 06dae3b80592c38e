"""Every benchmark through the real ``lm_eval`` CLI with the scripted backend.

Gold: the gold answer written as a model would write it (math/GPQA
``<think>...</think> The answer is \\boxed{gold}``; HumanEval the prompt plus
``canonical_solution``; MBPP the reference ``code``, in a fenced block)
scores 100% on EVERY row of all seven benchmarks (one lm_eval run, ~90 s).
Wrong: a wrong answer scores 0 (first rows of each benchmark).  Repeats: a
variant with ``repeats: 4``, right in some repeats and wrong in others, scores each of the four samples.
"""

import glob
import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import DATA_DIR, LM_EVAL_BIN
from inftythink_eval.scoring.datasets import BENCHMARKS, load_rows
from inftythink_eval.scoring.families import FAMILIES
from inftythink_eval.scoring.hooks import code_prompt

DATA = str(DATA_DIR)
TASKS = [f"inftythink_{name}" for name in BENCHMARKS]
pytestmark = pytest.mark.usefixtures("data_dir")  # fails, naming the folder, when the data is missing


WRITTEN_HERE = ("math", "choice", "code")  # the families whose right and wrong answers the two functions below write


def test_every_registered_family_has_its_answers_written_here():
    missing = sorted(set(FAMILIES) - set(WRITTEN_HERE))
    assert not missing, (f"task families {missing} are registered but this test cannot answer them: add how a model "
                         "writes a right and a wrong answer to gold_response and wrong_response, and the name to WRITTEN_HERE")


def gold_response(name: str, row: dict) -> tuple[str, str]:
    """(a substring of the prompt, the gold answer as a model would write it)."""
    family = BENCHMARKS[name].family
    if family == "code":
        return code_prompt(row), "<think>\nplan\n</think>\n```python\n" + row["reference"] + "\n```"
    key = row["problem"] if family == "math" else row["question"]
    return key, "<think>\nworking\n</think> The answer is \\boxed{" + row["answer"] + "}."


def wrong_response(name: str, row: dict) -> tuple[str, str]:
    family = BENCHMARKS[name].family
    if family == "code":
        body = f"def {row['entry_point']}(*args):\n    return None\n" if row["entry_point"] else "x = 1\n"
        return code_prompt(row), "```python\n" + body + "```"
    key = row["problem"] if family == "math" else row["question"]
    wrong = "\\frac{-9876}{13}" if family == "math" else "ABCD"[("ABCD".index(row["answer"]) + 1) % 4]
    return key, "<think>\nhmm\n</think> The answer is \\boxed{" + wrong + "}."


def run_lm_eval(tmp: Path, make, limit=None, extra_tasks=(), include=None, first_rules=()) -> dict:
    rules = [*first_rules]
    rules += [{"match": m, "outputs": [o]} for name in BENCHMARKS for m, o in (make(name, r) for r in load_rows(name, DATA))]
    script = tmp / "script.jsonl"
    script.write_text("\n".join(json.dumps(r) for r in rules))
    cmd = [LM_EVAL_BIN, "--model", "inftythink", "--model_args", f"backend=scripted,script={script},mode=vanilla",
           "--tasks", ",".join(TASKS + list(extra_tasks)), "--output_path", str(tmp / "out"), "--log_samples",
           "--confirm_run_unsafe_code"]
    if limit:
        cmd += ["--limit", str(limit)]
    if include:
        cmd += ["--include_path", str(include)]
    env = dict(os.environ, INFTYTHINK_DATA_DIR=DATA, HF_ALLOW_CODE_EVAL="1")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, cwd=tmp)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(Path(glob.glob(str(tmp / "out" / "*" / "results_*.json"))[0]).read_text())
    samples = {}
    for path in glob.glob(str(tmp / "out" / "*" / "samples_*.jsonl")):
        task = Path(path).name[len("samples_"):].rsplit("_", 1)[0]
        samples[task] = [json.loads(line) for line in Path(path).read_text().splitlines()]
    return {"results": results["results"], "samples": samples}


@pytest.mark.slow  # every row of seven benchmarks, ~60 s: .ci/run's slow step
def test_gold_answers_score_100_percent_on_every_row(tmp_path):
    run = run_lm_eval(tmp_path, gold_response)
    for task, name in zip(TASKS, BENCHMARKS):
        rows = run["samples"][task]
        assert len(rows) == BENCHMARKS[name].rows, task
        failing = [(r["doc"]["id"], r["filtered_resps"][0][0][:80]) for r in rows if r["acc"] != 1.0]
        assert not failing, f"{task}: gold rows that do not verify: {failing}"
        metrics = run["results"][task]
        assert metrics["acc,none"] == 1.0 and metrics["pass@1,none"] == 1.0 and metrics["check_timeout,none"] == 0.0
        assert metrics["rounds,none"] == 1.0 and metrics["tok,none"] > 0  # the engine's stats reach the results


# Right (R) or wrong (W) in each of the four repeats of the first six GPQA rows: the right ones at different
# places (not always first), no ties, so scoring only one repeat, or the same one four times, gives other numbers.
REPEATS = ["WWWW", "WWRW", "WRRR", "RRRR", "RWWW", "WWWR"]


def test_wrong_answers_score_zero_and_repeats_are_all_scored(tmp_path):
    include = tmp_path / "extra"
    include.mkdir()
    # the description (rendered per row) makes the repeated task's prompts differ from the plain task's
    (include / "r4.yaml").write_text(
        f"include: {Path(__file__).resolve().parents[1] / 'tasks/gpqa_diamond/inftythink_gpqa_diamond.yaml'}\n"
        "task: itt_gpqa_r4\nrepeats: 4\ndescription: 'Four tries {{id}}.'\n")
    rows = load_rows("gpqa_diamond", DATA)[:len(REPEATS)]
    answers = {"R": gold_response, "W": wrong_response}
    first_rules = [{"match": f"Four tries {row['id']}.", "outputs": [answers[x]("gpqa_diamond", row)[1] for x in pattern]}
                   for row, pattern in zip(rows, REPEATS)]
    run = run_lm_eval(tmp_path, wrong_response, limit=6, extra_tasks=["itt_gpqa_r4"], include=include,
                      first_rules=first_rules)
    for task in TASKS:
        metrics = run["results"][task]
        assert metrics["acc,none"] == 0.0 and metrics["pass@1,none"] == 0.0, task
        assert all(r["acc"] == 0.0 for r in run["samples"][task]), task
    r4 = {r["doc"]["id"]: r for r in run["samples"]["itt_gpqa_r4"]}
    assert sorted(r4) == sorted(row["id"] for row in rows)
    for row, pattern in zip(rows, REPEATS):
        got = r4[row["id"]]
        assert len(got["resps"][0]) == 4 and len(got["filtered_resps"][0]) == 4
        right = pattern.count("R")
        wanted = {"acc": right / 4, "pass@4": float(right > 0), "maj@4": float(right > 2)}
        assert {k: got[k] for k in wanted} == wanted, (pattern, got["resps"][0])
    metrics = run["results"]["itt_gpqa_r4"]
    assert metrics["acc,none"] == pytest.approx(sum(p.count("R") / 4 for p in REPEATS) / len(REPEATS))
    assert metrics["pass@4,none"] == pytest.approx(5 / 6) and metrics["maj@4,none"] == pytest.approx(2 / 6)
    assert "maj@1,none" not in run["results"]["inftythink_humaneval"]  # no voting on code
