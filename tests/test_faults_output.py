"""Hostile model output: multi-megabyte answers, NUL bytes, invalid UTF-8, a ``<summary>`` of 100k tokens,
nested and unbalanced tags, prompts that grow every round.  Parsing stays linear (the official greedy
regexes backtracked: cubic and quadratic time, minutes for 50 kB of repeated tags), memory stays a small
multiple of what the traces must hold, and each sample's verdict is recorded and survives the cache."""

from __future__ import annotations

import json
import sys
import time
import tracemalloc

import pytest
from hypothesis import given, settings, strategies as st

from inftythink_eval.formats import inftythink as T
from inftythink_eval.formats import plus as P
from inftythink_eval.backends.base import SamplingParams, make_backend
from inftythink_eval.run.cache import CallCache
from inftythink_eval.engine.loop import Engine
from inftythink_eval.modes import ModeParams, Sample
from inftythink_eval.lmeval.sidecar import Sidecar
from faults import Outcome, record

PIECES = st.sampled_from(["<think>", "</think>", "<summary>", "</summary>", "\n", " ", "\t", "x", "y", "<", ">"])
TEXTS = st.lists(PIECES, max_size=14).map("".join)


@settings(max_examples=400, deadline=None)
@given(TEXTS)
def test_linear_round_parse_equals_the_official_regex(text):
    match = T.OFFICIAL_ROUND_RE.match(text)
    assert T.official_round_groups(text) == (match.groups() if match else None)


@settings(max_examples=400, deadline=None)
@given(TEXTS)
def test_linear_plus_parse_equals_its_regex(text):
    match = P._SUMMARY_ROUND_RE.match(text)
    assert P.summary_round_groups(text) == (match.groups() if match else None)


def _seconds(fn, text) -> float:
    """CPU seconds of this thread: what the parse costs, not how long other processes kept it waiting."""
    start = time.thread_time()
    fn(text)
    return time.thread_time() - start


HOSTILE = {  # repeated tags that made the greedy regexes backtrack, at k repeats
    "round: repeated think/summary pairs": (lambda k: "<think>\nx\n</think>\n<summary>\n" * k + "end",
                                            lambda s: T.parse_round(s, "P")),
    "round: one think, repeated closers": (lambda k: "<think>\n" + "x\n</think>\n<summary>\n" * k,
                                           lambda s: T.parse_round(s, "P")),
    "plus: repeated closers": (lambda k: "<think>" + "x</think> <summary>" * k + "end", P.parse_iteration),
    "plus: nested opens": (lambda k: "<think>" * k + "</think><summary>" + "</summary>" * k, P.parse_iteration),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", list(HOSTILE))
def test_parsing_hostile_outputs_stays_linear(name):
    build, parse = HOSTILE[name]
    small, large = build(20_000), build(80_000)  # ~0.5 MB and ~2 MB
    t_small = min(_seconds(parse, small) for _ in range(3))
    t_large = min(_seconds(parse, large) for _ in range(3))
    # a ratio on one machine, not a speed: 4x the input costs ~4x when linear, 16x when quadratic (backtracking)
    assert t_large < 8 * t_small + 0.02, f"{name}: 4x the input took {t_large / max(t_small, 1e-9):.0f}x the time"
    record(Outcome("output", f"parse {name} ({len(large) / 1e6:.1f} MB)", "verdict", runs=0, seconds=t_large))


def _bytes(call) -> int:
    """Memory a call record must hold: its prompt, its output and its token ids."""
    return sys.getsizeof(call.prompt) + sys.getsizeof(call.output) + 8 * len(call.output_ids or ())


def _run(rules, samples, mode, cache, **params):
    backend = make_backend("scripted", script=rules)
    engine = Engine(backend, mode, ModeParams(**params) if params else ModeParams(), cache=cache, progress=False)
    return engine.run(samples), backend


NASTY = "\x00 \ufffd \udcff \u202e " + "<think><think>\n</summary>\n<summary>\n" + ("w" * 49 + " ") * 40_000  # 2 MB


@pytest.mark.timeout(300)
def test_megabyte_outputs_with_nul_invalid_utf8_and_broken_tags_get_a_verdict_and_survive_the_cache(tmp_path):
    rules = [{"match": "", "output": NASTY}]
    samples = [Sample(f"s{i}", f"question {i}", SamplingParams(max_tokens=600_000), native=True) for i in range(3)]
    tracemalloc.start()
    start = time.perf_counter()
    traces, _ = _run(rules, samples, "inftythink", CallCache(tmp_path / "cache"), round_tokens=10**6)
    seconds = time.perf_counter() - start
    retained, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    held = sum(_bytes(c) for t in traces for c in t.calls)
    assert held > 6_000_000 and seconds < 120, (seconds, held)   # bounds a hang (the backtracking regexes: hours)
    assert retained < 3 * held and peak < 200 * 2**20, (retained, peak, held)  # the traces, plus the cache's copy
    for trace in traces:  # the unbalanced <summary> fails the official parse: a format failure, recorded
        assert trace.final.reason == "format" and trace.calls[0].output == NASTY
    again, backend = _run(rules, samples, "inftythink", CallCache(tmp_path / "cache"), round_tokens=10**6)
    assert backend.calls == 0 and [t.calls[0].output for t in again] == [NASTY] * 3  # NUL, U+FFFD, lone surrogate kept
    sidecar = Sidecar(tmp_path / "out", {})
    sidecar.append([t.to_json() for t in traces])
    rows = [json.loads(l) for l in sidecar.trace_path.read_text(encoding="utf-8", errors="surrogatepass").splitlines()]
    assert [r["final"]["reason"] for r in rows] == ["format"] * 3 and rows[0]["calls"][0]["output"] == NASTY
    record(Outcome("output", "2 MB outputs with NUL, U+FFFD, a lone surrogate, broken tags", "verdict", completed=1,
                   samples=3, seconds=seconds, detail=f"retained {retained / held:.1f}x the traces' bytes"))


@pytest.mark.timeout(300)
def test_a_summary_of_100k_tokens_that_grows_every_round_stops_at_max_rounds(tmp_path):
    """Round i answers a summary of (i + 1) x 50k words; each prompt carries the last one: prompts grow every round."""
    def summary(i):
        return f"M{i} " + "w " * (50_000 * (i + 1))
    rules = [{"match": f"<history>M{i} ", "output": f"<think>\nx\n</think>\n<summary>\n{summary(i + 1)}\n</summary>"}
             for i in range(1, 4)]
    rules.append({"match": "", "output": f"<think>\nx\n</think>\n<summary>\n{summary(1)}\n</summary>"})
    samples = [Sample("s0", "question", SamplingParams(max_tokens=10**7), native=True)]
    tracemalloc.start()
    traces, backend = _run(rules, samples, "inftythink", None, max_rounds=3, round_tokens=10**7)
    retained, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    (trace,) = traces
    sizes = [len(c.prompt) for c in trace.calls]
    assert sizes[0] < sizes[1] < sizes[2] and sizes[2] > 2 * 150_000  # the prompt grew every round
    assert trace.final.reason == "max_rounds" and trace.final.truncated and backend.calls == 3
    held = sum(_bytes(c) for c in trace.calls)
    assert retained < 3 * held and peak < 300 * 2**20, (retained, peak, held)
    record(Outcome("output", "a 100k-token summary growing every round", "verdict", completed=1, samples=1,
                   detail=f"retained {retained / held:.1f}x the traces' bytes"))
