"""The openai backend against a real OpenAI-compatible server on 127.0.0.1 (``transformers serve``)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from conftest import LM_EVAL, run_cli
from inftythink_eval.backends.base import BackendError, Request, SamplingParams, make_backend
from inftythink_eval.run.cache import CallCache
from inftythink_eval.engine.loop import Engine
from inftythink_eval.modes import ModeParams, Sample


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Serve:
    """A real ``transformers serve`` process serving SmolLM2 on 127.0.0.1, started again for the next test when a
    test stopped it (so no test has to run last)."""

    def __init__(self, model: str) -> None:
        self.model, self.proc, self.log = model, None, None

    def live(self) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        return {"url": self.url + "/v1", "proc": self.proc, "model": self.model}

    def start(self) -> None:
        exe = shutil.which("transformers")
        assert exe, "the `transformers` CLI is missing: pip install 'transformers[serving]' (the dev extra has it)"
        port = free_port()
        self.close_log()
        self.log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"serve-{port}.log", "w")
        self.proc = subprocess.Popen([exe, "serve", self.model, "--host", "127.0.0.1", "--port", str(port),
                                      "--device", "cpu"], stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 400
        while time.time() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"transformers serve exited with {self.proc.returncode}; see {self.log.name}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(1)
        os.killpg(self.proc.pid, signal.SIGKILL)
        pytest.fail("transformers serve did not become healthy in 400 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)
        self.close_log()

    def close_log(self) -> None:
        if self.log is not None:
            self.log.close()


@pytest.fixture(scope="module")
def serving(smollm2):
    serve = _Serve(smollm2)
    yield serve
    serve.stop()


@pytest.fixture()
def server(serving):
    """The shared server, alive (restarted if an earlier test killed it)."""
    return serving.live()


def test_completion_counts_and_stop_strings(server):
    backend = make_backend("openai", base_url=server["url"], pretrained=server["model"], concurrency=2)
    out = backend.generate([Request("The capital of France is", SamplingParams(max_tokens=12, stop=(".",)))])[0]
    assert "." not in out.text and out.output_tokens >= 1 and out.prompt_tokens == 5
    out = backend.generate([Request("Count: one, two, three,", SamplingParams(max_tokens=4))])[0]
    assert out.finish_reason == "length" and out.output_tokens == 4


def test_lm_eval_cli_over_the_server(server, tmp_path, mini_task):
    out = tmp_path / "out"
    args = (f"pretrained={server['model']},backend=openai,base_url={server['url']},mode=summarize,eta=24,"
            f"max_rounds=2,summary_tokens=16,concurrency=2")
    run_cli([*LM_EVAL, "--model", "inftythink", "--model_args", args, "--tasks", "itt_mini", "--include_path",
             str(mini_task), "--limit", "2", "--output_path", str(out), "--log_samples", "--apply_chat_template",
             "--gen_kwargs", "max_gen_toks=64"], timeout=1200)
    folder = next(out.iterdir())
    results = json.loads(max(folder.glob("results_*.json")).read_text())["results"]["itt_mini"]
    samples = [json.loads(l) for l in max(folder.glob("samples_itt_mini_*.jsonl")).read_text().splitlines()]
    traces = [json.loads(l) for l in max(folder.glob("inftythink_traces_*.jsonl")).read_text().splitlines()]
    assert len(samples) == 2 and len(traces) == 2
    # each sample's TOK is every token its calls generated over the server; the results are the samples' means
    assert sorted(s["tok"] for s in samples) == sorted(sum(c["output_tokens"] for c in t["calls"]) for t in traces)
    assert all(s["tok"] > 0 for s in samples) and results["lat,none"] > 0
    assert results["tok,none"] == pytest.approx(sum(s["tok"] for s in samples) / 2)
    assert results["rounds,none"] == pytest.approx(sum(s["rounds"] for s in samples) / 2)
    # a round cut at eta=24 tokens is summarised and the next round starts from that summary
    assert any([c["role"] for c in t["calls"]][:3] == ["reason", "summary", "reason"] for t in traces), \
        [[c["role"] for c in t["calls"]] for t in traces]


def test_the_cache_follows_the_model_not_the_address(server, tmp_path):
    """A resume against the same model at another address (a restarted server on a new port, a router, a
    hostname instead of an IP) takes every finished call from the cache; another served model does not."""
    samples = [Sample(str(i), f"Name a colour, number {i}.", SamplingParams(max_tokens=8)) for i in range(3)]
    port = server["url"].split(":")[-1].split("/")[0]
    outputs = []
    for url in (server["url"], f"http://localhost:{port}/v1"):
        backend = make_backend("openai", base_url=url, pretrained=server["model"], concurrency=2)
        cache = CallCache(tmp_path / "cache")
        outputs.append([t.calls[-1].output for t in Engine(backend, "vanilla", cache=cache, progress=False).run(samples)])
        backend.close()
    assert outputs[0] == outputs[1] and cache.hits == 3
    other = make_backend("openai", base_url=server["url"], pretrained=server["model"], model="another-model")
    assert other.fingerprint != backend.fingerprint
    other.close()


def test_killing_the_server_gives_retries_then_a_clear_error_and_keeps_finished_calls(server, tmp_path):
    """It kills the shared server: a later test gets a new one (the ``server`` fixture restarts it)."""
    backend = make_backend("openai", base_url=server["url"], pretrained=server["model"], concurrency=1,
                           retries=2, backoff=0.2, timeout=60)
    cache = CallCache(tmp_path / "cache")
    samples = [Sample(str(i), f"Write a short poem about the number {i}.", SamplingParams(max_tokens=24)) for i in range(6)]

    def kill_when_first_call_is_cached():
        while len(cache) < 1:
            time.sleep(0.05)
        os.killpg(server["proc"].pid, signal.SIGKILL)

    threading.Thread(target=kill_when_first_call_is_cached, daemon=True).start()
    start = time.time()
    with pytest.raises(BackendError, match=r"failed after 3 attempts .*Is the server running"):
        Engine(backend, "vanilla", ModeParams(), cache=cache, progress=False).run(samples)
    assert time.time() - start < 600
    kept = len(CallCache(tmp_path / "cache"))
    assert 1 <= kept < 6


# --- request-level behaviour, against the fault-injecting server (exact control; its timings are no evidence) ---
def _fault_backend(fault_server, smollm2, **kw):
    return make_backend("openai", base_url=fault_server.url, pretrained=smollm2, **kw)


def test_each_request_returns_on_its_own_clock_with_streaming(smollm2):
    """A long request streams its first word, then stalls until the test releases it; a short request sent
    meanwhile comes back on its own clock, and the long one's first-token time is its first word's (the
    order of events is fixed by the server's state, not by how fast anything runs)."""
    from fault_server import FaultServer

    long_text = " ".join(["word"] * 96)
    with FaultServer([{"match": "short", "output": "a b"},
                      {"match": "", "output": long_text, "faults": ["stall"]}]) as srv:
        backend = _fault_backend(srv, smollm2, concurrency=4)
        pending = backend.submit(Request("long one", SamplingParams(max_tokens=200)))
        assert srv.wait_held(1, timeout=120), "the long answer never sent its first word"
        short = backend.submit(Request("short one", SamplingParams(max_tokens=200))).result(timeout=120)
        assert not pending.done()   # the long one is still stalled: the short one did not wait for it
        released = time.time()
        srv.release()
        long = pending.result(timeout=120)
        backend.close()
    assert all(entry["body"]["stream"] for entry in srv.log)
    assert short.text == "a b" and long.text == long_text
    assert short.submitted < short.finished < released < long.finished
    assert long.first_token is not None and long.submitted < long.first_token < released


def test_many_requests_in_flight_without_a_thread_each(smollm2):
    """48 requests that the server holds until all 48 wait at once: they are in flight together (not one after
    another), from one event loop (not a client thread each)."""
    from fault_server import FaultServer

    with FaultServer([{"match": "", "output": "x y z"}]) as srv:
        srv.hold()
        backend = _fault_backend(srv, smollm2, concurrency=48)
        def client_threads():   # the server's own per-connection threads live in this process too
            return sum("process_request" not in t.name for t in threading.enumerate())

        before = client_threads()
        futures = [backend.submit(Request(f"q{i}", SamplingParams(max_tokens=8))) for i in range(48)]
        all_in = srv.wait_held(48, timeout=120)
        during, held = client_threads(), srv.waiting
        srv.release()
        outs = [f.result(timeout=120) for f in futures]
        backend.close()
    assert all_in, f"only {held} of 48 requests were in flight at once"
    assert len(outs) == 48 and all(o.text == "x y z" for o in outs)
    assert during - before <= 2, (before, during)   # one event loop, not a thread per request


def test_max_tokens_is_clamped_to_the_servers_context(smollm2):
    from fault_server import FaultServer

    with FaultServer([{"match": "", "output": "fine"}], max_model_len=100) as srv:
        backend = _fault_backend(srv, smollm2)
        prompt = "one two three four five"
        backend.generate([Request(prompt, SamplingParams(max_tokens=32768))])
        sent = srv.log[-1]["body"]["max_tokens"]
        with pytest.raises(Exception, match="fills the server's context"):
            backend.generate([Request("word " * 200, SamplingParams(max_tokens=10))])
        backend.close()
    assert sent == 100 - backend.count_tokens(prompt) and backend.stats["clamped"] == 1


def test_a_context_error_costs_one_sample_through_lm_eval(tmp_path, smollm2, mini_task, data_dir):
    """A 400 "context length exceeded" for one question: that sample is recorded as failed with the reason, the
    others are scored, and the run ends normally."""
    from fault_server import FaultServer

    first = json.loads((data_dir / "math500" / "test.jsonl").read_text().splitlines()[0])["problem"]
    rules = [{"match": first[:40], "faults": ["context"] * 10, "output": "never"},
             {"match": "", "output": "The answer is $\\boxed{1}$."}]
    with FaultServer(rules) as srv:
        out = tmp_path / "out"
        run_cli([*LM_EVAL, "--model", "inftythink", "--model_args",
                 f"pretrained={smollm2},backend=openai,base_url={srv.url},trace_dir={tmp_path / 'traces'}",
                 "--tasks", "itt_mini", "--include_path", str(mini_task), "--limit", "3", "--output_path", str(out)],
                timeout=600)
    traces = [json.loads(line) for f in (tmp_path / "traces").rglob("*.jsonl") for line in f.read_text().splitlines()]
    errors = [t for t in traces if t["error"]]
    assert len(traces) == 3 and len(errors) == 1 and "maximum context length" in errors[0]["error"]
    assert sum(entry["fault"] == "context" for entry in srv.log) == 1   # a 4xx is not retried
