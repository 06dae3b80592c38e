"""Two runs at once on one machine: two real ``lm_eval`` processes, code tasks in both (HumanEval and MBPP
run in the sandbox), one writing gold answers and one wrong answers, sharing one cache folder.  No
interference: each scores exactly its own answers, each cache file holds only its own calls, no sandbox
temp folder is left behind, and a rerun of either is served wholly from the shared cache."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import DATA_DIR, LM_EVAL_BIN
from inftythink_eval.scoring.datasets import load_rows
from inftythink_eval.scoring.hooks import code_prompt
from faults import Outcome, cache_lines, record

TASKS = ("humaneval", "mbpp")
LIMIT = 4


def script(tmp, gold: bool):
    rules = []
    for name in TASKS:
        for row in load_rows(name, str(DATA_DIR))[:LIMIT]:
            if gold:
                body = row["reference"]
            else:
                body = f"def {row['entry_point']}(*args):\n    return None\n" if row["entry_point"] else "x = 1\n"
            rules.append({"match": code_prompt(row), "output": "<think>\nplan\n</think>\n```python\n" + body + "\n```"})
    path = tmp / f"script-{'gold' if gold else 'wrong'}.json"
    path.write_text(json.dumps(rules))
    return path


@pytest.fixture()
def temps():
    """A private TMPDIR per run, in /tmp: sandbox uids must be able to traverse it (pytest's tmp_path is 0700)."""
    made = {}
    yield made
    for folder in made.values():
        shutil.rmtree(folder, ignore_errors=True)


def start(tmp, name, gold, cache, temps):
    if name not in temps:
        temps[name] = Path(tempfile.mkdtemp(prefix=f"itt-{name}-"))
        temps[name].chmod(0o755)
    temp = temps[name]
    args = (f"pretrained={name},backend=scripted,script={script(tmp, gold)},mode=vanilla,cache_dir={cache},"
            f"call_log={tmp / f'calls-{name}.jsonl'}")
    cmd = [LM_EVAL_BIN, "--model", "inftythink", "--model_args", args, "--tasks",
           ",".join(f"inftythink_{t}" for t in TASKS), "--limit", str(LIMIT), "--output_path", str(tmp / f"out-{name}"),
           "--log_samples", "--confirm_run_unsafe_code"]
    env = {**os.environ, "HF_ALLOW_CODE_EVAL": "1", "TMPDIR": str(temp), "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp)


def results(tmp, name) -> dict:
    path = max((tmp / f"out-{name}").glob("*/results_*.json"))  # the latest
    return json.loads(path.read_text())["results"]


def calls(tmp, name) -> int:
    path = tmp / f"calls-{name}.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


def outputs(path: Path, field: str) -> set:
    return {json.loads(line)[field] for line in path.read_text().splitlines()}


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_two_runs_at_once_share_a_cache_folder_and_the_sandbox_without_interference(tmp_path, data_dir, temps):
    cache = tmp_path / "cache"
    began = time.time()
    procs = {"gold": start(tmp_path, "gold-model", True, cache, temps),
             "wrong": start(tmp_path, "wrong-model", False, cache, temps)}
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=800)
        assert proc.returncode == 0, f"{name}: {err[-3000:]}"
    seconds = time.time() - began
    gold, wrong = results(tmp_path, "gold-model"), results(tmp_path, "wrong-model")
    for task in TASKS:
        assert gold[f"inftythink_{task}"]["pass@1,none"] == 1.0, gold
        assert wrong[f"inftythink_{task}"]["pass@1,none"] == 0.0, wrong
    files = sorted(cache.glob("calls-*.jsonl"))
    assert len(files) == 2 and sorted(len(f.read_text().splitlines()) for f in files) == [2 * LIMIT, 2 * LIMIT]
    assert cache_lines(cache) == (4 * LIMIT, 4 * LIMIT)
    # each cache file holds exactly one run's answers (what its backend logged), none of the other's
    answers = [outputs(tmp_path / f"calls-{name}.jsonl", "output") for name in ("gold-model", "wrong-model")]
    assert not answers[0] & answers[1]
    assert sorted((outputs(f, "text") for f in files), key=lambda texts: texts != answers[0]) == answers
    for name in ("gold-model", "wrong-model"):
        assert calls(tmp_path, name) == 2 * LIMIT
        leftovers = list(temps[name].iterdir())
        assert leftovers == [], f"{name} left temp files behind: {leftovers[:5]}"
    rerun = start(tmp_path, "gold-model", True, cache, temps)
    _, err = rerun.communicate(timeout=800)
    assert rerun.returncode == 0, err[-3000:]
    assert calls(tmp_path, "gold-model") == 2 * LIMIT  # nothing asked again: every call came from the cache
    assert results(tmp_path, "gold-model")["inftythink_humaneval"]["pass@1,none"] == 1.0
    record(Outcome("concurrent", "two lm_eval runs at once, code tasks, one cache folder", "verdict", injected=1,
                   runs=3, completed=3, samples=4 * LIMIT, recomputed=0, detail=f"both runs done in {seconds:.0f} s"))
