"""The real small model (SmolLM2-135M-Instruct) on the first row of every task, vanilla and iterative,
through ``lm_eval --model inftythink``: the run ends, every metric is in the results, vanilla answers in one
round, and iterative (summarize) mode really iterates: a round cut at ``eta`` tokens is summarised and a
second round follows.

Slow (minutes on 2 CPU cores: seven tasks, two modes), so marked ``slow``;
run with ``python -m pytest -m slow tests/test_tasks_smollm2.py``.
"""

import glob
import json
import math
import os
import subprocess
from pathlib import Path

import pytest

from conftest import DATA_DIR, LM_EVAL_BIN
from inftythink_eval.scoring.datasets import BENCHMARKS

DATA = str(DATA_DIR)
MODES = {"vanilla": "mode=vanilla",
         "iterative": "mode=summarize,eta=16,summary_tokens=16,max_rounds=2"}


@pytest.mark.slow
@pytest.mark.parametrize("mode", list(MODES))
def test_smollm2_on_every_task(tmp_path, mode):
    from inftythink_eval.checkpoints.fetch import smollm2_folder

    args = f"pretrained={smollm2_folder()},backend=hf,batch_size=16,{MODES[mode]}"
    # the chat template, as the README runs an instruct model: without it SmolLM2 ends most answers at once
    cmd = [LM_EVAL_BIN, "--model", "inftythink", "--model_args", args, "--tasks", "inftythink_all", "--limit", "1",
           "--gen_kwargs", "max_gen_toks=32", "--apply_chat_template", "--confirm_run_unsafe_code",
           "--output_path", str(tmp_path), "--log_samples"]
    env = dict(os.environ, INFTYTHINK_DATA_DIR=DATA, HF_ALLOW_CODE_EVAL="1")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    folder = Path(glob.glob(str(tmp_path / "*" / "results_*.json"))[0]).parent
    results = json.loads(next(folder.glob("results_*.json")).read_text())["results"]
    traces: dict[str, list] = {}  # task -> its samples' traces (trace_id is task/doc/repeat)
    for line in (l for f in folder.glob("inftythink_traces_*.jsonl") for l in f.read_text().splitlines()):
        trace = json.loads(line)
        traces.setdefault(trace["trace_id"].split("/")[0], []).append(trace)
    for name, bench in BENCHMARKS.items():
        task = f"inftythink_{name}"
        metrics = results[task]
        wanted = ["acc", "pass@1", "check_timeout", "tok", "lat", "rounds", "peak_ctx", "truncated", "format_fail"]
        wanted += ["maj@1"] if bench.family != "code" else []
        for metric in wanted:
            value = metrics[f"{metric},none"]
            assert isinstance(value, (int, float)) and not math.isnan(value), (name, metric, value)
        assert 0.0 <= metrics["acc,none"] <= 1.0 and metrics["lat,none"] > 0
        roles = [[c["role"] for c in t["calls"]] for t in traces[task]]
        if mode == "vanilla":
            assert metrics["rounds,none"] == 1.0 and roles == [["reason"]], (task, roles)
        else:  # cut at eta=16 tokens (greedy: the same cut every run), summarised, answered in a second round
            assert metrics["rounds,none"] == 2.0 and roles == [["reason", "summary", "reason"]], (task, roles)
    assert "acc,none" in results["inftythink_all"]
