"""Servers that misbehave: each fault of ``SERVER_FAULTS`` ends the way it was chosen to, in bounded time.

The real ``openai`` backend and engine against ``FaultServer`` on 127.0.0.1 (fast), the real ``lm_eval``
CLI against it (a failed sample is recorded with its reason, the run goes on), and a real
``transformers serve`` killed and restarted mid-run (slow).
"""

from __future__ import annotations


import pytest

from faults import ANSWER, SERVER_FAULTS, cache_lines, record, server_scenario

CUT = ANSWER[:ANSWER.find("four")]  # what every sample's answer is once the stop string is cut


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", list(SERVER_FAULTS))
def test_each_server_fault_ends_as_chosen(name, smollm2, tmp_path):
    faults, ending = SERVER_FAULTS[name]
    outcome = server_scenario(name, smollm2, tmp_path)
    assert outcome.ending == ending, (name, outcome.detail, outcome.extra)
    assert outcome.lost == 0 and outcome.completed == 1
    # a bound on a hang (a read timeout alone is TIMEOUT = 10 s), not a speed
    assert outcome.seconds < 120, f"{name} took {outcome.seconds:.1f} s to resolve"
    if ending in ("retried", "answered"):
        first = "\ufffd\ufffd\x00 " + CUT if name.startswith("invalid UTF-8") else CUT  # replaced, NUL kept
        assert outcome.failed == 0 and outcome.extra["outputs"] == [first] + [CUT] * (outcome.samples - 1)
        if faults:  # each injected fault cost one attempt, then the answer came
            assert outcome.extra["attempts_first"] == len(faults) + (ending == "retried"), outcome.extra
    if ending == "answered":
        assert outcome.extra["stats"]["retries"] == 0
    if ending == "sample failed":  # a 4xx at once; a 5xx once every retry is spent
        why = "maximum context length" if "context" in name else "failed after 5 attempts (HTTP 503"
        assert outcome.failed == 1 and why in outcome.extra["errors"][0], outcome.extra["errors"]
        assert outcome.extra["outputs"][1:] == [CUT] * 3
        assert outcome.extra["attempts_first"] == min(len(faults), 5)  # 1 for a 4xx; the first try + 4 retries
    if ending == "run stopped":  # the server is unreachable: stop, keep every finished call, resume
        assert "failed after 5 attempts" in outcome.detail and "same cache_dir to resume" in outcome.detail
        assert "Is the server running" in outcome.detail
        assert outcome.failed == 0 and outcome.extra["outputs"] == [CUT] * outcome.samples
        assert outcome.recomputed == 0  # counted: no key was written twice
        kept = outcome.extra["kept_before_resume"]
        assert outcome.extra["asked_on_resume"] == outcome.samples - kept  # only calls unfinished at the stop
    if name == "server restarted mid-run":  # down until the client was refused twice, then every call answered
        assert outcome.extra["refused"] >= 2 and outcome.extra["stats"]["retries"] >= 2, outcome.extra
    record(outcome)


@pytest.mark.timeout(120)
def test_a_server_stopped_mid_run_keeps_the_first_wave_and_the_resume_asks_only_the_rest(smollm2, tmp_path):
    outcome = server_scenario("server stopped mid-run", smollm2, tmp_path)
    lines, keys = cache_lines(tmp_path / "cache")
    assert lines == keys == 8 and outcome.extra["kept_before_resume"] >= 1
    assert outcome.extra["asked_on_resume"] == 8 - outcome.extra["kept_before_resume"] <= 7


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_lm_eval_results_count_the_sample_that_failed_with_its_reason(smollm2, tmp_path, data_dir):
    """The real lm_eval CLI on MATH500 (3 rows) over the openai backend: the server refuses the first question
    (HTTP 400, context length), answers the others with the gold answer; the run finishes (exit 0), the
    results' ``error`` is 1/3, the failed sample scores 0 and its trace carries the server's message."""
    from conftest import run_cli
    from inftythink_eval.scoring.datasets import load_rows
    from fault_server import FaultServer
    from faults import Outcome, lm_eval_cmd, read_output

    rows = load_rows("math500", str(data_dir))[:3]
    rules = [{"match": row["problem"], "output": "<think>\nok\n</think> The answer is \\boxed{" + row["answer"] + "}.",
              "faults": ["context"] if i == 0 else []} for i, row in enumerate(rows)]
    with FaultServer(rules) as server:
        cmd = lm_eval_cmd(f"pretrained={smollm2},backend=openai,base_url={server.url},mode=vanilla", tmp_path, tmp_path / "out",
                          3, "--gen_kwargs", "max_gen_toks=32")
        cmd[cmd.index("itt_mini")] = "inftythink_math500"
        run_cli(cmd)
    out = read_output(tmp_path / "out")
    metrics = out["results"]["inftythink_math500"]
    assert metrics["error,none"] == pytest.approx(1 / 3), metrics
    failed = [t for t in out["traces"] if t["error"]]
    assert len(failed) == 1 and "maximum context length" in failed[0]["error"] and failed[0]["final"]["reason"] == "error"
    by_doc = {s["doc_id"]: s for s in out["samples"]}
    assert by_doc[0]["error"] == 1 and by_doc[1]["error"] == 0 and by_doc[2]["error"] == 0
    record(Outcome("server", "HTTP 400 through lm_eval: results count the failed sample", "sample failed", samples=3,
                   completed=1, failed=1, detail=f"error = {metrics['error,none']:.3f}"))


def _serve(model: str, port: int, log_path):
    """A real ``transformers serve`` on 127.0.0.1:port; returns the process once /health answers."""
    import os
    import shutil
    import subprocess
    import time

    import httpx

    exe = shutil.which("transformers")
    assert exe, "the `transformers` CLI is missing: pip install 'transformers[serving]' (the dev extra has it)"
    proc = subprocess.Popen([exe, "serve", model, "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
                            stdout=open(log_path, "a"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 400
    while time.time() < deadline:
        assert proc.poll() is None, f"transformers serve exited with {proc.returncode}; see {log_path}"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(1)
    os.killpg(proc.pid, 9)
    pytest.fail(f"transformers serve did not become healthy in 400 s; see {log_path}")


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_a_real_transformers_serve_killed_and_restarted_mid_run_resumes_to_the_same_outputs(smollm2, tmp_path):
    """Kill the real server once the first calls are cached: the run stops with a clear error (the server is
    unreachable); restart it on the same port and rerun with the same cache: the outputs equal an uninterrupted
    run's, and no call finished before the kill is asked again."""
    import os
    import signal

    from inftythink_eval.backends.base import SamplingParams, make_backend
    from inftythink_eval.run.cache import CallCache
    from inftythink_eval.engine.loop import Engine
    from inftythink_eval.modes import ModeParams, Sample
    from faults import Outcome, free_port, kill_server_mid_run

    port, log = free_port(), tmp_path / "serve.log"
    samples = [Sample(str(i), f"Write one sentence about the number {i}.", SamplingParams(max_tokens=12)) for i in range(6)]

    def run(cache):
        backend = make_backend("openai", base_url=f"http://127.0.0.1:{port}/v1", pretrained=smollm2, concurrency=1,
                               http_retries=2, backoff=0.2, timeout=60)
        try:
            return Engine(backend, "vanilla", ModeParams(), cache=cache, progress=False).run(samples)
        finally:
            backend.close()

    proc = _serve(smollm2, port, log)
    try:
        reference = [t.calls[-1].output for t in run(CallCache(tmp_path / "ref"))]
        stopped, kept = kill_server_mid_run(run, tmp_path / "cache", proc.pid)
        proc.wait(timeout=30)
        assert 2 <= kept < 6
        proc = _serve(smollm2, port, log)  # restarted on the same port
        resumed = run(CallCache(tmp_path / "cache"))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
    assert [t.calls[-1].output for t in resumed] == reference
    assert sum(not c.cached for t in resumed for c in t.calls) == 6 - kept  # only the unfinished calls
    lines, keys = cache_lines(tmp_path / "cache")
    assert lines == keys == 6
    record(Outcome("server", "real transformers serve killed, restarted, resumed", "run stopped", runs=2, completed=1,
                   samples=6, recomputed=lines - keys, seconds=stopped))
