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
from inftythink_eval.cache import CallCache
from inftythink_eval.engine import Engine
from inftythink_eval.modes import ModeParams, Sample


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(smollm2):
    """A real ``transformers serve`` process serving SmolLM2 on 127.0.0.1; stopped at the end."""
    exe = shutil.which("transformers")
    assert exe, "the `transformers` CLI is missing: pip install 'transformers[serving]' (the dev extra has it)"
    port = free_port()
    log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"serve-{port}.log", "w")
    proc = subprocess.Popen([exe, "serve", smollm2, "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 400
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"transformers serve exited with {proc.returncode}; see {log.name}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(1)
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("transformers serve did not become healthy in 400 s")
    yield {"url": url + "/v1", "proc": proc, "model": smollm2}
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    log.close()


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
    assert results["tok,none"] > 0 and results["lat,none"] > 0 and results["rounds,none"] >= 1
    samples = [json.loads(l) for l in max(folder.glob("samples_itt_mini_*.jsonl")).read_text().splitlines()]
    assert len(samples) == 2 and all(s["tok"] > 0 for s in samples)
    traces = [json.loads(l) for l in max(folder.glob("inftythink_traces_*.jsonl")).read_text().splitlines()]
    assert any(len(t["calls"]) > 1 for t in traces)


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
    """Runs last in this module: it stops the shared server."""
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
    from inftythink_eval.testing.fault_server import FaultServer

    long_text = " ".join(["word"] * 96)
    with FaultServer([{"match": "short", "output": "a b"}, {"match": "", "output": long_text}],
                     delay_per_token=0.01) as srv:
        backend = _fault_backend(srv, smollm2, concurrency=4)
        short, long = backend.generate([Request("short one", SamplingParams(max_tokens=200)),
                                        Request("long one", SamplingParams(max_tokens=200))])
        backend.close()
    assert all(entry["body"]["stream"] for entry in srv.log)
    assert short.finished - short.submitted < 0.3 * (long.finished - long.submitted)
    assert long.first_token is not None and long.first_token - long.submitted < 0.5 * (long.finished - long.submitted)


def test_many_requests_in_flight_without_a_thread_each(smollm2):
    from inftythink_eval.testing.fault_server import FaultServer

    with FaultServer([{"match": "", "output": "x y z"}], delay_per_token=0.2) as srv:
        backend = _fault_backend(srv, smollm2, concurrency=48)
        def client_threads():   # the server's own per-connection threads live in this process too
            return sum("process_request" not in t.name for t in threading.enumerate())

        before = client_threads()
        futures = [backend.submit(Request(f"q{i}", SamplingParams(max_tokens=8))) for i in range(48)]
        time.sleep(0.3)
        during = client_threads()
        start = time.time()
        outs = [f.result(timeout=60) for f in futures]
        took = time.time() - start
        backend.close()
    assert len(outs) == 48 and all(o.text == "x y z" for o in outs)
    assert during - before <= 2, (before, during)   # one event loop, not a thread per request
    assert took < 0.6 * 48 * 0.2 * 3   # they ran at once, not one after another


def test_max_tokens_is_clamped_to_the_servers_context(smollm2):
    from inftythink_eval.testing.fault_server import FaultServer

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
    from inftythink_eval.testing.fault_server import FaultServer

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
