"""The synthetic digit-sum task: the recurrence, the trace format, the summariser, strict scoring, lm-eval hooks."""

import math

import pytest
from hypothesis import given, settings, strategies as st

from inftythink_eval.scoring import synthetic as S
from inftythink_eval.run.output import PARTIAL_KEYS, SampleOutput
from inftythink_eval.formats.inftythink import OFFICIAL_SOLUTION_RE, split_solution


@pytest.mark.parametrize("x, nxt", [(45, 54), (99, 17), (10, 11), (19, 29), (90, 99)])
def test_step_table(x, nxt):
    assert S.step(x) == nxt


def test_trace_lines_count_down_and_chain():
    p = S.Problem(45, 3)
    assert p.question == "x0=45 n=003"
    assert p.lines() == ["R002 45+09=54", "R001 54+09=63", "R000 63+09=72"]
    assert p.answer == "72"
    trace, conclusion = split_solution(p.solution())
    assert trace == "R002 45+09=54\n\nR001 54+09=63\n\nR000 63+09=72" and conclusion == "72"


# no deadline: a 300-step trace can take longer than Hypothesis's default 200 ms on a loaded machine, and how
# long an example takes is not what this checks
@settings(deadline=None)
@given(st.integers(10, 99), st.integers(1, 300))
def test_every_solution_matches_the_official_regex_and_parses_back(x0, n):
    p = S.Problem(x0, n)
    assert OFFICIAL_SOLUTION_RE.match(p.solution())
    assert S.parse_question(p.question) == p
    assert S.step_accuracy(p.trace(), p) == 1.0
    assert S.summarise(p.question, [p.trace()]) == f"R000 x={p.answer}"


def test_summariser_reports_the_state_after_the_last_span():
    p = S.Problem(45, 5)
    spans = ["\n\n".join(p.lines()[:2]), "\n\n".join(p.lines()[2:4])]
    assert S.summarise(p.question, spans) == "R001 x=81"
    with pytest.raises(ValueError, match="span has no step line"):
        S.summarise(p.question, ["no steps here"])


def test_bad_problems_are_clear_errors():
    with pytest.raises(ValueError, match="x0 must be a 2-digit start value"):
        S.Problem(5, 3)
    with pytest.raises(ValueError, match="n \\(the depth\\) must be"):
        S.Problem(50, 0)
    with pytest.raises(ValueError, match="expected 'x0=<2 digits> n=<3 digits>'"):
        S.parse_question("what is 2+2")


def test_scoring_is_strict():
    assert S.is_correct("72", "72") and S.is_correct(" 72\n", "72") and S.is_correct("7", "07")
    assert not S.is_correct("R000 63+09=72", "72"), "a trace cut short is not an answer"
    assert not S.is_correct("73", "72") and not S.is_correct("", "72")


def test_documents_are_reproducible_and_prefix_stable():
    assert S.documents(24, 8, 1234) == S.documents(24, 32, 1234)[:8], "a smaller sample is a prefix of a larger one"
    assert S.documents(24, 8, 1234) != S.documents(24, 8, 1)
    assert {d["depth"] for d in S.documents(24, 8, 1234)} == {24}


def test_lm_eval_hooks():
    ds = S.lm_eval_dataset(depth=12, num_samples=3, seed=7, version=1)
    doc = ds["test"][0]
    stats = {"tok": 200, "lat": 0.5, "rounds": 2, "peak_ctx": 180, "truncated": 0, "format_fail": 0}
    sample = SampleOutput(doc["answer"], stats)
    out = S.lm_eval_results(doc, [sample])
    declared = {k: v for k, v in sample.stats.items() if k not in PARTIAL_KEYS}  # summary-only keys: not declared
    assert set(PARTIAL_KEYS) & set(sample.stats) and not set(PARTIAL_KEYS) & set(out)
    assert out == {"acc": 1.0, **declared} and {**out, **stats} == out, "the engine's stats pass through"
    wrong = S.lm_eval_results(doc, ["<think>\nR000\n</think>xx"])
    assert wrong["acc"] == 0.0 and math.isnan(wrong["tok"]), "another model's plain string: stats are NaN"
    assert S.lm_eval_results(doc, [f"<think>\n...\n</think>{doc['answer']}"])["acc"] == 1.0
    with pytest.raises(ValueError, match="depth and num_samples must be >= 1"):
        S.lm_eval_dataset(depth=0)
