"""Table-driven checker tests: every case in tests/data/checker_cases.json (>= 150), math and choice."""

import json
from pathlib import Path

import pytest

from inftythink_eval.scoring import check_many, extract_choice

TABLE = json.loads((Path(__file__).parent / "data" / "checker_cases.json").read_text())
CASES, PROVENANCE = TABLE["cases"], TABLE["_provenance"]
MATH = [c for c in CASES if c["kind"] == "math"]
CHOICE = [c for c in CASES if c["kind"] == "choice"]


def test_table_is_big_and_covers_every_style():
    assert len(CASES) >= 150
    tags = {c["tag"] for c in CASES}
    for needed in ("fraction", "interval", "tuple", "degrees", "units", "text", "matrix", "pi", "roots", "percent",
                   "aime leading zeros", "amc floats", "near-miss", "multiple boxes", "no box", "malformed latex"):
        assert needed in tags, needed
    assert any(not c["correct"] for c in MATH) and any(c["correct"] for c in MATH)


def test_every_tag_says_where_its_expected_verdicts_come_from():
    assert set(PROVENANCE) - {"_how"} == {c["tag"] for c in CASES}
    assert all(isinstance(rule, str) and rule.strip() for rule in PROVENANCE.values())


@pytest.fixture(scope="module")
def math_verdicts():
    # in parallel worker processes; the limit only bounds a hang (the default 10 s would also have to cover a
    # cold worker importing sympy on a loaded machine), the time limit itself is tested in test_scoring_math.py
    verdicts = check_many([(c["response"], c["gold"]) for c in MATH], limit=300)
    return {c["id"]: v for c, v in zip(MATH, verdicts)}


@pytest.mark.parametrize("case", MATH, ids=[c["id"] for c in MATH])
def test_math_case(case, math_verdicts):
    verdict = math_verdicts[case["id"]]
    assert verdict.note != "timeout", case
    assert verdict.correct is case["correct"], (case, verdict)


@pytest.mark.parametrize("case", CHOICE, ids=[c["id"] for c in CHOICE])
def test_choice_case(case):
    assert (extract_choice(case["response"]) == case["gold"]) is case["correct"], case
