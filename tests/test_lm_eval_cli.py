"""The real lm-eval CLI as a subprocess: registration, outputs, sidecar traces, errors, resume.

``--model hf`` beside ours (the same outputs) is in test_lm_eval_compat.py; our tasks under it in
test_tasks_baselines.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import INFTYTHINK_BIN, LM_EVAL, run_cli


def outputs(out: Path, task: str = "itt_mini"):
    folder = next(p for p in out.iterdir() if p.is_dir())
    results = json.loads(max(folder.glob("results_*.json")).read_text())
    samples = [json.loads(l) for l in max(folder.glob(f"samples_{task}_*.jsonl")).read_text().splitlines()]
    traces = [json.loads(l) for f in sorted(folder.glob("inftythink_traces_*.jsonl")) for l in f.read_text().splitlines()]
    run = json.loads(max(folder.glob("inftythink_run_*.json")).read_text())
    return results, samples, traces, run


def lm_eval(model_args: str, task_dir: Path, out: Path, *extra: str, limit: int = 3, env=None):
    """``lm_eval --model inftythink`` on the minimal task (3 rows of MATH500 by default)."""
    return run_cli([*LM_EVAL, "--model", "inftythink", "--model_args", model_args, "--tasks", "itt_mini",
                    "--include_path", str(task_dir), "--limit", str(limit), "--output_path", str(out),
                    "--log_samples", *extra], env=env, timeout=1200)


def test_scripted_run_reports_stats_everywhere(tmp_path, mini_task):
    script = tmp_path / "script.jsonl"
    rules = [{"match": "<history>", "output": "<think>\nlast\n</think>The answer is 5."},
             {"match": "", "output": "<think>\nfirst\n</think>\n<summary>\nhalf way\n</summary>"}]
    script.write_text("".join(json.dumps(r) + "\n" for r in rules))
    out = tmp_path / "out"
    lm_eval(f"pretrained=scripted,backend=scripted,script={script},mode=inftythink", mini_task, out)
    results, samples, traces, run = outputs(out)
    metrics = results["results"]["itt_mini"]
    # word tokens of the two scripted outputs: 7 + 6 (the scripted tokenizer counts words)
    assert (metrics["rounds,none"], metrics["tok,none"], metrics["truncated,none"]) == (2.0, 13.0, 0.0)
    assert len(samples) == 3 and all(s["rounds"] == 2 and s["tok"] == 13 for s in samples)
    assert len(traces) == 3 and all(len(t["calls"]) == 2 for t in traces)
    for t in traces:  # each sample's stats are its trace's, derived from its calls
        calls = t["calls"]
        assert t["totals"]["peak_ctx"] == max(c["prompt_tokens"] + c["output_tokens"] for c in calls)
        assert t["totals"]["lat"] == pytest.approx(sum(c["finished"] - c["submitted"] for c in calls))
    by_doc = {t["doc_id"]: t["totals"] for t in traces}
    for key in ("peak_ctx", "lat"):  # the results are the means of the samples', which are the traces'
        assert [s[key] for s in samples] == pytest.approx([by_doc[s["doc_id"]][key] for s in samples]), key
        assert metrics[f"{key},none"] == pytest.approx(sum(s[key] for s in samples) / 3), key
    assert len({s["peak_ctx"] for s in samples}) > 1 and metrics["lat,none"] > 0  # prompts differ in length
    assert traces[0]["calls"][1]["prompt"].endswith("Assistant:<history>half way</history>")
    assert {t["trace_id"] for t in traces} == {f"itt_mini/{s['doc_id']}/0" for s in samples}
    assert run["mode"] == "inftythink" and run["backend"] == "scripted" and run["hardware"]["cpu_count"] >= 1


def test_real_model_summarize_and_vanilla(tmp_path, mini_task, smollm2):
    out = tmp_path / "summ"
    lm_eval(f"pretrained={smollm2},backend=hf,mode=summarize,eta=32,max_rounds=2,summary_tokens=16",
            mini_task, out, "--apply_chat_template", "--gen_kwargs", "max_gen_toks=64")
    results, samples, traces, run = outputs(out)
    metrics = results["results"]["itt_mini"]
    for key in ("tok,none", "lat,none", "rounds,none", "peak_ctx,none"):
        assert metrics[key] > 0, key
    assert len(samples) == 3 and all(s["tok"] > 0 and s["lat"] > 0 for s in samples)
    assert max(s["rounds"] for s in samples) > 1, "at least one sample should need a second round"
    assert any(c["role"] == "summary" for t in traces for c in t["calls"])
    for t in traces:  # TOK is the sum of the backend's generated counts over all calls
        assert t["totals"]["tok"] == sum(c["output_tokens"] for c in t["calls"])
    assert run["weights"]["sha256"]

    out = tmp_path / "van"
    lm_eval(f"pretrained={smollm2},backend=hf,mode=vanilla", mini_task, out, "--apply_chat_template",
            "--gen_kwargs", "max_gen_toks=32")
    results, samples, traces, _ = outputs(out)
    assert results["results"]["itt_mini"]["rounds,none"] == 1.0
    assert all(s["rounds"] == 1 and 0 < s["tok"] <= 32 for s in samples)


BAD_ARGS = [("backend=scripted,modee=vanilla", "valid keys"),
            ("backend=scripted,mode=fast", "valid modes are vanilla, inftythink, summarize, delethink"),
            ("backend=hf", "needs pretrained="),
            ("backend=scripted,eta=lots", "eta='lots': expected int"),
            ("backend=telepathy,pretrained=x", "valid backends are"),
            ("backend=scripted,mode=vanilla,mode=inftythink", "mode is given twice"),
            ("backend=scripted,vanilla", "expected key=value,key=value"),
            ("backend=openai,pretrained=x", "needs base_url=")]


def test_bad_model_args_fail_before_generation(tmp_path, mini_task):
    """Two through the real CLI (its exit code and stderr); all five through lm-eval's own
    constructor path (``create_from_arg_string``), which the CLI calls, without a process each."""
    from lm_eval.api.registry import get_model

    for args, needle in BAD_ARGS[::4]:
        proc = subprocess.run([*LM_EVAL, "--model", "inftythink", "--model_args", args, "--tasks", "itt_mini",
                               "--include_path", str(mini_task), "--limit", "1"], capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode != 0 and needle in proc.stderr, (args, proc.stderr[-2000:])
    for args, needle in BAD_ARGS:
        with pytest.raises(Exception) as err:
            get_model("inftythink").create_from_arg_string(args, {"batch_size": 1, "device": None})
        assert needle in str(err.value), (args, str(err.value))


def test_model_args_text_reads_as_lm_eval_reads_it():
    """``create_from_arg_string`` splits with the one key=value parser and reads each value as lm-eval does
    (true/false, none, numbers, quoted text), so every string lm-eval accepted parses to the same config."""
    from lm_eval.utils import simple_parse_args_string

    from inftythink_eval.lmeval.config import from_args, from_text

    for text in ("backend=scripted,mode=summarize,eta=32,summary_temperature=0.25,progress=false,seed=7",
                 "backend=scripted,template='native',trace_dir=none,batch_size=auto,,max_gen_toks=64",
                 "pretrained=zoo:tiny-synthetic-inftythink,batch_size=2,user_role=<|U|>"):
        assert from_text(text) == from_args(simple_parse_args_string(text)), text
    config = from_text("backend=scripted,mode=summarize,eta=32,template='native'", {"batch_size": 4, "device": None})
    assert (config.mode, config.mode_args, config.template, config.backend_args) == \
        ("summarize", {"eta": 32}, "native", {"batch_size": 4})


@pytest.mark.slow  # a killed run, ~30 s: .ci/run's slow step
def test_killed_run_resumes_without_recomputing(tmp_path, mini_task):
    rules = [{"match": "<history>B</history>", "output": "<think>\nz\n</think>done"},
             {"match": "<history>A</history>", "output": "<think>\ny\n</think>\n<summary>\nB\n</summary>"},
             {"match": "", "output": "<think>\nx\n</think>\n<summary>\nA\n</summary>"}]
    script, log, cache = tmp_path / "s.json", tmp_path / "calls.jsonl", tmp_path / "cache"
    script.write_text(json.dumps(rules))
    args = (f"pretrained=scripted,backend=scripted,script={script},mode=inftythink,call_log={log},"
            f"cache_dir={cache},batch_size=1,delay=0.4")
    cmd = [*LM_EVAL, "--model", "inftythink", "--model_args", args, "--tasks", "itt_mini", "--include_path",
           str(mini_task), "--limit", "4", "--output_path", str(tmp_path / "out")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 5):
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    first = [json.loads(l) for l in log.read_text().splitlines()]
    assert 5 <= len(first) < 12, "the run should have been killed part way"
    from inftythink_eval.run.cache import CallCache

    finished = len(CallCache(cache))
    assert finished >= 4
    run_cli(cmd)
    second = [json.loads(l) for l in log.read_text().splitlines()][len(first):]
    assert len(second) == 12 - finished  # 4 samples x 3 rounds, minus what was finished before the kill


def test_inftythink_eval_forwards_lm_eval_flags(tmp_path, mini_task):
    out = tmp_path / "out"
    proc = run_cli([INFTYTHINK_BIN, "eval", "--model_args", "pretrained=scripted,backend=scripted,mode=vanilla",
                    "--tasks", "itt_mini", "--include_path", str(mini_task), "--limit", "2", "--output_path", str(out)])
    folder = next(out.iterdir())
    results = json.loads(max(folder.glob("results_*.json")).read_text())
    assert results["config"]["model"] == "inftythink" and results["n-samples"]["itt_mini"]["effective"] == 2
    assert "itt_mini" in proc.stdout
