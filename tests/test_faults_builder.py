"""The dataset builder under kills and a flaky summariser server: ``inftythink data build`` (its public CLI)
summarising through the ``openai`` backend against ``FaultServer`` (a 503 on the first try of every third
question), SIGKILLed three times at random moments, then rerun: the Parquet output is byte-identical to an
uninterrupted build's, and each summary is answered once (plus at most the requests in flight at a kill).
Until the rerun the server holds the build's last summary request unanswered, so no killed build can have
finished first, however fast the machine: every kill lands on a build in progress."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from fault_server import FaultServer
from faults import Outcome, record

N, CONCURRENCY = 40, 2


def source(tmp: Path) -> Path:
    rows = [{"question": f"Question {i}?", "answer": f"Answer {i}.",
             "trace": "\n\n".join(f"Step {k} of problem {i} has some words in it." for k in range(1 + i % 4))}
            for i in range(N)]
    path = tmp / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def server() -> FaultServer:
    rules = [{"match": f"Question {i}?", "output": f"* progress on question {i}", "faults": ["503"] if i % 3 == 0 else []}
             for i in range(N)]
    return FaultServer(rules, delay_per_token=0.04)


def build_cmd(src: Path, out: Path, url: str) -> list[str]:
    return [sys.executable, "-m", "inftythink_eval.cli", "data", "build", "--source", str(src), "--out", str(out),
            "--eta", "8", "--tokenizer", "words", "--question-column", "question", "--trace-column", "trace",
            "--conclusion-column", "answer", "--no-progress", "--no-chat-template", "--block-rows", "8",
            "--summarizer", f"openai:base_url={url},http_retries=4,backoff=0.05,concurrency={CONCURRENCY}"]


def parquet(out: Path) -> dict:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.glob("*/*.parquet"))}


def answered(log: list[dict]) -> Counter:
    return Counter(e["prompt"] for e in log if e["fault"] is None)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_builder_killed_three_times_with_a_flaky_summariser_is_byte_identical_and_asks_each_summary_once(tmp_path):
    src = source(tmp_path)
    with server() as clean:
        done = subprocess.run(build_cmd(src, tmp_path / "clean", clean.url), capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        once = answered(clean.log)
        last = clean.log[-1]["prompt"]   # the build's last summary request
    assert sum(once.values()) > 60 and set(once.values()) == {1}
    rng, landed, out = random.Random(3), 0, tmp_path / "resumed"
    with server() as flaky:
        flaky.hold(last)   # unanswered until the rerun: a killed build cannot finish before its kill
        for threshold in sorted(rng.sample(range(5, sum(once.values()) - 5), 3)):
            proc = subprocess.Popen(build_cmd(src, out, flaky.url), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.time() + 300   # bounds a hang: every other request is answered at once
            while proc.poll() is None and len(flaky.log) < threshold and time.time() < deadline:
                time.sleep(0.01)
            assert len(flaky.log) >= threshold, f"the build stopped asking at {len(flaky.log)} of {threshold} requests"
            time.sleep(rng.uniform(0, 0.3))   # a random moment after the threshold
            assert proc.poll() is None, f"the build ended ({proc.returncode}) with its last summary unanswered"
            proc.send_signal(signal.SIGKILL)
            landed += 1
            proc.wait(timeout=30)
        assert not (out / "stats.json").exists()   # written last: no killed build got that far
        flaky.release()
        began = time.time()
        done = subprocess.run(build_cmd(src, out, flaky.url), capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        seconds = time.time() - began
        asked = answered(flaky.log)
    assert landed == 3
    assert parquet(out) == parquet(tmp_path / "clean") != {}  # byte-identical
    assert set(asked) == set(once)
    extra = sum((asked - once).values())
    assert extra <= CONCURRENCY * landed, f"{extra} summaries asked twice"  # only requests in flight at a kill
    lines, keys, broken = summary_lines(out)
    assert broken == 0, f"{broken} cache lines do not parse (a torn line must be cut when the cache reopens)"
    assert lines == keys == sum(once.values())  # no finished summary computed twice (counted in its cache)
    record(Outcome("builder", "data build SIGKILLed x3 with a flaky summariser (503s), then resume", "resumed",
                   injected=landed + sum(1 for e in flaky.log if e["fault"]), runs=landed + 1, completed=1,
                   samples=N, recomputed=lines - keys, seconds=seconds,
                   detail=f"{extra} of {sum(once.values())} requests in flight at a kill asked again"))


def summary_lines(out: Path) -> tuple[int, int, int]:
    """(whole lines, distinct keys, lines that do not parse) of the build's summary cache: lines - keys =
    summaries computed twice."""
    keys, broken = [], 0
    for path in sorted((out / "cache").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                keys.append(json.loads(line)["k"])
            except (ValueError, KeyError, TypeError):
                broken += 1
    return len(keys), len(set(keys)), broken
