"""The hf backend's continuous path (``continuous=on|auto``: transformers' continuous batching) on the real SmolLM2.

Both paths give the same greedy outputs; a request joins a running batch; what it cannot serve exactly (a
sampled request) goes through the batched path and is counted; close() ends a running batch; the real lm_eval CLI
runs with either setting.  Order is shown by the engine's own token counts, never by how fast this machine is.
"""

from __future__ import annotations

import json
import re
import sys

import pytest

from conftest import run_cli, wait_until
from inftythink_eval.backends import _hf_paged
from inftythink_eval.backends.base import BackendError, Request, SamplingParams, make_backend
from inftythink_eval.backends.hf import HFOptions

NEVER = ("\x00\x01",)   # a stop string the model never writes: the request is streamed, so its progress shows


@pytest.fixture(scope="module")
def on(smollm2):
    backend = make_backend("hf", pretrained=smollm2, batch_size=4, continuous="on")
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def off(smollm2):
    return make_backend("hf", pretrained=smollm2, batch_size=4)


def chat(backend, text: str) -> str:
    return backend.apply_chat_template([{"role": "user", "content": text}])


def no_eos(monkeypatch, backend) -> None:
    """No token ends a row (both paths read the backend's EOS set): rows run to their max_tokens."""
    monkeypatch.setattr(backend, "_eos_ids", set())


def served(backend) -> dict:
    return backend.stats()


def test_both_paths_give_the_same_greedy_outputs(on, off):
    """Stop strings (cut on our side from the streamed tokens), per-request max_tokens and EOS: the same text, token
    ids, finish_reason and counts as the batched path, request by request."""
    colours, maths = chat(on, "List three colours, one per line."), chat(on, "What is 12 times 5? Explain.")
    requests = [Request(colours, SamplingParams(max_tokens=40, stop=("\n",))),          # a stop string
                Request(colours, SamplingParams(max_tokens=40, stop=("Blue", "\n3"))),   # two, the first wins
                Request(colours, SamplingParams(max_tokens=40)),                         # EOS
                Request(maths, SamplingParams(max_tokens=6)),                            # its max_tokens
                Request(maths, SamplingParams(max_tokens=30, stop=("5",), seed=7))]      # greedy: its seed is moot
    before = served(on)["continuous"]
    got = on.generate(requests)
    want = [off.generate([r])[0] for r in requests]   # one at a time: no padding on the batched path
    assert served(on)["continuous"] - before == len(requests), served(on)
    for g, w in zip(got, want):
        assert (g.text, g.output_ids, g.finish_reason, g.output_tokens, g.prompt_tokens) == \
               (w.text, w.output_ids, w.finish_reason, w.output_tokens, w.prompt_tokens)
    assert [g.finish_reason for g in got] == ["stop", "stop", "stop", "length", "stop"], got
    assert "\n" not in got[0].text and got[0].output_tokens < got[2].output_tokens
    assert got[2].output_ids[-1] in on._eos_ids
    for g in got:   # the engine's own times of this request
        assert g.submitted <= g.first_token <= g.finished


def test_a_request_joins_a_running_batch(on, monkeypatch):
    """B is submitted while A decodes; B finishes while A is still decoding (A's token count when B is handed back
    is below A's max_tokens) - under the batched path B would wait for A's whole batch."""
    no_eos(monkeypatch, on)
    paged = on.paths.paged
    a = on.submit(Request(chat(on, "Write a long story about a cat."), SamplingParams(max_tokens=64, stop=NEVER)))
    wait_until(lambda: any(n >= 4 for n in paged.progress().values()), "A's fourth token")
    (a_id,) = paged.progress()
    seen = {}
    with paged._cond:   # B's callback is attached before the engine's results can reach it
        b = on.submit(Request(chat(on, "Say hi."), SamplingParams(max_tokens=3)))
        b.add_done_callback(lambda f: seen.update(paged.progress()))
    b, a = b.result(timeout=600), a.result(timeout=600)
    assert (a.output_tokens, b.output_tokens) == (64, 3)
    assert a_id in seen and 4 <= seen[a_id] < 64, seen   # A was mid-way when B was done
    assert b.submitted > a.first_token and b.finished < a.finished
    assert b.finished - b.submitted < a.finished - a.submitted   # LAT is B's own, not the batch's


def test_a_short_request_returns_before_a_long_one_in_the_same_batch(on, monkeypatch):
    """Submitted together: the 2-token request is handed back while the 48-token one decodes, with its own times."""
    no_eos(monkeypatch, on)
    paged, prompt = on.paths.paged, chat(on, "Write a long story about a dog.")
    seen = {}
    with paged._cond:
        long = on.submit(Request(prompt, SamplingParams(max_tokens=48, stop=NEVER)))
        long_id = list(paged._live)[-1]   # admitted at once: nothing else is in flight
        short = on.submit(Request(prompt, SamplingParams(max_tokens=2)))
        short.add_done_callback(lambda f: seen.update(paged.progress()))
    short, long = short.result(timeout=600), long.result(timeout=600)
    assert (short.output_tokens, long.output_tokens) == (2, 48)
    assert seen.get(long_id, 48) < 48, seen
    assert short.finished < long.finished and long.first_token < long.finished
    assert short.finished - short.submitted < long.finished - long.submitted


def test_a_sampled_request_goes_through_the_batched_path_and_is_counted(on, off):
    """A seeded sampled request: transformers' sampler has no per-request seed, so the batched path serves it (the
    same tokens as with continuous=off) and the counters say why."""
    prompt = chat(on, "Name a fruit.")
    sampled = Request(prompt, SamplingParams(max_tokens=8, temperature=0.8, top_p=0.95, seed=11))
    before = served(on)
    got = on.generate([sampled])[0]
    after = served(on)
    assert after["batched_because"].get("sampled", 0) - before["batched_because"].get("sampled", 0) == 1
    assert after["continuous"] == before["continuous"]
    assert got.output_ids == off.generate([sampled])[0].output_ids
    assert served(off)["continuous"] == 0 and served(off)["batched_because"]["off"] >= 1


def test_requests_the_cache_cannot_hold_and_models_it_cannot_serve(smollm2, monkeypatch):
    """A request whose prompt plus max_tokens exceeds the continuous cache goes through the batched path
    ("too_long"); a model that continuous batching cannot serve exactly: an error under on, the batched path
    under auto; the options are checked."""
    small = make_backend("hf", pretrained=smollm2, batch_size=2, continuous="on", continuous_cache=512)
    prompt = chat(small, "Say hi.")
    outs = small.generate([Request(prompt, SamplingParams(max_tokens=600)), Request(prompt, SamplingParams(max_tokens=4))])
    assert [o.output_tokens > 0 for o in outs] == [True, True]
    assert small.stats()["batched_because"] == {"too_long": 1} and small.stats()["continuous"] == 1
    small.close()

    from transformers import AutoModelForCausalLM

    eager = AutoModelForCausalLM.from_pretrained(smollm2, attn_implementation="eager")
    assert "eager" in _hf_paged.unavailable(eager)
    monkeypatch.setattr(_hf_paged, "unavailable", lambda model: "attention 'eager' (test)")
    with pytest.raises(BackendError, match="continuous=on.*cannot use continuous batching.*continuous=auto"):
        make_backend("hf", pretrained=smollm2, continuous="on")
    auto = make_backend("hf", pretrained=smollm2, continuous="auto")
    auto.generate([Request(prompt, SamplingParams(max_tokens=2))])
    assert auto.stats()["batched_because"] == {"unavailable": 1} and "eager" in auto.stats()["continuous_unavailable"]
    with pytest.raises(ValueError, match="continuous must be on, auto or off"):
        HFOptions(continuous="yes")
    with pytest.raises(ValueError, match="exclude each other"):
        HFOptions(continuous="on", prefix_cache=2)
    with pytest.raises(ValueError, match="continuous_cache must be >= 0"):
        HFOptions(continuous_cache=-1)


def test_prefix_cache_under_auto_keeps_the_prefix_path(smollm2):
    backend = make_backend("hf", pretrained=smollm2, continuous="auto", prefix_cache=2)
    backend.generate([Request(chat(backend, "Say hi."), SamplingParams(max_tokens=3))])
    assert backend.stats()["batched_because"] == {"prefix_cache": 1} and backend.paths.paged is None
    assert backend.prefixes.computed_tokens > 0


def test_close_ends_a_running_continuous_batch(smollm2, monkeypatch):
    """close() while two 4000-token requests decode: the engine stops at its next step, both fail with "closed",
    close returns after transformers' engine thread has left the model, and no request is taken afterwards."""
    backend = make_backend("hf", pretrained=smollm2, batch_size=2, continuous="on")
    no_eos(monkeypatch, backend)
    paged, prompt = backend.paths.paged, chat(backend, "Write a long story about a cat.")
    futures = [backend.submit(Request(prompt, SamplingParams(max_tokens=4000, stop=NEVER))) for _ in range(2)]
    wait_until(lambda: len(paged.progress()) == 2 and min(paged.progress().values()) >= 3, "both decoding")
    backend.close()
    assert not paged.alive() and not paged._reader.is_alive()
    for future in futures:
        with pytest.raises(RuntimeError, match="closed"):
            future.result(timeout=0)
    with pytest.raises(RuntimeError, match="closed"):
        backend.submit(Request(prompt, SamplingParams(max_tokens=2)))


def test_an_engine_failure_fails_its_requests_and_later_ones_go_batched(smollm2, monkeypatch):
    """transformers' engine thread dies mid-request: that request fails with the engine's error (nothing waits
    forever), and the next one is served by the batched path, counted as "failed"."""
    backend = make_backend("hf", pretrained=smollm2, batch_size=2, continuous="on")
    prompt = chat(backend, "Say hi.")
    assert backend.generate([Request(prompt, SamplingParams(max_tokens=2))])[0].output_tokens == 2
    manager = backend.paths.paged._manager

    def boom():
        raise RuntimeError("injected engine fault")

    monkeypatch.setattr(manager, "_generation_step", boom)
    with pytest.raises(RuntimeError, match="injected engine fault"):
        backend.submit(Request(prompt, SamplingParams(max_tokens=4))).result(timeout=600)
    wait_until(lambda: backend.paths.paged.failed is not None, "the reader to see the engine thread gone")
    after = backend.generate([Request(prompt, SamplingParams(max_tokens=3))])[0]
    assert after.output_tokens == 3
    assert backend.stats()["continuous"] == 2 and backend.stats()["batched_because"] == {"failed": 1}
    backend.close()


HANDLER = ("import logging, runpy, sys; logging.basicConfig(level=logging.WARNING, format='%(message)s'); "
           "logging.getLogger('inftythink_eval.backends').setLevel(logging.INFO); "
           "runpy.run_module('lm_eval', run_name='__main__', alter_sys=True)")


@pytest.mark.parametrize("setting", ["on", "off"])
def test_the_lm_eval_cli_runs_with_either_setting(setting, tmp_path, mini_task, smollm2):
    """``python -m lm_eval`` (with our logger shown): summarize mode, whose reasoning calls are greedy and whose
    summaries are sampled; at exit the backend reports which path served how many calls, and the counts add up
    to the calls in the traces, and the run file (the run's provenance) holds the same counts."""
    out = tmp_path / setting
    proc = run_cli([sys.executable, "-c", HANDLER, "--model", "inftythink", "--model_args",
                    f"pretrained={smollm2},backend=hf,continuous={setting},mode=summarize,eta=16,max_rounds=2,"
                    "summary_tokens=8", "--tasks", "itt_mini", "--include_path", str(mini_task), "--limit", "2",
                    "--output_path", str(out), "--apply_chat_template", "--gen_kwargs", "max_gen_toks=24"],
                   timeout=1200)
    folder = next(p for p in out.iterdir() if p.is_dir())
    run = json.loads(max(folder.glob("inftythink_run_*.json")).read_text())
    traces = [json.loads(l) for f in folder.glob("inftythink_traces_*.jsonl") for l in f.read_text().splitlines()]
    calls = [c for t in traces for c in t["calls"]]
    assert run["backend_args"]["continuous"] == setting and len(traces) == 2
    stats = json.loads(re.search(r"hf backend served: (\{.*\})", proc.stderr).group(1))
    assert stats["continuous"] + stats["batched"] == len(calls), (stats, len(calls))
    assert run["serving"] == {"main": stats} and run["derived_calls"] == 0
    summaries = sum(c["role"] == "summary" for c in calls)
    if setting == "on":
        assert stats["continuous"] == len(calls) - summaries > 0 and stats["batched_because"] == {"sampled": summaries}
    else:
        assert stats["continuous"] == 0 and stats["batched_because"] == {"off": len(calls)}
