"""Servers that misbehave: each fault of ``SERVER_FAULTS`` ends the way it was chosen to, in bounded time.

The real ``openai`` backend and engine against ``FaultServer`` on 127.0.0.1 (fast), the real ``lm_eval``
CLI against it (a failed sample is recorded with its reason, the run goes on), and a real
``transformers serve`` killed and restarted mid-run (slow).
"""

from __future__ import annotations

import json

import pytest

from inftythink_eval.testing.faults import ANSWER, SERVER_FAULTS, cache_lines, server_scenario

CUT = ANSWER[:ANSWER.find("four")]  # what every sample's answer is once the stop string is cut


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", list(SERVER_FAULTS))
def test_each_server_fault_ends_as_chosen(name, smollm2, tmp_path):
    faults, ending = SERVER_FAULTS[name]
    outcome = server_scenario(name, smollm2, tmp_path)
    assert outcome.ending == ending, (name, outcome.detail, outcome.extra)
    assert outcome.lost == 0 and outcome.completed == 1
    assert outcome.seconds < 20, f"{name} took {outcome.seconds:.1f} s to resolve"
    if ending in ("retried", "answered"):
        first = "\ufffd\ufffd\x00 " + CUT if name.startswith("invalid UTF-8") else CUT  # replaced, NUL kept
        assert outcome.failed == 0 and outcome.extra["outputs"] == [first] + [CUT] * (outcome.samples - 1)
        if faults:  # each injected fault cost one attempt, then the answer came
            assert outcome.extra["attempts_first"] == len(faults) + (ending == "retried"), outcome.extra
    if ending == "answered":
        assert outcome.extra["stats"]["retries"] == 0
    if ending == "sample failed":
        assert outcome.failed == 1 and "maximum context length" in outcome.extra["errors"][0]
        assert outcome.extra["outputs"][1:] == [CUT] * 3 and outcome.extra["attempts_first"] == 1
    if ending == "run stopped":
        assert "failed after 5 attempts" in outcome.detail and "same cache_dir to resume" in outcome.detail
        assert outcome.failed == 0 and outcome.extra["outputs"] == [CUT] * 4
        assert outcome.recomputed == 0  # counted: no key was written twice
        kept = outcome.extra["kept_before_resume"]
        assert outcome.extra["asked_on_resume"] == 4 - kept  # only the calls not finished before the stop


@pytest.mark.timeout(30)
def test_a_cache_line_is_one_key_and_a_resume_writes_no_key_twice(smollm2, tmp_path):
    outcome = server_scenario("HTTP 503 for good (every retry spent)", smollm2, tmp_path)
    lines, keys = cache_lines(tmp_path / "cache")
    assert lines == keys == 4 and outcome.extra["kept_before_resume"] == 3
