"""The committed tiny models load through the real lm-eval CLI (``pretrained=zoo:<name>``) and score within a
stated tolerance of their committed curve (docs/training_curve.json).  Doubles as a regression check on the engine.

Tolerance: the test runs the first 8 problems of the curve's 32 (same seed, so the same problems); with
greedy decoding the only expected drift is from numerics, so 8 problems may differ from the 32-problem
mean by at most 0.25 in accuracy.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import LM_EVAL_BIN

ROOT = Path(__file__).resolve().parents[1]
CURVE = json.loads((ROOT / "docs" / "training_curve.json").read_text())
TOLERANCE = 0.25
CASES = [  # (variant, extra CLI args, depth): inside the vanilla window, and twice beyond it for InftyThink
    ("vanilla", ["--model_args", "pretrained=zoo:tiny-synthetic-vanilla"], 8),  # the card sets template=native
    ("inftythink", ["--model_args", "pretrained=zoo:tiny-synthetic-inftythink"], 24),
    # the card sets mode=inftythink_plus: its own chat template, <history> prefilled in the assistant turn
    ("inftythink_plus", ["--model_args", "pretrained=zoo:tiny-synthetic-inftythink-plus"], 24),
]


def committed(variant: str, depth: int) -> dict:
    return next(c for c in CURVE["cells"] if c["variant"] == variant and c["depth"] == depth)


@pytest.mark.timeout(1800)  # bounds a hang: each case takes about a minute on 2 busy cores
@pytest.mark.parametrize("variant, args, depth", CASES, ids=[c[0] for c in CASES])
def test_committed_model_scores_its_committed_number(variant, args, depth, tmp_path):
    cmd = [LM_EVAL_BIN, "--model", "inftythink", *args, "--tasks", "inftythink_synthetic",
           "--metadata", json.dumps({"depth": depth, "num_samples": 8, "seed": committed(variant, depth)["seed"]}),
           "--output_path", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=1700)
    assert proc.returncode == 0, proc.stderr[-3000:]
    row = json.loads(next(tmp_path.rglob("results_*.json")).read_text())["results"]["inftythink_synthetic"]
    expected = committed(variant, depth)
    assert abs(row["acc,none"] - expected["acc"]) <= TOLERANCE, (row, expected)
    assert row["rounds,none"] == pytest.approx(expected["rounds"], abs=1.0)
    assert row["tok,none"] > 0 and row["peak_ctx,none"] <= 256, "every round fits the model's 256-token window"


def test_the_plus_card_carries_its_committed_curve():
    from inftythink_eval.checkpoints import cards as zoo

    card = zoo.get_card("tiny-synthetic-inftythink-plus")
    assert card.eval_mode == "inftythink_plus"
    measured = {m["depth"]: m["acc"] for m in card.raw["scores"]["measured"]}
    cells = {c["depth"]: round(c["acc"], 3) for c in CURVE["cells"] if c["variant"] == "inftythink_plus"}
    assert measured == cells and len(cells) == 7, "card scores drifted from docs/training_curve.json"
    summary = json.loads((ROOT / "zoo" / "tiny-synthetic-inftythink-plus" / "train_summary.json").read_text())
    # one run from scratch, with the committed config's settings, in under 30 minutes of wall time on the CPU
    assert summary["resumed_from"] is None and summary["global_step"] == summary["config"]["max_steps"] == 1500
    assert summary["config"]["format"] == "inftythink_plus" and summary["config"]["template"] == "chat"
    config = yaml.safe_load((ROOT / "training" / "configs" / "tiny-synthetic_inftythink_plus.yaml").read_text())
    assert summary["config"]["data"] == config["data"] and summary["config"]["learning_rate"] == config["learning_rate"]
    assert summary["wall_seconds"] < 30 * 60
