"""The per-sample numbers a bounded-context claim rests on (``run.trace``): KV footprint, the latency split and the
summary diagnostics, exact on hand-made calls and on the scripted backend, then through the task hooks, and on the
real SmolLM2 model (``hf``) where the timestamps are the engine's own."""

from __future__ import annotations

import json
import math

import pytest

from inftythink_eval.backends.base import SamplingParams, make_backend
from inftythink_eval.backends.scripted import ScriptedBackend
from inftythink_eval.engine.loop import Engine
from inftythink_eval.formats.inftythink import SUMMARY_INSTRUCTION
from inftythink_eval.modes import ModeParams, Sample
from inftythink_eval.run.cache import CallCache
from inftythink_eval.run.output import STAT_KEYS, SampleOutput
from inftythink_eval.run.trace import CallRecord, Final, Trace, last_boxed, totals
from inftythink_eval.scoring.hooks import math_results

LONG = " ".join(f"w{i}" for i in range(100))


def record(prompt_tokens, output_tokens, submitted=0.0, first_token=None, finished=0.0, role="reason", output="",
           prompt="", started=None, kv_token_bytes=None) -> CallRecord:
    return CallRecord(role=role, backend="main", prompt=prompt, output=output, prompt_tokens=prompt_tokens,
                      output_tokens=output_tokens, finish_reason="stop", output_ids=None, submitted=submitted,
                      finished=finished, first_token=first_token, started=started, kv_token_bytes=kv_token_bytes)


def kv_formula(calls) -> int:
    """Sum over calls, over generated tokens t = 1..out, of the context prompt + t (written out, not the formula)."""
    return sum(c.prompt_tokens + t for c in calls for t in range(1, c.output_tokens + 1))


def sample(question="Q?", max_tokens=1000, chat=False, i=0):
    return Sample(f"s{i}", question, SamplingParams(max_tokens=max_tokens), chat=chat)


# --- hand-made calls -------------------------------------------------------------------------------------------------
def test_kv_tokens_and_the_latency_split_hand_computed():
    a = record(10, 3, submitted=100.0, first_token=100.5, finished=102.0)
    b = record(5, 2, submitted=103.0, first_token=103.25, finished=104.0)
    t = totals([a, b], Final("x"))
    assert (a.kv_tokens, b.kv_tokens, t.kv_tokens) == (11 + 12 + 13, 6 + 7, 49) == (36, 13, kv_formula([a, b]))
    assert (a.ttft, a.decode, b.ttft, b.decode) == (0.5, 1.5, 0.25, 0.75)
    assert (t.ttft, t.decode, t.lat) == (0.5, 2.25, 3.0)  # ttft of the first call; decode summed over calls
    unknown = record(5, 2, submitted=103.0, finished=104.0)  # no first-token time (engine, or the call cache)
    assert unknown.ttft is None and unknown.decode is None
    assert totals([a, unknown], None).decode is None and totals([a, unknown], None).ttft == 0.5
    assert totals([unknown, a], None).ttft is None
    empty = totals([], None)
    assert (empty.kv_tokens, empty.ttft, empty.decode, empty.summary_tok, empty.compression) == (0, None, None, 0, None)
    assert (empty.wait, empty.kv_bytes) == (None, None)


def test_slot_wait_and_kv_bytes_hand_computed():
    a = record(10, 3, submitted=100.0, started=100.125, first_token=100.5, finished=102.0, kv_token_bytes=8)
    b = record(5, 2, submitted=103.0, started=103.0, first_token=103.25, finished=104.0, kv_token_bytes=8)
    t = totals([a, b], Final("x"))
    assert (a.wait, b.wait, t.wait) == (0.125, 0.0, 0.125) and a.wait <= a.ttft   # the wait is inside ttft
    assert (a.kv_bytes, b.kv_bytes, t.kv_bytes) == (36 * 8, 13 * 8, 49 * 8)
    unknown = record(5, 2, submitted=103.0, first_token=103.25, finished=104.0)  # an engine that says neither
    assert (unknown.wait, unknown.kv_bytes) == (None, None)
    assert totals([a, unknown], None).wait is None and totals([a, unknown], None).kv_bytes is None  # no partial sums
    stats = Trace("s", [a, b], Final("x")).stats()
    assert (stats["wait"], stats["kv_bytes"]) == (0.125, 392)
    assert math.isnan(SampleOutput("x", Trace("s", [unknown], Final("x")).stats()).stats["wait"])


def test_the_scripted_engine_stamps_the_wait_for_its_one_slot():
    """One slot and 0.3 s per request: the second of two requests submitted together waits for the first.  A
    lower bound only (sleeps are at least as long as asked on any machine)."""
    backend = ScriptedBackend([{"match": "", "output": "done"}], batch_size=1, delay=0.3)
    try:
        traces = Engine(backend, "vanilla", progress=False).run([sample(i=0), sample(i=1)])
    finally:
        backend.close()
    waits = sorted(t.totals().wait for t in traces)
    assert waits[0] >= 0 and waits[1] >= 0.3 and all(t.totals().kv_bytes is None for t in traces)


def test_stats_and_sidecar_rows_carry_the_new_numbers():
    trace = Trace("s0", [record(10, 3, 100.0, 100.5, 102.0), record(5, 2, 103.0, None, 104.0)], Final("x"))
    stats = trace.stats()
    assert set(stats) == set(STAT_KEYS) and stats["kv_tokens"] == 49 and stats["ttft"] == 0.5
    assert stats["decode"] is None and math.isnan(SampleOutput("x", stats).stats["decode"])  # absent, not guessed
    row = json.loads(json.dumps(trace.to_json(), allow_nan=False))  # strict JSON: None, never NaN
    assert [(c["ttft"], c["decode"], c["kv_tokens"]) for c in row["calls"]] == [(0.5, 1.5, 36), (None, None, 13)]
    assert row["totals"]["kv_tokens"] == 49 and row["totals"]["decode"] is None


def test_a_round_summary_counts_only_when_the_next_prompt_carries_it():
    said = "<think>\nx\n</think>\n<summary>\nS one\n</summary>"
    carried = [record(1, 9, output=said, prompt="Q"), record(4, 2, prompt="Q<history>S one</history>")]
    other = [record(1, 9, output=said, prompt="Q"), record(4, 2, prompt="Q<history>S two</history>")]
    assert totals(carried, None).summary_tok == 3 and totals(carried, None).compression == 3.0
    assert (totals(other, None).summaries, totals(other, None).summary_tok, totals(other, None).compression) == (0, 0, None)


def test_last_boxed_is_a_plain_string_with_balanced_braces():
    assert last_boxed(r"so \boxed{\frac{1}{2}} then \boxed{ 3 + x }") == "3+x"
    assert last_boxed(r"\fbox{a{b}c} and \boxed{z}") == "z" and last_boxed(r"\boxed{z} then \fbox{a{b}c}") == "a{b}c"
    assert last_boxed("no box") is None and last_boxed(r"\boxed{never closed") is None


# --- the scripted backend, every mode --------------------------------------------------------------------------------
V1_ROUND = "<think>\nfirst part\n</think>\n<summary>\nhalf way \\boxed{5}\n</summary>"   # 9 word tokens
V1_LAST = "<think>\nlast\n</think>The answer is \\boxed{5}."                            # 6 word tokens


def test_inftythink_summary_tokens_are_the_history_the_next_prompt_carries():
    backend = ScriptedBackend([{"match": "<history>", "output": V1_LAST}, {"match": "", "output": V1_ROUND}])
    trace = Engine(backend, "inftythink", progress=False).run([sample()])[0]
    first, second = trace.calls
    # "User:Q?Assistant:" is 1 word token; "+<history>half way \boxed{5}</history>" makes it 3
    assert (first.prompt_tokens, first.output_tokens, second.prompt_tokens, second.output_tokens) == (1, 9, 3, 6)
    t = trace.totals()
    assert t.kv_tokens == (9 * 1 + 45) + (6 * 3 + 21) == 93 == kv_formula(trace.calls)
    assert (t.summaries, t.summary_tok, t.compression, t.early_answer) == (1, 2, 4.5, 1)
    changed = ScriptedBackend([{"match": "<history>", "output": V1_LAST.replace("{5}", "{6}")},
                               {"match": "", "output": V1_ROUND}])
    assert Engine(changed, "inftythink", progress=False).run([sample()])[0].totals().early_answer == 0


def test_a_summary_no_round_carries_is_not_counted():
    backend = ScriptedBackend([{"match": "", "output": V1_ROUND}])
    trace = Engine(backend, "inftythink", ModeParams(max_rounds=2), progress=False).run([sample()])[0]
    t = trace.totals()
    assert trace.final.reason == "max_rounds" and len(trace.calls) == 2
    assert (t.summaries, t.summary_tok, t.compression) == (1, 2, 4.5)  # round 2's summary went nowhere
    assert t.early_answer is None  # the final answer is "" (no boxed answer to compare)


def test_summarize_summary_tokens_are_the_summary_calls():
    script = [{"match": SUMMARY_INSTRUCTION, "output": "* did part one \\boxed{7}"},       # 5 word tokens
              {"match": "* did part one", "output": "then the answer is \\boxed{7}"},
              {"match": "", "output": LONG}]
    engine = Engine(ScriptedBackend(script), "summarize", ModeParams(eta=20, summary_tokens=10), progress=False)
    trace = engine.run([sample(question="Compute the thing.", chat=True)])[0]
    assert [c.role for c in trace.calls] == ["reason", "summary", "reason"]
    t = trace.totals()
    assert (t.summaries, t.summary_tok, t.compression, t.early_answer) == (1, 5, 20 / 5, 1)
    assert t.kv_tokens == kv_formula(trace.calls) and t.kv_tokens == sum(
        c.output_tokens * c.prompt_tokens + c.output_tokens * (c.output_tokens + 1) // 2 for c in trace.calls)


def test_inftythink_plus_summaries_are_found_in_the_prefilled_history():
    def plus_out(think, summary):
        return f"<think>\n{think}\n</think><summary>\n{summary}\n</summary>"

    script = [{"match": "S2 progress", "output": "<think>\nfinish it\n</think>\nThe answer is \\boxed{42}.\n"},
              {"match": "S1 progress", "output": plus_out("second part", "S2 progress \\boxed{42}")},
              {"match": "", "output": plus_out("first part", "S1 progress")}]
    trace = Engine(ScriptedBackend(script), "inftythink_plus", progress=False).run([sample(chat=True)])[0]
    first, second, third = trace.calls
    assert second.prompt.endswith("<history>\nS1 progress\n</history>")
    # the scripted template ends the first prompt with "\n" (1 token) that "\n<history>" then takes: +4 -1 words
    assert (first.prompt_tokens, second.prompt_tokens, third.prompt_tokens) == (4, 7, 8)
    assert (first.output_tokens, second.output_tokens) == (7, 8)  # "\n</think><summary>" is one word token
    t = trace.totals()
    assert (t.summaries, t.summary_tok, t.compression, t.early_answer) == (2, 3 + 4, (7 + 8) / 7, 1)


def test_modes_without_summaries_have_none():
    for mode, params in (("vanilla", ModeParams()), ("delethink", ModeParams(chunk=20, carryover=8, max_chunks=2))):
        trace = Engine(ScriptedBackend([{"match": "", "output": LONG}]), mode, params, progress=False).run([sample()])[0]
        t = trace.totals()
        assert (t.summaries, t.summary_tok, t.compression, t.early_answer) == (0, 0, None, None), mode
        assert t.kv_tokens == kv_formula(trace.calls) > 0 and t.ttft is None  # the scripted engine stamps no token


def test_the_numbers_reach_the_task_metrics_like_peak_ctx():
    """trace -> SampleOutput.stats -> the math family's process_results (the task's per-question metrics)."""
    backend = ScriptedBackend([{"match": "<history>", "output": V1_LAST}, {"match": "", "output": V1_ROUND}])
    solo = ScriptedBackend([{"match": "", "output": V1_LAST}])
    traces = Engine(backend, "inftythink", progress=False).run([sample()])
    traces += Engine(solo, "inftythink", progress=False).run([sample(i=1)])  # one round: no summary
    responses = [SampleOutput(t.final.answer, t.stats(), t.sample_id) for t in traces]
    out = math_results({"answer": "5"}, [responses])
    assert out["acc"] == 1.0 and out["kv_tokens"] == (93 + (6 * 1 + 21)) / 2 and out["peak_ctx"] == (10 + 7) / 2
    assert out["summary_tok"] == 1.0 and out["compression"] == 4.5 and out["early_answer"] == 1.0
    assert math.isnan(out["ttft"]) and math.isnan(out["decode"])


# --- the real model --------------------------------------------------------------------------------------------------
def test_smollm2_on_hf_reports_first_tokens_and_kv_tokens_from_its_own_counts(smollm2, tmp_path):
    backend = make_backend("hf", pretrained=smollm2, batch_size=2)
    config = backend.model.config  # SmolLM2-135M: 30 layers, 3 KV heads of 64 (9 query heads, hidden 576)
    assert (config.num_hidden_layers, config.num_key_value_heads, config.hidden_size // config.num_attention_heads) \
        == (30, 3, 64)
    assert backend.kv_bytes_per_token == 2 * 30 * 3 * 64 * backend.model.dtype.itemsize
    params = ModeParams(eta=12, max_rounds=2, summary_tokens=8)
    samples = [Sample(f"s{i}", q, SamplingParams(max_tokens=24), chat=True)
               for i, q in enumerate(["What is 2+3? Explain step by step.", "Name three primes and add them."])]
    try:
        traces = Engine(backend, "summarize", params, cache=CallCache(tmp_path), progress=False).run(samples)
        again = Engine(backend, "summarize", params, cache=CallCache(tmp_path), progress=False).run(samples)
    finally:
        backend.close()
    for trace in traces:
        t = trace.totals()
        for c in trace.calls:
            assert c.first_token is not None and c.output_tokens > 0
            assert 0 <= c.ttft <= c.latency and 0 <= c.decode <= c.latency
            assert c.ttft + c.decode == pytest.approx(c.latency, abs=1e-9)
            assert 0 <= c.wait <= c.ttft   # the batch's start: after submission, before the first token
        assert t.kv_tokens == kv_formula(trace.calls) and t.kv_tokens > 0
        assert t.kv_bytes == t.kv_tokens * backend.kv_bytes_per_token
        assert t.ttft == trace.calls[0].ttft and t.decode == pytest.approx(sum(c.decode for c in trace.calls))
        assert t.summary_tok == sum(c.output_tokens for c in trace.calls if c.role == "summary")
    assert any(t.totals().summaries for t in traces), "eta=12 should leave at least one round unfinished"
    for first, cached in zip(traces, again):  # from the call cache: the same tokens, no first-token time
        assert all(c.cached for c in cached.calls) and cached.totals().kv_tokens == first.totals().kv_tokens
        assert cached.totals().ttft is None and cached.totals().decode is None and cached.totals().wait is None


def test_docs_define_every_stat_and_the_g_pass_names():
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "metrics.md").read_text()
    for name in STAT_KEYS:  # a row of the engine metrics table, or a paragraph that starts with it
        assert re.search(rf"^(\| `{name}`|`{name}`:)", text, re.M), name
    assert "| `g-pass@k_τ` |" in text and "| `mg-pass@k` |" in text
