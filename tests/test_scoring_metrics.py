"""pass@k and maj@k against hand-computed values; per-question metrics over all n samples."""

import math

import pytest

from inftythink_eval.run.output import STAT_KEYS, SampleOutput
from inftythink_eval.scoring import maj_at_k, pass_at_k, question_metrics, report_ks


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
    assert all(math.isnan(out[name]) for name in STAT_KEYS if name != "error"), out
    assert out["error"] == 0.0 and "maj@1" not in out and out["acc"] == 1.0 and out["pass@1"] == 1.0


def test_a_failed_sample_is_left_out_of_acc_and_counted_in_error():
    ok = SampleOutput("42", {"tok": 10, "error": 0})
    bad = SampleOutput("", {"tok": 3, "error": 1})
    out = question_metrics([True, False], [ok, bad])
    assert out["acc"] == 1.0 and out["error"] == 0.5 and out["tok"] == 10
    alone = question_metrics([False], [bad])
    assert alone["acc"] == 0.0 and alone["error"] == 1.0   # no answered sample: counted as unsolved
