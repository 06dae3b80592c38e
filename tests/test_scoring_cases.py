"""Table-driven checker tests: every case in tests/data/checker_cases.json (>= 150), math and choice."""

import json
from pathlib import Path

import pytest

from inftythink_eval.scoring import check_many, extract_choice

CASES = json.loads((Path(__file__).parent / "data" / "checker_cases.json").read_text())["cases"]
MATH = [c for c in CASES if c["kind"] == "math"]
CHOICE = [c for c in CASES if c["kind"] == "choice"]


def test_table_is_big_and_covers_every_style():
    assert len(CASES) >= 150
    tags = {c["tag"] for c in CASES}
    for needed in ("fraction", "interval", "tuple", "degrees", "units", "text", "matrix", "pi", "roots", "percent",
                   "aime leading zeros", "amc floats", "near-miss", "multiple boxes", "no box", "malformed latex"):
        assert needed in tags, needed
    assert any(not c["correct"] for c in MATH) and any(c["correct"] for c in MATH)


@pytest.fixture(scope="module")
def math_verdicts():
    verdicts = check_many([(c["response"], c["gold"]) for c in MATH])  # in parallel, each under the time limit
    return {c["id"]: v for c, v in zip(MATH, verdicts)}


@pytest.mark.parametrize("case", MATH, ids=[c["id"] for c in MATH])
def test_math_case(case, math_verdicts):
    verdict = math_verdicts[case["id"]]
    assert verdict.note != "timeout", case
    assert verdict.correct is case["correct"], (case, verdict)


@pytest.mark.parametrize("case", CHOICE, ids=[c["id"] for c in CHOICE])
def test_choice_case(case):
    assert (extract_choice(case["response"]) == case["gold"]) is case["correct"], case
