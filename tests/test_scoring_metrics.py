"""pass@k, G-Pass@k and maj@k against hand-computed values; per-question metrics over all n samples; the task
YAMLs declare every metric name the code returns, and the real lm_eval CLI reports G-Pass@k."""

import json
import math
import pickle
import re
from pathlib import Path

import pytest

from conftest import LM_EVAL, run_cli
from inftythink_eval.run.output import PARTIAL_KEYS, STAT_KEYS, SampleOutput
from inftythink_eval.scoring import maj_at_k, pass_at_k, question_metrics, report_ks
from inftythink_eval.scoring.metrics import G_PASS_THRESHOLDS, g_pass_at_k, mean_present, mg_pass_at_k, stat_means

ROOT = Path(__file__).resolve().parents[1]


def test_pass_at_k_hand_computed():
    assert pass_at_k(4, 2, 1) == pytest.approx(0.5)
    assert pass_at_k(4, 2, 2) == pytest.approx(1 - 1 / 6)      # 1 - C(2,2)/C(4,2)
    assert pass_at_k(4, 2, 3) == 1.0                            # n - c < k
    assert pass_at_k(16, 3, 4) == pytest.approx(1 - 715 / 1820)  # 1 - C(13,4)/C(16,4)
    assert pass_at_k(5, 0, 5) == 0.0 and pass_at_k(5, 5, 1) == 1.0
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)


def test_maj_at_k_hand_computed():
    keys, ok = ["7", "8", "8", "7", "7"], [True, False, False, True, True]
    assert maj_at_k(keys, ok, 1) == 1.0
    assert maj_at_k(keys, ok, 3) == 0.0          # 8 wins 2:1
    assert maj_at_k(keys, ok, 4) == 1.0          # 2:2 tie -> the answer seen first (7)
    assert maj_at_k(keys, ok, 5) == 1.0
    assert maj_at_k([None, "8", None], [False, False, False], 3) == 0.0
    assert maj_at_k([None, None], [False, False], 2) == 0.0


def test_report_ks():
    assert report_ks(1) == [1] and report_ks(4) == [1, 2, 4] and report_ks(16) == [1, 2, 4, 8, 16]
    assert report_ks(6) == [1, 2, 4]


def test_question_metrics_scores_all_four_samples_and_averages_stats():
    samples = [SampleOutput("b", {"tok": 10, "lat": 1.0, "rounds": 1, "peak_ctx": 5, "truncated": 0, "format_fail": 0}),
               SampleOutput("a", {"tok": 20, "lat": 2.0, "rounds": 2, "peak_ctx": 7, "truncated": 1, "format_fail": 0}),
               SampleOutput("a", {"tok": 30, "lat": 3.0, "rounds": 3, "peak_ctx": 9, "truncated": 0, "format_fail": 1}),
               SampleOutput("c", {"tok": 40, "lat": 4.0, "rounds": 4, "peak_ctx": 11, "truncated": 1, "format_fail": 1})]
    out = question_metrics([False, True, True, False], samples, keys=["b", "a", "a", "c"], timeouts=1, unclosed=2)
    assert out["acc"] == 0.5 and out["pass@1"] == 0.5 and out["pass@2"] == pytest.approx(5 / 6) and out["pass@4"] == 1.0
    # the vote differs from pass@k: the first sample (b) is wrong, a 1:1 tie goes to it, a wins 2:1:1 over four
    assert out["maj@1"] == 0.0 and out["maj@2"] == 0.0 and out["maj@4"] == 1.0
    assert out["tok"] == 25 and out["lat"] == 2.5 and out["rounds"] == 2.5 and out["peak_ctx"] == 8
    assert out["truncated"] == 0.5 and out["format_fail"] == 0.5 and out["check_timeout"] == 0.25
    assert out["think_unclosed"] == 0.5 and out["error"] == 0.0


def test_plain_strings_give_nan_stats():
    out = question_metrics([True], ["plain"], keys=None)
    assert all(math.isnan(out[name]) for name in STAT_KEYS if name not in ("error", *PARTIAL_KEYS)), out
    assert not set(PARTIAL_KEYS) & set(out)  # no sample has them: the question is left out of their means
    assert out["error"] == 0.0 and "maj@1" not in out and out["acc"] == 1.0 and out["pass@1"] == 1.0


def test_a_failed_sample_is_left_out_of_acc_and_counted_in_error():
    ok = SampleOutput("42", {"tok": 10, "error": 0})
    bad = SampleOutput("", {"tok": 3, "error": 1})
    out = question_metrics([True, False], [ok, bad])
    assert out["acc"] == 1.0 and out["error"] == 0.5 and out["tok"] == 10
    alone = question_metrics([False], [bad])
    assert alone["acc"] == 0.0 and alone["error"] == 1.0   # no answered sample: counted as unsolved


# --- G-Pass@k (arXiv 2412.13147, lighteval's GPassAtK) --------------------------------------------------------------
def test_g_pass_at_k_hand_computed():
    # n=4, c=2, k=2: C(4,2) = 6 draws; both correct in C(2,2) = 1 of them, at least one in 6 - C(2,2) = 5
    assert g_pass_at_k(4, 2, 2, 0.5) == pytest.approx(5 / 6)      # ceil(0.5*2) = 1 of 2
    assert g_pass_at_k(4, 2, 2, 1.0) == pytest.approx(1 / 6)      # 2 of 2
    assert g_pass_at_k(4, 2, 2, 0.25) == pytest.approx(5 / 6)     # ceil(0.5) = 1
    assert g_pass_at_k(4, 2, 2, 0.75) == pytest.approx(1 / 6)     # ceil(1.5) = 2
    assert mg_pass_at_k(4, 2, 2) == pytest.approx(1 / 6)          # (2/2) * P(2 of 2)
    # n=6, c=3, k=4: C(6,4) = 15; P(X=1) = 3/15, P(X=2) = 9/15, P(X=3) = 3/15
    assert [g_pass_at_k(6, 3, 4, t) for t in G_PASS_THRESHOLDS] == pytest.approx([1.0, 1.0, 12 / 15, 3 / 15, 0.0])
    assert mg_pass_at_k(6, 3, 4) == pytest.approx(0.5 * (3 / 15 + 0))  # (2/4) * (P(X>=3) + P(X>=4))
    # n=16, c=4: the numbers the CLI test below expects
    assert g_pass_at_k(16, 4, 4, 0.5) == pytest.approx((6 * 66 + 4 * 12 + 1) / 1820)
    with pytest.raises(ValueError, match="tau"):
        g_pass_at_k(4, 2, 2, 1.5)
    with pytest.raises(ValueError, match="2 <= k"):
        mg_pass_at_k(4, 2, 1)


def test_g_pass_at_k_bounds_and_monotone_in_tau():
    from scipy.stats import hypergeom  # an independent implementation of the same tail

    taus = [i / 40 for i in range(41)]
    for n in range(1, 13):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert g_pass_at_k(n, c, k, 0.0) == pytest.approx(pass_at_k(n, c, k), abs=1e-12)
                assert g_pass_at_k(n, c, k, 1e-9) == pytest.approx(pass_at_k(n, c, k), abs=1e-12)
                assert g_pass_at_k(n, c, k, 1.0) == pytest.approx(math.comb(c, k) / math.comb(n, k), abs=1e-12)
                values = [g_pass_at_k(n, c, k, t) for t in taus]
                assert all(a >= b for a, b in zip(values, values[1:])), (n, c, k, values)
                for t in G_PASS_THRESHOLDS:
                    m = max(math.ceil(t * k), 1)
                    assert g_pass_at_k(n, c, k, t) == pytest.approx(hypergeom.sf(m - 1, n, c, k), abs=1e-12)
                if k >= 2 and k % 2 == 0:  # lighteval's sum is the integral 2 * int_{0.5}^{1} G-Pass@k_tau dtau
                    cells = 50 * k  # midpoints of cells whose edges fall on every step i/k: the sum is exact
                    fine = [g_pass_at_k(n, c, k, 0.5 + (i + 0.5) / (2 * cells)) for i in range(cells)]
                    assert mg_pass_at_k(n, c, k) == pytest.approx(sum(fine) / cells, abs=1e-12)


def test_question_metrics_report_g_pass_beside_pass_at_k():
    out = question_metrics([True, False, True, False], ["x"] * 4)
    ks = report_ks(4)
    for k in ks:
        assert out[f"g-pass@{k}_0.0"] == out[f"pass@{k}"]
        assert [out[f"g-pass@{k}_{t}"] for t in G_PASS_THRESHOLDS] == [g_pass_at_k(4, 2, k, t) for t in G_PASS_THRESHOLDS]
    assert out["g-pass@2_1.0"] == pytest.approx(1 / 6) and out["mg-pass@2"] == pytest.approx(1 / 6)
    assert "mg-pass@1" not in out and "g-pass@8_0.5" not in out
    names = {k for k in out if "g-pass" in k}
    assert names == {f"g-pass@{k}_{t}" for k in ks for t in G_PASS_THRESHOLDS} | {"mg-pass@2", "mg-pass@4"}


def _declared(template: str) -> dict[str, str]:
    text = (ROOT / "tasks" / "_base" / template).read_text()
    return dict(re.findall(r"\{metric: ([^,]+), aggregation: ([^,]+),", text))


def test_the_task_yamls_declare_every_metric_the_code_returns():
    """lm-eval aggregates a process_results key only if the YAML declares it (else it warns and guesses a mean)."""
    declared = _declared("common_template")
    for n in (1, 3, 64):
        samples = [SampleOutput("x", {name: 1.0 for name in STAT_KEYS}) for _ in range(n)]
        out = question_metrics([i % 2 == 0 for i in range(n)], samples, keys=["a"] * n)
        assert set(out) <= set(declared), sorted(set(out) - set(declared))
    full = [SampleOutput("x", {name: 1.0 for name in STAT_KEYS})] * 64
    out = question_metrics([True] * 64, full, keys=["a"] * 64)
    assert set(declared) == set(out), sorted(set(declared) ^ set(out))
    assert set(declared.values()) == {"mean"}  # a question without a PARTIAL_KEYS stat omits it: mean over the rest


# --- per-sample numbers: partial stats, old responses ---------------------------------------------------------------
def test_partial_stats_average_over_the_samples_that_have_them():
    base = {name: 1.0 for name in STAT_KEYS}
    samples = [SampleOutput("a", {**base, "compression": 4.0, "early_answer": 1, "ttft": 0.5}),
               SampleOutput("b", {**base, "compression": None, "early_answer": None, "ttft": None}),
               SampleOutput("c", {**base, "compression": 2.0, "early_answer": 0, "ttft": 0.25})]
    means = stat_means(samples)
    assert means["compression"] == 3.0 and means["early_answer"] == 0.5
    assert math.isnan(means["ttft"])  # a time not measured for one sample is not averaged over the others
    assert math.isnan(stat_means([samples[1]])["compression"])
    assert question_metrics([True] * 3, samples)["compression"] == 3.0
    alone = question_metrics([True], [samples[1]])
    assert "compression" not in alone and "early_answer" not in alone and alone["tok"] == 1.0
    assert mean_present([1.0, math.nan, 3.0]) == 2.0 and math.isnan(mean_present([math.nan])) and math.isnan(mean_present([]))


def test_responses_made_before_the_new_stats_still_score():
    old = {"tok": 10, "lat": 1.0, "rounds": 1, "peak_ctx": 5, "truncated": 0, "format_fail": 0, "error": 0}
    response = SampleOutput("a", old)
    assert all(math.isnan(response.stats[k]) for k in ("kv_tokens", "ttft", "decode", "summary_tok", "compression"))
    revived = pickle.loads(pickle.dumps(response))
    legacy = SampleOutput.__new__(SampleOutput, "a", old, "t/0/0")  # what an old pickle's reduce tuple calls
    out = question_metrics([True, True], [revived, legacy])
    assert out["tok"] == 10 and math.isnan(out["kv_tokens"]) and "compression" not in out and out["acc"] == 1.0


# --- the real lm_eval CLI ---------------------------------------------------------------------------------------------
def test_lm_eval_reports_g_pass_at_k(tmp_path, data_dir):
    """16 samples of MATH500's first question, 4 of them right: the results carry lighteval's G-Pass names."""
    right, wrong = "\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", "\\boxed{7}"
    script = tmp_path / "script.json"
    script.write_text(json.dumps([{"match": "", "outputs": [right] * 4 + [wrong] * 12}]))
    out = tmp_path / "out"
    run_cli([*LM_EVAL, "--model", "inftythink", "--model_args", f"backend=scripted,script={script},mode=vanilla",
             "--tasks", "inftythink_math500_n16", "--limit", "1", "--output_path", str(out)],
            env={"INFTYTHINK_DATA_DIR": str(data_dir)}, timeout=600)
    results = json.loads(max(out.rglob("results_*.json")).read_text())["results"]["inftythink_math500_n16"]
    assert results["acc,none"] == 0.25
    assert results["g-pass@4_0.5,none"] == pytest.approx(445 / 1820)             # P(at least 2 of 4)
    assert results["g-pass@2_1.0,none"] == pytest.approx(6 / 120)                # C(4,2) / C(16,2)
    assert results["g-pass@16_0.25,none"] == 1.0 and results["g-pass@16_0.5,none"] == 0.0
    assert results["g-pass@8_0.0,none"] == pytest.approx(results["pass@8,none"])
    assert results["mg-pass@16,none"] == 0.0 and "mg-pass@1,none" not in results
    for name in ("kv_tokens", "ttft", "decode", "summary_tok"):
        assert f"{name},none" in results, name
    assert "compression,none" not in results and "early_answer,none" not in results  # vanilla: no summaries
