"""Vanilla, summarize and delethink modes, scheduling and resume, on the scripted backend."""

from __future__ import annotations

import pytest

from inftythink_eval.backends.base import BackendError, SamplingParams
from inftythink_eval.backends.scripted import ScriptedBackend, word_tokens
from inftythink_eval.cache import CallCache
from inftythink_eval.engine import Engine
from inftythink_eval.modes import ModeParams, Sample
from inftythink_eval.templates import SUMMARY_INSTRUCTION

LONG = " ".join(f"w{i}" for i in range(100))


def sample(i=0, max_tokens=1000, question="Compute the thing.", chat=False):
    return Sample(f"s{i}", question, SamplingParams(max_tokens=max_tokens), chat=chat)


def test_vanilla_is_one_call_with_the_task_budget():
    backend = ScriptedBackend([{"match": "", "output": LONG}])
    trace = Engine(backend, "vanilla", progress=False).run([sample(max_tokens=30)])[0]
    assert len(trace.calls) == 1 and trace.calls[0].output_tokens == 30
    assert trace.totals().truncated and trace.totals().rounds == 1


def test_vanilla_answer_is_text_after_last_think():
    backend = ScriptedBackend([{"match": "", "output": "<think>\na</think> b </think> final"}])
    assert Engine(backend, "vanilla", progress=False).run([sample()])[0].final.answer == " final"


def test_summarize_rounds_cap_summarise_and_continue_from_summary():
    script = [
        {"match": SUMMARY_INSTRUCTION, "output": "* did part one"},
        {"match": "* did part one", "output": "then the answer is 7"},
        {"match": "", "output": LONG},
    ]
    backend = ScriptedBackend(script)
    engine = Engine(backend, "summarize", ModeParams(eta=20, summary_tokens=10), progress=False)
    trace = engine.run([sample(chat=True)])[0]
    roles = [c.role for c in trace.calls]
    assert roles == ["reason", "summary", "reason"]
    assert trace.calls[0].output_tokens == 20 and trace.calls[0].finish_reason == "length"
    summary_prompt = trace.calls[1].prompt
    assert "Compute the thing." in summary_prompt and SUMMARY_INSTRUCTION in summary_prompt
    assert trace.calls[0].output in summary_prompt  # the reasoning so far is what gets summarised
    assert "* did part one" in trace.calls[2].prompt and LONG[:50] not in trace.calls[2].prompt
    assert trace.final.answer == "then the answer is 7" and trace.totals().rounds == 2


def test_summarize_stops_at_max_rounds_as_truncated():
    backend = ScriptedBackend([{"match": SUMMARY_INSTRUCTION, "output": "* s"}, {"match": "", "output": LONG}])
    trace = Engine(backend, "summarize", ModeParams(eta=5, max_rounds=3), progress=False).run([sample()])[0]
    assert trace.totals().rounds == 3 and trace.totals().truncated and len(trace.calls) == 5


def test_delethink_carries_head_and_tail_tokens():
    words = [f" t{i}" for i in range(200)]
    backend = ScriptedBackend([{"match": "", "output": "".join(words)}])
    params = ModeParams(chunk=20, carryover=8, keep_head=3, max_chunks=3)
    trace = Engine(backend, "delethink", params, progress=False).run([sample(question="Q?")])[0]
    assert len(trace.calls) == 3 and trace.totals().truncated
    first = trace.calls[0]
    assert first.output_tokens == 20
    head = "".join(word_tokens(first.output)[:3])
    tail = "".join(word_tokens(first.output)[-8:])
    assert trace.calls[1].prompt == "Q?" + head + tail
    assert trace.calls[1].output_tokens == 12  # C - m new tokens


class FailingAfter(ScriptedBackend):
    """A scripted backend that breaks down after a number of calls (a killed run)."""

    def __init__(self, script, fail_after):
        super().__init__(script, max_batch=1)
        self.fail_after = fail_after

    def generate(self, requests):
        if self.calls >= self.fail_after:
            raise ConnectionError("engine died")
        return super().generate(requests)


ROUNDS = [{"match": "<history>B</history>", "output": "<think>\nz\n</think>done"},
          {"match": "<history>A</history>", "output": "<think>\ny\n</think>\n<summary>\nB\n</summary>"},
          {"match": "", "output": "<think>\nx\n</think>\n<summary>\nA\n</summary>"}]


def test_resume_recomputes_no_finished_call(tmp_path):
    samples = [sample(i, question=f"question {i}") for i in range(4)]  # 4 samples x 3 rounds = 12 calls
    broken = FailingAfter(ROUNDS, fail_after=7)
    with pytest.raises(BackendError, match="7 finished calls are kept in the cache"):
        Engine(broken, "inftythink", cache=CallCache(tmp_path), progress=False).run(samples)
    fresh = ScriptedBackend(ROUNDS)
    cache = CallCache(tmp_path)
    assert len(cache) == 7
    traces = Engine(fresh, "inftythink", cache=cache, progress=False).run(samples)
    assert fresh.calls == 12 - 7 and cache.hits == 7
    assert all(t.final.answer == "done" and t.totals().rounds == 3 for t in traces)
    cached = [c for t in traces for c in t.calls if c.cached]
    assert len(cached) == 7 and all(c.latency >= 0 for c in cached)


def test_torn_cache_line_is_ignored(tmp_path):
    cache = CallCache(tmp_path)
    Engine(ScriptedBackend(ROUNDS), "inftythink", cache=cache, progress=False).run([sample()])
    cache.close()
    path = next(tmp_path.glob("calls-*.jsonl"))
    path.write_text(path.read_text() + '{"key": "abc", "te')
    assert len(CallCache(tmp_path)) == 3


def test_continuous_scheduling_advances_samples_independently():
    """A sample with 5 quick rounds finishes while slow one-round samples are still running when samples
    advance independently; round-synchronous scheduling holds its round 2 until every round-1 call is done."""
    slow = " ".join(["word"] * 150)
    script = [{"match": "long", "output": "<think>\nx\n</think>\n<summary>\nS\n</summary>"},
              {"match": "", "output": f"<think>\n{slow}\n</think>done"}]
    samples = [sample(0, question="long one")] + [sample(i, question=f"short {i}") for i in range(1, 5)]
    for schedule in ("continuous", "rounds"):
        backend = ScriptedBackend(script, max_batch=1, concurrency=5, delay_per_token=0.004)
        traces = Engine(backend, "inftythink", ModeParams(max_rounds=5), schedule=schedule, progress=False).run(samples)
        long_done = traces[0].calls[-1].finished
        first_short_done = min(t.calls[-1].finished for t in traces[1:])
        assert traces[0].totals().rounds == 5
        assert (long_done < first_short_done) is (schedule == "continuous"), schedule


def test_unknown_mode_and_schedule_are_clear_errors():
    backend = ScriptedBackend()
    with pytest.raises(ValueError, match="valid modes"):
        Engine(backend, "nope")
    with pytest.raises(ValueError, match="schedule must be one of"):
        Engine(backend, "vanilla", schedule="eager")


def test_native_template_renders_protocol_prompt_in_any_mode():
    backend = ScriptedBackend([{"match": "", "output": "42"}])
    s = Sample("n", "Q?", SamplingParams(max_tokens=10), chat=True, native=True)
    trace = Engine(backend, "vanilla", progress=False).run([s])[0]
    assert trace.calls[0].prompt == "User:Q?Assistant:"
