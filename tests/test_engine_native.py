"""Native InftyThink mode on the scripted backend: prompts byte for byte, stop rules, retries, accounting."""

from __future__ import annotations

import time

import pytest

from inftythink_eval.backends.base import SamplingParams
from inftythink_eval.backends.scripted import ScriptedBackend
from inftythink_eval.engine.loop import Engine
from inftythink_eval.modes import ModeParams, Sample

Q = "What is 6 times 7?"


def round_out(think: str, summary: str) -> str:
    return f"<think>\n{think}\n</think>\n<summary>\n{summary}\n</summary>"


def run(script, params=ModeParams(), question=Q, max_tokens=1000):
    backend = ScriptedBackend(script)
    engine = Engine(backend, "inftythink", params, progress=False)
    trace = engine.run([Sample("s", question, SamplingParams(max_tokens=max_tokens))])[0]
    return backend, trace


THREE_ROUNDS = [
    {"match": "<history>S2 progress</history>", "output": "<think>\nfinish it\n</think>The answer is \\boxed{42}."},
    {"match": "<history>S1 progress</history>", "output": round_out("second part", "S2 progress")},
    {"match": Q, "output": round_out("first part", "S1 progress")},
]


def test_prompts_match_protocol_bytes_and_history_is_replaced():
    _, trace = run(THREE_ROUNDS)
    prompts = [c.prompt for c in trace.calls]
    # PROTOCOL.md: round 1 `User:{question}Assistant:`, round i>1 `User:{question}Assistant:<history>{S_(i-1)}</history>`
    assert prompts == [
        "User:What is 6 times 7?Assistant:",
        "User:What is 6 times 7?Assistant:<history>S1 progress</history>",
        "User:What is 6 times 7?Assistant:<history>S2 progress</history>",
    ]
    assert "S1 progress" not in prompts[2]  # replaced, never accumulated
    assert trace.final.answer == "The answer is \\boxed{42}."
    assert trace.totals().rounds == 3 and not trace.totals().truncated


def test_custom_roles_are_used():
    _, trace = run([{"match": "", "output": "<think>\nx\n</think>done"}], ModeParams(user_role="<|U|>", assistant_role="<|A|>"))
    assert trace.calls[0].prompt == "<|U|>What is 6 times 7?<|A|>"


def test_output_without_summary_ends_the_sample():
    _, trace = run([{"match": "", "output": "<think>\nshort\n</think>It is 42."}])
    assert len(trace.calls) == 1 and trace.final.answer == "It is 42." and trace.final.reason == "done"


def test_truncated_round_ends_the_sample_and_is_flagged():
    long_think = "<think>\n" + " ".join(["word"] * 50)
    backend, trace = run([{"match": "", "output": long_think}], ModeParams(round_tokens=10))
    assert len(trace.calls) == 1
    assert trace.calls[0].finish_reason == "length" and trace.calls[0].output_tokens == 10
    assert trace.totals().truncated and trace.final.reason == "length"


def test_truncation_inside_a_summary_is_a_format_failure_and_final():
    text = round_out("a b c", "one two three four five six seven")
    _, trace = run([{"match": "", "output": text}], ModeParams(round_tokens=8))
    assert trace.final.reason == "format" and trace.totals().truncated and trace.totals().format_fail == 1


BROKEN = "<think>\nno newline before the tag</think><summary>S</summary>"


def test_parse_failure_without_retry_is_final_and_counted():
    _, trace = run([{"match": Q, "outputs": [BROKEN, round_out("ok", "S")]}])
    assert len(trace.calls) == 1 and trace.final.reason == "format"
    assert trace.totals().format_fail == 1


def test_parse_failure_with_retry_repeats_the_same_prompt_and_counts_it():
    script = [{"match": "<history>S</history>", "output": "<think>\nend\n</think>42"},
              {"match": Q, "outputs": [BROKEN, BROKEN, round_out("ok", "S")]}]
    backend, trace = run(script, ModeParams(retry=True, max_retries=3))
    roles = [c.role for c in trace.calls]
    assert roles == ["reason", "retry", "retry", "reason"]
    assert trace.calls[0].prompt == trace.calls[1].prompt == trace.calls[2].prompt
    assert trace.totals().format_fail == 2 and trace.final.answer == "42"


def test_retries_are_bounded():
    _, trace = run([{"match": Q, "outputs": [BROKEN]}], ModeParams(retry=True, max_retries=2))
    assert [c.role for c in trace.calls] == ["reason", "retry", "retry"]
    assert trace.final.reason == "format" and trace.totals().format_fail == 3


def test_max_rounds_stops_an_endless_sample():
    _, trace = run([{"match": "", "output": round_out("again", "S")}], ModeParams(max_rounds=4))
    assert trace.totals().rounds == 4 and trace.final.reason == "max_rounds" and trace.totals().truncated


def test_accounting_tok_rounds_peak_and_latency():
    backend = ScriptedBackend(THREE_ROUNDS, delay=0.01)
    engine = Engine(backend, "inftythink", progress=False)
    start = time.time()
    traces = engine.run([Sample(str(i), Q, SamplingParams(max_tokens=1000)) for i in range(3)])
    wall = time.time() - start
    for trace in traces:
        t = trace.totals()
        assert t.tok == sum(backend.count_tokens(c.output) for c in trace.calls)
        assert t.tok == sum(c.output_tokens for c in trace.calls) > 0
        assert t.rounds == 3
        assert t.peak_ctx == max(backend.count_tokens(c.prompt) + backend.count_tokens(c.output) for c in trace.calls)
        assert 0 < t.lat <= wall


def test_each_call_gets_its_own_reproducible_seed():
    from inftythink_eval.modes import _seeded

    params = SamplingParams(max_tokens=100, temperature=0.7, seed=5)
    seeds = [_seeded(params, i).seed for i in range(4)]
    assert len(set(seeds)) == 4 and seeds == [_seeded(params, i).seed for i in range(4)]
    assert _seeded(SamplingParams(max_tokens=5), 3).seed is None  # no base seed: nothing is invented
    with pytest.raises(ValueError, match="max_tokens must be an integer >= 1"):
        SamplingParams(max_tokens=0)


def test_text_before_think_is_carried_into_the_next_prompt_as_the_official_loop_does():
    """The official loop builds round i+1 from the regex's instruction group (prompt + what the model wrote
    before <think>) with the old history removed: byte for byte."""
    from inftythink_eval.backends.scripted import ScriptedBackend
    from inftythink_eval.backends.base import SamplingParams
    from inftythink_eval.engine.loop import Engine
    from inftythink_eval.modes import Sample

    script = [{"match": "<history>B</history>", "output": "<think>\nz\n</think>done"},
              {"match": "<history>A</history>", "output": "Then.<think>\ny\n</think>\n<summary>\nB\n</summary>"},
              {"match": "", "output": "Sure.<think>\nx\n</think>\n<summary>\nA\n</summary>"}]
    trace = Engine(ScriptedBackend(script), "inftythink", progress=False).run(
        [Sample("s", "Q?", SamplingParams(max_tokens=100))])[0]
    assert [c.prompt for c in trace.calls] == ["User:Q?Assistant:", "User:Q?Assistant:Sure.<history>A</history>",
                                               "User:Q?Assistant:Sure.Then.<history>B</history>"]
    assert trace.final.answer == "done"


def test_a_summary_holding_the_history_close_tag_is_removed_whole_as_the_official_loop_does():
    """ZJU-REAL/InftyThink's loop removes the old history with the greedy ``re.sub(r'<history>.+</history>', '',
    instruction, flags=re.S)`` (PROTOCOL.md, "Native format"): from the first ``<history>`` to the last
    ``</history>``.  A lazy removal would stop at the ``</history>`` inside the summary and carry `` tail</history>``
    into round 3."""
    from inftythink_eval.formats.inftythink import next_native_prompt

    s1 = "* step </history> tail"
    script = [{"match": "<history>S2</history>", "output": "<think>\nz\n</think>done"},
              {"match": "<history>" + s1, "output": round_out("y", "S2")},
              {"match": "", "output": round_out("x", s1)}]
    trace = Engine(ScriptedBackend(script), "inftythink", progress=False).run(
        [Sample("s", "Q?", SamplingParams(max_tokens=100))])[0]
    assert [c.prompt for c in trace.calls] == ["User:Q?Assistant:", f"User:Q?Assistant:<history>{s1}</history>",
                                               "User:Q?Assistant:<history>S2</history>"]
    # the official rule's other edges: `.+` needs one character, so an empty history stays; no `<history>`, no change
    assert next_native_prompt("User:Q?Assistant:<history></history>", "S") == \
        "User:Q?Assistant:<history></history><history>S</history>"
    assert next_native_prompt("User:Q?</history>Assistant:", "S") == "User:Q?</history>Assistant:<history>S</history>"
