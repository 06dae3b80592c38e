"""Kill and resume through the real ``lm_eval`` CLI: SIGTERM and Ctrl-C stop a run cleanly and say how to
resume; SIGKILL at random moments (hf summarize on SmolLM2, and openai against a server) loses nothing:
the resumed results equal an uninterrupted run's and no call is computed twice (counted in the cache)."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys

import pytest

from conftest import HANG_S, run_cli
from fault_server import FaultServer
from faults import (Outcome, cache_lines, differences, interrupt_at, lm_eval_cmd,
                                           read_output, record)

RESUME_HINT = "rerun the same command with the same cache_dir to resume"


def scripted_args(tmp_path, cache):
    rules = [{"match": "<history>B</history>", "output": "<think>\nz\n</think>done"},
             {"match": "<history>A</history>", "output": "<think>\ny\n</think>\n<summary>\nB\n</summary>"},
             {"match": "", "output": "<think>\nx\n</think>\n<summary>\nA\n</summary>"}]
    script = tmp_path / "script.json"
    script.write_text(json.dumps(rules))
    return f"pretrained=scripted,backend=scripted,script={script},mode=inftythink,cache_dir={cache},batch_size=1,delay=0.3"


def whole_lines(folder) -> bool:
    return all(p.read_bytes().endswith(b"\n") for p in folder.glob("calls-*.jsonl"))


ENGINE_RUN = """
import sys
from inftythink_eval.backends.base import SamplingParams
from inftythink_eval.backends.scripted import ScriptedBackend
from inftythink_eval.run.cache import CallCache
from inftythink_eval.engine.loop import Engine
from inftythink_eval.modes import Sample

class Stalling(ScriptedBackend):
    # with "stall": after its 4th call every request takes an hour, so the run is still going whenever the
    # signal comes (however fast or slow this machine is); the resume runs without it
    def _one(self, request):
        if self.calls >= 4 and sys.argv[2:] == ["stall"]:
            self.delay = 3600.0
        return super()._one(request)

backend = Stalling(script=[{"match": "", "output": "a b c"}], batch_size=1, delay=0.2)
samples = [Sample(str(i), f"question {i}", SamplingParams(max_tokens=4)) for i in range(12)]
try:
    Engine(backend, "vanilla", cache=CallCache(sys.argv[1]), progress=False).run(samples)
except KeyboardInterrupt as stopped:
    print("finished samples", len(stopped.finished_traces), flush=True)
    raise
"""


@pytest.mark.timeout(300)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_engine_stops_on_sigterm_and_ctrl_c_with_whole_cache_lines_and_a_resume_hint(tmp_path, sig):
    """The engine in a Python process of its own (fast): the signal arrives while a request is in flight (the
    fifth never finishes before it)."""
    cache = tmp_path / "cache"
    stopped = interrupt_at([sys.executable, "-c", ENGINE_RUN, str(cache), "stall"], cache, 3, sig, pause=0.1,
                           limit=120)
    assert stopped["landed"] and stopped["code"] != 0 and stopped["seconds"] < 60, stopped   # bounds a hang
    assert "RunInterrupted: generation interrupted" in stopped["stderr"] and RESUME_HINT in stopped["stderr"]
    assert ("Terminated: SIGTERM" if sig == signal.SIGTERM else "KeyboardInterrupt") in stopped["stderr"]
    lines, keys = cache_lines(cache)
    assert whole_lines(cache) and lines == keys and 3 <= lines <= 4
    assert f"{lines} finished calls are kept" in stopped["stderr"]
    finished = int(stopped["stdout"].split("finished samples ")[1].split()[0])
    assert 1 <= finished <= lines  # the stopped run hands its finished traces to its caller
    resumed = subprocess.run([sys.executable, "-c", ENGINE_RUN, str(cache)], capture_output=True, timeout=120)
    assert resumed.returncode == 0 and cache_lines(cache) == (12, 12)  # the rest, and nothing twice
    record(Outcome("kill", f"{signal.Signals(sig).name} of a run (engine, scripted)", "run stopped", runs=2,
                   completed=1, samples=12, recomputed=0, seconds=stopped["seconds"]))


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_sigterm_and_ctrl_c_stop_cleanly_say_how_to_resume_and_lose_nothing(tmp_path, mini_task):
    """4 samples x 3 rounds; SIGTERM after 3 calls, Ctrl-C (SIGINT) after 6, then a rerun finishes the rest."""
    cache, out = tmp_path / "cache", tmp_path / "out"
    cmd = lm_eval_cmd(scripted_args(tmp_path, cache), mini_task, out, 4)
    longest = 0.0
    for lines, sig in ((3, signal.SIGTERM), (6, signal.SIGINT)):
        stopped = interrupt_at(cmd, cache, lines, sig, limit=180)
        longest = max(longest, stopped["seconds"])
        name = signal.Signals(sig).name
        assert stopped["landed"], f"the run ended before {name} was sent"
        assert stopped["code"] != 0, f"{name}: exit status 0"
        assert "generation interrupted" in stopped["stderr"] and RESUME_HINT in stopped["stderr"], stopped["stderr"][-3000:]
        assert str(cache) in stopped["stderr"]
        assert stopped["seconds"] < HANG_S, f"{name} took {stopped['seconds']:.1f} s to stop the run"  # a hang only
        assert whole_lines(cache), f"{name} left a torn cache line"
        assert cache_lines(cache)[0] < 12, f"{name}: the run went on to the end instead of stopping"
        run_files = list(out.rglob("inftythink_run_*.json"))
        assert run_files and all(json.loads(p.read_text())["mode"] == "inftythink" for p in run_files)
    kept, keys = cache_lines(cache)
    assert kept == keys >= 6
    run_cli(cmd)
    lines, keys = cache_lines(cache)
    assert lines == keys == 12, "a call was computed twice, or one is missing"  # 0 recomputed, counted
    done = read_output(out)
    assert done["results"]["itt_mini"]["rounds,none"] == 3.0 and len(done["samples"]) == 4
    assert all(t["final"]["reason"] != "error" for t in done["traces"])
    record(Outcome("kill", "SIGTERM, then Ctrl-C, of lm_eval (scripted), then resume", "resumed", injected=2,
                   runs=3, completed=1, samples=4, recomputed=lines - keys, lost=4 - len(done["samples"]),
                   seconds=longest))


def kill_five_times_then_finish(cmd, cache, seed, total_hint, env=None) -> list[dict]:
    """SIGKILL the run 5 times, each at a random moment after one more call than the last kill; then rerun."""
    rng, kills, lines = random.Random(seed), [], 0
    for _ in range(5):
        lines += rng.randint(1, max(1, total_hint // 6))
        kills.append(interrupt_at(cmd, cache, lines, signal.SIGKILL, pause=rng.uniform(0, 0.4), env=env))
        lines = max(lines, cache_lines(cache)[0])
    run_cli(cmd, env=env)
    return kills


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_sigkill_at_five_random_moments_hf_summarize(tmp_path, mini_task, smollm2):
    """hf (batch_size=1: a row's greedy tokens do not depend on what shares its batch) in summarize mode."""
    args = f"pretrained={smollm2},backend=hf,batch_size=1,mode=summarize,eta=16,max_rounds=3,summary_tokens=8"
    extra = ("--apply_chat_template", "--gen_kwargs", "max_gen_toks=48")
    run_cli(lm_eval_cmd(args + f",cache_dir={tmp_path / 'ref_cache'}", mini_task, tmp_path / "ref", 3, *extra))
    reference = read_output(tmp_path / "ref")
    total = sum(len(t["calls"]) for t in reference["traces"])
    cache = tmp_path / "cache"
    kills = kill_five_times_then_finish(lm_eval_cmd(args + f",cache_dir={cache}", mini_task, tmp_path / "out", 3, *extra),
                                        cache, seed=11, total_hint=total)
    assert sum(k["landed"] for k in kills) >= 3, kills
    assert all(k["code"] == -signal.SIGKILL for k in kills if k["landed"])
    lines, keys = cache_lines(cache)
    assert lines == keys == total, f"{lines - keys} calls recomputed; {keys} of {total} calls"
    resumed = read_output(tmp_path / "out")
    assert differences(reference, resumed) == []
    record(_killed("SIGKILL x5 of lm_eval, hf summarize (SmolLM2), then resume", kills, reference, resumed, lines - keys))


def _killed(name, kills, reference, resumed, recomputed) -> Outcome:
    landed = [k for k in kills if k["landed"]]
    return Outcome("kill", name, "resumed", injected=len(landed), runs=len(kills) + 1, completed=1,
                   samples=len(reference["samples"]), recomputed=recomputed,
                   lost=len(reference["samples"]) - len(resumed["samples"]), seconds=max(k["seconds"] for k in landed))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sigkill_at_five_random_moments_openai(tmp_path, mini_task, smollm2):
    """openai backend against FaultServer (deterministic answers, 20 ms a token) in summarize mode."""
    text = " ".join(f"w{i}" for i in range(40))
    with FaultServer([{"match": "", "output": text}], delay_per_token=0.02) as server:
        args = (f"pretrained={smollm2},backend=openai,base_url={server.url},concurrency=2,mode=summarize,eta=12,"
                "max_rounds=3,summary_tokens=6")
        extra = ("--apply_chat_template", "--gen_kwargs", "max_gen_toks=40")
        run_cli(lm_eval_cmd(args + f",cache_dir={tmp_path / 'ref_cache'}", mini_task, tmp_path / "ref", 4, *extra))
        reference = read_output(tmp_path / "ref")
        total = sum(len(t["calls"]) for t in reference["traces"])
        asked_before = len(server.log)
        cache = tmp_path / "cache"
        cmd = lm_eval_cmd(args + f",cache_dir={cache}", mini_task, tmp_path / "out", 4, *extra)
        kills = kill_five_times_then_finish(cmd, cache, seed=5, total_hint=total)
    assert sum(k["landed"] for k in kills) >= 3, kills
    lines, keys = cache_lines(cache)
    assert lines == keys == total, f"{lines - keys} calls recomputed; {keys} of {total} calls"
    assert len(server.log) - asked_before >= total  # calls in flight at a kill are asked again (never cached)
    resumed = read_output(tmp_path / "out")
    assert differences(reference, resumed) == []
    record(_killed("SIGKILL x5 of lm_eval, openai summarize (fault server), then resume", kills, reference, resumed,
                   lines - keys))
