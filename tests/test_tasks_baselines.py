"""Our tasks under lm-eval's own ``hf`` model (vanilla baselines), as the README's budget rule says to run them.

The task budget (``max_gen_toks: 32768``) is larger than most models' window; lm-eval's ``hf`` asserts and its
``vllm`` truncates the prompt away. The rule (README, "Baselines with lm-eval's own models"): pass
``--gen_kwargs max_gen_toks=N`` with N + the task's longest prompt <= the model's length, and
``think_end_token=</think>`` in ``--model_args``. The results carry the same metric names as an inftythink run.
"""

import json
import math

import pytest

from conftest import LM_EVAL, run_cli
from inftythink_eval.scoring.hooks import math_results


@pytest.mark.slow  # about 2 minutes on 2 busy cores
def test_math500_under_lm_evals_hf_model(tmp_path, smollm2, data_dir):
    from transformers import AutoTokenizer

    out = tmp_path / "out"
    run_cli([*LM_EVAL, "--model", "hf", "--model_args", f"pretrained={smollm2},think_end_token=</think>",
             "--tasks", "inftythink_math500", "--limit", "1", "--gen_kwargs", "max_gen_toks=32",
             "--apply_chat_template", "--device", "cpu", "--output_path", str(out), "--log_samples"], timeout=900)
    folder = next(p for p in out.iterdir() if p.is_dir())
    results = json.loads(max(folder.glob("results_*.json")).read_text())
    assert results["config"]["model"] == "hf"
    metrics = results["results"]["inftythink_math500"]
    for name in ("acc", "pass@1", "maj@1", "check_timeout", "tok", "lat", "rounds"):
        assert f"{name},none" in metrics, (name, sorted(metrics))
    # another model's plain strings carry no engine stats: NaN, never a made-up number
    assert all(math.isnan(metrics[f"{name},none"]) for name in ("tok", "lat", "rounds", "peak_ctx"))
    (sample,) = [json.loads(line) for line in max(folder.glob("samples_*.jsonl")).read_text().splitlines()]
    response, judged = sample["resps"][0][0], sample["filtered_resps"][0][0]
    # the --gen_kwargs budget replaced the task's 32768 tokens; our filter judged lm-eval's plain string
    assert 0 < len(AutoTokenizer.from_pretrained(smollm2).encode(response)) <= 32, response
    assert judged in response and sample["acc"] == metrics["acc,none"] == math_results(sample["doc"], [[response]])["acc"]
