"""Shared real runs for the leaderboard tests (imported by the other test_leaderboard_* files).

Every run is the real ``lm_eval`` CLI in a subprocess with ``--model inftythink``:
``scripted`` backend runs (exact control of answers and token counts) on two
small tasks over the offline MATH500 and AIME24 files, and one real-model
``inftythink compare`` run (SmolLM2-135M, vanilla and summarize, two real
tasks).  Each run happens once per test process (memoised) in a temporary
folder that is removed at exit.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("INFTYTHINK_DATA_DIR", REPO.parent / "shared" / "data"))
WORK = Path(tempfile.mkdtemp(prefix="inftythink-lb-tests-"))
atexit.register(shutil.rmtree, WORK, ignore_errors=True)
BENCHES = ("math500", "aime24")
LIMIT = 4

TASK_YAML = """task: lbt_{bench}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "{{{{problem}}}}"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: []
  max_gen_toks: 400
  do_sample: false
process_results: !function lbt_utils.process_results
metric_list:
  - {{metric: acc, aggregation: mean, higher_is_better: true}}
  - {{metric: tok, aggregation: mean, higher_is_better: false}}
  - {{metric: lat, aggregation: mean, higher_is_better: false}}
  - {{metric: rounds, aggregation: mean, higher_is_better: false}}
  - {{metric: peak_ctx, aggregation: mean, higher_is_better: false}}
metadata:
  version: 2
"""

UTILS = '''from inftythink_eval.run.output import stats_of


def process_results(doc, results):
    stats = stats_of(results[0])
    return {"acc": float(str(doc["answer"]).lstrip("0") in results[0]),
            **{k: stats[k] for k in ("tok", "lat", "rounds", "peak_ctx")}}
'''


@functools.lru_cache(maxsize=None)
def task_dir() -> Path:
    """Two tiny generation tasks, ``lbt_math500`` and ``lbt_aime24``, over the offline benchmark files."""
    folder = WORK / "tasks"
    folder.mkdir()
    for bench in BENCHES:
        (folder / f"lbt_{bench}.yaml").write_text(TASK_YAML.format(bench=bench, data=DATA / bench / "test.jsonl"))
    (folder / "lbt_utils.py").write_text(UTILS)
    return folder


def questions(bench: str) -> list[dict]:
    lines = (DATA / bench / "test.jsonl").read_text().splitlines()[:LIMIT]
    return [json.loads(line) for line in lines]


def round_outputs(answer: str, think_words: int) -> tuple[str, str]:
    """(summary round, final round) of the scripted model: native mode writes both, vanilla only the final."""
    think = " ".join(["step"] * think_words)
    return (f"<think>\n{think}\n</think>\n<summary>\n* half way\n</summary>",
            f"<think>\n{think}\n</think>The answer is {answer}.")


def write_script(name: str, wrong: tuple = (), verbose: tuple = ()) -> Path:
    """A scripted 'model' folder: it answers every question right, except benches in ``wrong``;
    for benches in ``verbose`` it thinks ten times longer (200 words, not 20).  Native mode: round 1
    writes a summary, round 2 concludes; vanilla mode: one output with the conclusion."""
    folder = WORK / name
    folder.mkdir()
    rules = []
    for bench in BENCHES:
        for q in questions(bench):
            answer = "no idea" if bench in wrong else str(q["answer"]).lstrip("0")
            summary, final = round_outputs(answer, 200 if bench in verbose else 20)
            tail = q["problem"][-60:]
            rules.append({"match": tail + "Assistant:<history>", "output": final})  # inftythink round 2
            rules.append({"match": tail + "Assistant:", "output": summary})
            rules.append({"match": tail, "output": final})  # vanilla: the bare question
    (folder / "script.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rules))
    return folder


def model_args(model: Path) -> str:
    return f"pretrained={model},backend=scripted,script={model / 'script.jsonl'}"


def lm_eval(model: Path, mode: str, out: Path, tasks: str = "lbt_math500,lbt_aime24") -> Path:
    cmd = [sys.executable, "-m", "lm_eval", "--model", "inftythink", "--model_args", f"{model_args(model)},mode={mode}",
           "--tasks", tasks, "--include_path", str(task_dir()), "--limit", str(LIMIT),
           "--output_path", str(out), "--log_samples"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@functools.lru_cache(maxsize=None)
def scripted_two_modes() -> Path:
    """One lm-eval output folder holding a vanilla and an inftythink run of the same scripted model."""
    model = write_script("scripted-good")
    out = WORK / "two-modes"
    lm_eval(model, "vanilla", out)
    lm_eval(model, "inftythink", out)
    return out


@functools.lru_cache(maxsize=None)
def scripted_degraded() -> Path:
    """A fresh run whose MATH500 answers are wrong and whose AIME24 thinking is ten times longer."""
    model = write_script("scripted-bad", wrong=("math500",), verbose=("aime24",))
    return lm_eval(model, "inftythink", WORK / "degraded")


def copy_of(folder: Path, tmp: Path) -> Path:
    target = tmp / folder.name
    shutil.copytree(folder, target)
    return target


REAL_ARGS = "pretrained=zoo:smollm2-135m-instruct,backend=hf,eta=8,max_rounds=2,summary_tokens=8,batch_size=4"


@functools.lru_cache(maxsize=None)
def real_compare() -> tuple[subprocess.CompletedProcess, Path, Path]:
    """``inftythink compare`` on SmolLM2-135M: vanilla vs summarize on two real tasks, one question each."""
    out, store = WORK / "compare-out", WORK / "compare-store"
    cmd = [sys.executable, "-m", "inftythink_eval.cli", "compare", "--model_args", REAL_ARGS,
           "--tasks", "inftythink_math500,inftythink_aime24", "--modes", "vanilla,summarize", "--limit", "1",
           "--gen_kwargs", "max_gen_toks=20", "--apply_chat_template", "--output_path", str(out), "--store", str(store),
           "--bootstrap-iters", "200"]
    env = {**os.environ, "INFTYTHINK_DATA_DIR": str(DATA)}
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc, out, store


def make_record(**changes):
    """A valid hand-made record (for unit tests of gates and validation); ``changes`` override fields."""
    from inftythink_eval.results.records import Record

    n = changes.pop("n", 50)
    acc = changes.get("acc", 0.6)
    tok = changes.get("tok", 1000.0)
    samples = [{"doc_id": i, "acc": 1.0 if i < round(acc * n) else 0.0, "tok": tok, "lat": 1.0, "rounds": 2.0}
               for i in range(n)]
    base = dict(model="m", model_args="pretrained=m", model_source="inftythink", revision="sha256:ab", mode="inftythink",
                mode_params={"max_rounds": 10}, task="inftythink_math500", task_version="1", task_hash="h",
                n_questions=n, samples_per_question=1, limit=None, seeds={}, acc=acc, acc_metric="acc",
                acc_ci=(max(0.0, acc - 0.1), min(1.0, acc + 0.1)), pass_at_k={}, maj_at_k={}, tok=tok, lat=1.0,
                rounds=2.0, peak_ctx=500.0, truncated=0.0, format_fail=0.0, throughput=None, engine="hf",
                batch_size="8", concurrency=None, hardware="cpu", harness_version="0.4.13", inftythink_version="0.1.0",
                git_commit="abc", date="2026-11-25T00:00:00Z", source={"results_file": "r.json", "sha256": "x"},
                lm_eval_args={}, samples=samples)
    base.update(changes)
    return Record(**base)
