"""Vanilla, summarize and delethink modes, scheduling and resume, on the scripted backend."""

from __future__ import annotations

import threading
from concurrent.futures import Future

import pytest

from inftythink_eval.backends.base import BackendError, SamplingParams
from inftythink_eval.backends.scripted import ScriptedBackend, word_tokens
from inftythink_eval.run.cache import CallCache
from inftythink_eval.engine.loop import Engine
from inftythink_eval.modes import ModeParams, Sample
from inftythink_eval.formats.inftythink import SUMMARY_INSTRUCTION

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


def test_delethink_carryover_above_half_a_chunk_keeps_m_tokens():
    """Issue 12: with m > C/2 a later chunk writes only C - m < m tokens; the carryover must still be m tokens,
    cut from the reasoning so far (the previous carryover + the last output), not from the last output alone."""
    words = [f" t{i}" for i in range(200)]
    backend = ScriptedBackend([{"match": "", "output": "".join(words)}])
    params = ModeParams(chunk=20, carryover=15, keep_head=2, max_chunks=3)
    trace = Engine(backend, "delethink", params, progress=False).run([sample(question="Q?")])[0]
    first, second = (word_tokens(c.output) for c in trace.calls[:2])
    assert len(first) == 20 and len(second) == 5  # C, then C - m
    assert trace.calls[1].prompt == "Q?" + "".join(first[:2]) + "".join(first[-15:])
    carried = (first[-15:] + second)[-15:]
    assert trace.calls[2].prompt == "Q?" + "".join(first[:2]) + "".join(carried)
    assert backend.count_tokens(trace.calls[2].prompt) == 1 + 2 + 15


def resolved(completion) -> Future:
    future = Future()
    future.set_result(completion)
    return future


class FailingAfter(ScriptedBackend):
    """A scripted backend that breaks down after a number of calls (a killed run).  It reports its own
    timing, as a real engine does: its k-th call took k seconds."""

    def __init__(self, script, fail_after):
        super().__init__(script, max_batch=1)
        self.fail_after = fail_after

    def submit(self, request):
        if self.calls >= self.fail_after:
            raise ConnectionError("engine died")
        done = super().submit(request).result()
        return resolved(done.stamped(done.submitted, finished=done.submitted + self.calls))


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
    # a restored call counts with the latency measured when it ran (1 to 7 s), not with the lookup's
    assert sorted(c.latency for c in cached) == pytest.approx([1, 2, 3, 4, 5, 6, 7], abs=1e-3)
    assert sum(t.totals().lat for t in traces) >= 28


def test_torn_cache_line_is_ignored(tmp_path):
    cache = CallCache(tmp_path)
    Engine(ScriptedBackend(ROUNDS), "inftythink", cache=cache, progress=False).run([sample()])
    cache.close()
    path = next(tmp_path.glob("calls-*.jsonl"))
    path.write_text(path.read_text() + '{"key": "abc", "te')
    assert len(CallCache(tmp_path)) == 3


class Watched:
    """Wraps a mode to see, on the run loop's thread, when the engine takes in each sample's calls."""

    def __init__(self, mode, on_next_call):
        self.mode, self.on_next_call = mode, on_next_call

    def next_call(self, sample, calls):
        self.on_next_call(sample, calls)
        return self.mode.next_call(sample, calls)


class HoldsShort(ScriptedBackend):
    """Answers at once, except requests whose prompt contains "short": those wait until ``release()``, or
    until a hang bound lets them go (``by_bound``), so a wrong scheduler fails instead of hanging."""

    def __init__(self, script):
        super().__init__(script)
        self.waiting, self.by_bound, self.gate = [], False, threading.Lock()
        self.bound = threading.Timer(120, self.release, kwargs={"by_bound": True})
        self.bound.daemon = True
        self.bound.start()

    def submit(self, request):
        if "short" not in request.prompt:
            return super().submit(request)
        future = Future()
        with self.gate:
            self.waiting.append((request, future))
        return future

    def release(self, by_bound=False):
        with self.gate:
            waiting, self.waiting = self.waiting, []
            self.by_bound |= by_bound and bool(waiting)
        for request, future in waiting:
            future.set_result(super().submit(request).result())


@pytest.mark.parametrize("schedule", ["continuous", "rounds"])
def test_continuous_scheduling_advances_samples_independently(schedule):
    """One sample with 5 rounds, four one-round samples whose answers are held back until the first sample's
    round 1 is taken in.  Continuous: its round 2 is submitted at once, before the engine has taken in any held
    answer; round-synchronous: only after all four are taken in.  No timing: the order is what is checked."""
    script = [{"match": "long", "output": "<think>\nx\n</think>\n<summary>\nS\n</summary>"},
              {"match": "", "output": "<think>\nshort\n</think>done"}]
    samples = [sample(0, question="long one")] + [sample(i, question=f"short {i}") for i in range(1, 5)]
    backend = HoldsShort(script)
    taken_in, at_round_2 = set(), []

    def on_next_call(s, calls):
        if s.id != "s0" and calls:
            taken_in.add(s.id)
        if s.id == "s0" and len(calls) == 1:  # deciding round 2: hand the held answers to the engine now
            backend.release()

    original_submit = backend.submit

    def submit(request):
        if "<history>S</history>" in request.prompt and not at_round_2:
            at_round_2.append(len(taken_in))
        return original_submit(request)

    backend.submit = submit
    engine = Engine(backend, "inftythink", ModeParams(max_rounds=5), schedule=schedule, progress=False)
    engine.mode = Watched(engine.mode, on_next_call)
    try:
        traces = engine.run(samples)
    finally:
        backend.bound.cancel()
    assert not backend.by_bound, "the held answers were let go by the hang bound, not by the first sample's round 2"
    assert traces[0].totals().rounds == 5 and all(t.final.answer == "done" for t in traces[1:])
    assert at_round_2 == [0 if schedule == "continuous" else 4]


def test_each_request_finishes_on_its_own_clock():
    """A short and a long request submitted together; the long one finishes only once the engine has taken in
    the short one's completion, so the short one must be handed back on its own (a run that waited for both
    would stall here until the hang bound)."""
    taken_in, released = threading.Event(), []

    class LongWaits(ScriptedBackend):
        def submit(self, request):
            if "long" not in request.prompt:
                return super().submit(request)
            future = Future()

            def finish():
                released.append(taken_in.wait(timeout=120))  # the bound only ends a hang
                future.set_result(super(LongWaits, self).submit(request).result())

            threading.Thread(target=finish, daemon=True).start()
            return future

    def on_next_call(s, calls):
        if s.id == "s0" and calls:
            taken_in.set()

    backend = LongWaits([{"match": "short", "output": "a b"}, {"match": "", "output": " ".join(["w"] * 96)}])
    engine = Engine(backend, "vanilla", progress=False)
    engine.mode = Watched(engine.mode, on_next_call)
    short, long = engine.run([sample(0, question="short"), sample(1, question="long")])
    assert released == [True], "the long request was let go by the hang bound: the short one was not handed back"
    assert short.calls[0].finished <= long.calls[0].finished
    assert short.final.answer == "a b" and long.calls[0].output_tokens == 96


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


class BrokenMode:
    """A mode whose next_call raises on the second call (e.g. a tokenizer error inside a mode)."""

    name = "broken"

    def next_call(self, sample, calls):
        if calls:
            raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad byte from the tokenizer")
        from inftythink_eval.run.trace import REASON, Call

        return Call(REASON, sample.question, sample.params)


@pytest.mark.parametrize("delay", [0.0, 0.01])
def test_exception_in_next_call_ends_the_run_with_a_clear_error(tmp_path, delay):
    """Not a hang: the run ends within seconds, naming the error, with the finished call kept in the cache."""
    import time

    backend = ScriptedBackend([{"match": "", "output": "x"}], delay=delay)
    engine = Engine(backend, "vanilla", cache=CallCache(tmp_path), progress=False)
    engine.mode = BrokenMode()
    start = time.time()
    with pytest.raises(BackendError, match="UnicodeDecodeError.*1 finished calls are kept in the cache"):
        engine.run([sample(0)])
    assert time.time() - start < 120  # bounds a hang only
    assert len(CallCache(tmp_path)) == 1


def test_a_request_that_fails_for_good_costs_its_sample_only():
    script = [{"match": "bad", "outputs": [{"error": "HTTP 400: context length exceeded"}]},
              {"match": "", "output": "<think>\nx\n</think>fine"}]
    samples = [sample(0, question="good"), sample(1, question="bad one"), sample(2, question="good too")]
    traces = Engine(ScriptedBackend(script), "vanilla", progress=False).run(samples)
    assert [t.final.reason for t in traces] == ["done", "error", "done"]
    assert "context length exceeded" in traces[1].error and traces[1].final.answer == ""


def test_summarize_passes_on_the_summary_without_the_summarisers_thinking_and_flags_cut_summaries():
    """A reasoning summariser writes <think>...</think> first: only the text after it reaches the next round;
    a summary whose thinking never closed (cut at summary_tokens) carries nothing and counts in format_fail."""
    reasoning = " ".join(["step"] * 30)
    script = [{"match": "<|assistant|>\nS1: halfway", "output": "<think>\nhmm " + "x " * 40},   # the 2nd summary
              {"match": "Please list what you have achieved", "output": "<think>\nlet me see\n</think>\nS1: halfway"},
              {"match": "", "output": reasoning}]
    params = ModeParams(eta=10, summary_tokens=20, max_rounds=3)
    trace = Engine(ScriptedBackend(script), "summarize", params, progress=False).run([sample(question="Q?")])[0]
    reasons = [c for c in trace.calls if c.role == "reason"]
    assert "S1: halfway" in reasons[1].prompt and "let me see" not in reasons[1].prompt
    assert "hmm" not in reasons[2].prompt
    assert trace.totals().format_fail == 1
