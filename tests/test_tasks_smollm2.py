"""The real small model (SmolLM2-135M-Instruct) on two rows of every task, vanilla and iterative,
through ``lm_eval --model inftythink``: the run ends and every metric is in the results.

Slow (several minutes on 2 CPU cores: seven tasks, two modes), so marked ``slow``;
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
from inftythink_eval.benchdata import BENCHMARKS

DATA = str(DATA_DIR)
MODES = {"vanilla": "mode=vanilla",
         "iterative": "mode=summarize,eta=16,summary_tokens=16,max_rounds=2"}


@pytest.mark.slow
@pytest.mark.parametrize("mode", list(MODES))
def test_smollm2_on_every_task(tmp_path, mode):
    from inftythink_eval.fetch import smollm2_folder

    args = f"pretrained={smollm2_folder()},backend=hf,batch_size=16,{MODES[mode]}"
    cmd = [LM_EVAL_BIN, "--model", "inftythink", "--model_args", args, "--tasks", "inftythink_all", "--limit", "2",
           "--gen_kwargs", "max_gen_toks=32", "--confirm_run_unsafe_code", "--output_path", str(tmp_path),
           "--log_samples"]
    env = dict(os.environ, INFTYTHINK_DATA_DIR=DATA, HF_ALLOW_CODE_EVAL="1")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(Path(glob.glob(str(tmp_path / "*" / "results_*.json"))[0]).read_text())["results"]
    for name, bench in BENCHMARKS.items():
        metrics = results[f"inftythink_{name}"]
        wanted = ["acc", "pass@1", "check_timeout", "tok", "lat", "rounds", "peak_ctx", "truncated", "format_fail"]
        wanted += ["maj@1"] if bench.family != "code" else []
        for metric in wanted:
            value = metrics[f"{metric},none"]
            assert isinstance(value, (int, float)) and not math.isnan(value), (name, metric, value)
        assert 0.0 <= metrics["acc,none"] <= 1.0 and metrics["rounds,none"] >= 1 and metrics["lat,none"] > 0
    assert "acc,none" in results["inftythink_all"]
