"""Storage faults: the disk fills while the cache or a sidecar is written (``RLIMIT_FSIZE`` in a process of
its own: writes past the limit fail as on a full disk); corrupt, torn and foreign-version cache lines; a trace
sidecar cut short.  Each gets a clear verdict, earlier lines stay intact, and a resume loses nothing."""

from __future__ import annotations

import json
import logging
import resource
import subprocess
import sys
import time

import pytest

from inftythink_eval.backends.base import SamplingParams, make_backend
from inftythink_eval.run.cache import FORMAT_VERSION, CacheError, CallCache
from inftythink_eval.engine.loop import Engine
from inftythink_eval.results.sidecars import IngestError, read_jsonl
from inftythink_eval.modes import Sample
from faults import Outcome, cache_lines, record

ENGINE_RUN = """
import sys
from inftythink_eval.backends.base import SamplingParams, make_backend
from inftythink_eval.run.cache import CallCache
from inftythink_eval.engine.loop import Engine
from inftythink_eval.modes import Sample
backend = make_backend("scripted", script=[{"match": "", "output": "a b c " * 20}])
samples = [Sample(str(i), f"question {i}", SamplingParams(max_tokens=64)) for i in range(12)]
traces = Engine(backend, "vanilla", cache=CallCache(sys.argv[1]), progress=False).run(samples)
print("calls made", backend.calls)
"""


def limited(args: list[str], max_bytes: int) -> subprocess.CompletedProcess:
    """Run ``args`` with every file it writes limited to ``max_bytes`` (a full disk, for that process)."""
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))
    return subprocess.run(args, capture_output=True, text=True, timeout=240, preexec_fn=limit if max_bytes else None)


@pytest.mark.timeout(600)   # bounds a hang: two Python start-ups
def test_disk_full_while_the_cache_is_written_then_resume(tmp_path):
    cache = tmp_path / "cache"
    start = time.time()
    full = limited([sys.executable, "-c", ENGINE_RUN, str(cache)], 1500)
    seconds = time.time() - start
    assert full.returncode != 0
    assert "could not be written" in full.stderr and "is the disk full?" in full.stderr, full.stderr[-2000:]
    assert "same cache_dir to resume" in full.stderr
    (path,) = cache.glob("calls-*.jsonl")
    data = path.read_bytes()
    assert data.endswith(b"\n") and 0 < len(data) <= 1500  # whole lines only: the refused one was rolled back
    kept = data.count(b"\n")
    assert len(CallCache(cache)) == kept and CallCache(cache).torn == [] and CallCache(cache).corrupt == []
    resumed = limited([sys.executable, "-c", ENGINE_RUN, str(cache)], 0)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"calls made {12 - kept}" in resumed.stdout  # only the calls the full disk refused
    assert cache_lines(cache) == (12, 12)
    record(Outcome("storage", "disk full while the cache is written (RLIMIT_FSIZE), then resume", "run stopped",
                   runs=2, completed=1, samples=12, recomputed=0, seconds=seconds))


SIDECAR_RUN = """
import sys
from pathlib import Path
from inftythink_eval.lmeval.sidecar import Sidecar, SidecarError
sidecar = Sidecar(Path(sys.argv[1]), {"mode": "vanilla"})
try:
    for batch in range(100):
        sidecar.append([{"sample_id": f"{batch}/{i}", "text": "x" * 300} for i in range(3)])
except SidecarError as exc:
    print("STOPPED", exc)
    sys.exit(3)
"""


@pytest.mark.timeout(600)   # bounds a hang: a Python start-up
def test_disk_full_while_a_sidecar_is_written(tmp_path):
    out = limited([sys.executable, "-c", SIDECAR_RUN, str(tmp_path)], 5000)
    assert out.returncode == 3 and "is the disk full?" in out.stdout and "intact" in out.stdout, out.stdout + out.stderr
    (traces,) = tmp_path.glob("inftythink_traces_*.jsonl")
    rows = read_jsonl(traces)  # parses: no torn line
    assert len(rows) % 3 == 0 and 0 < len(rows) and traces.stat().st_size <= 5000
    (run,) = tmp_path.glob("inftythink_run_*.json")
    assert json.loads(run.read_text())["mode"] == "vanilla"
    assert not list(tmp_path.glob(".inftythink_*"))  # no temp file left behind
    record(Outcome("storage", "disk full while a trace sidecar is written", "run stopped", completed=0))


def _filled_cache(folder, n=6):
    backend = make_backend("scripted", script=[{"match": "", "output": "an answer"}])
    samples = [Sample(str(i), f"question {i}", SamplingParams(max_tokens=8)) for i in range(n)]
    Engine(backend, "vanilla", cache=CallCache(folder), progress=False).run(samples)
    return samples


@pytest.mark.timeout(30)
def test_corrupt_and_torn_cache_lines_are_skipped_with_a_verdict_and_redone(tmp_path, caplog):
    samples = _filled_cache(tmp_path)
    (path,) = tmp_path.glob("calls-*.jsonl")
    lines = path.read_bytes().split(b"\n")[:-1]
    lines[1] = b"\x00\xff{not json"                          # garbage in the middle
    lines[2] = json.dumps({"key": "k", "text": 3}).encode()   # JSON, but not a cache entry
    path.write_bytes(b"\n".join(lines) + b"\n" + lines[5][:-1] + b"\n" + lines[4][:20])  # torn last line
    with caplog.at_level(logging.WARNING):
        cache = CallCache(tmp_path)
    assert cache.corrupt == [f"{path.name}:2", f"{path.name}:3", f"{path.name}:7"] and cache.torn == [path.name]
    assert "3 corrupt lines skipped" in caplog.text and "will be run again" in caplog.text
    assert len(cache) == 4  # lines 1, 4, 5, 6 remain
    backend = make_backend("scripted", script=[{"match": "", "output": "an answer"}])
    traces = Engine(backend, "vanilla", cache=cache, progress=False).run(samples)
    assert backend.calls == 2 and all(t.calls[0].output == "an answer" for t in traces)
    record(Outcome("storage", "corrupt, invalid and torn cache lines", "verdict", injected=4, completed=1, samples=6))


@pytest.mark.timeout(30)
def test_a_cache_written_by_another_format_is_a_clear_error(tmp_path):
    _filled_cache(tmp_path, n=2)
    (path,) = tmp_path.glob("calls-*.jsonl")
    entry = json.loads(path.read_text().splitlines()[0])
    path.write_text(path.read_text() + json.dumps({**entry, "v": FORMAT_VERSION + 1}) + "\n")
    with pytest.raises(CacheError, match=rf"written by cache format {FORMAT_VERSION + 1}.*reads format "
                                         rf"{FORMAT_VERSION}.*new folder"):
        CallCache(tmp_path)
    record(Outcome("storage", "a cache line written by another cache format", "verdict", runs=0))


def test_a_trace_sidecar_cut_short_is_a_clear_verdict(tmp_path):
    path = tmp_path / "inftythink_traces_2026-01-01T00-00-00.jsonl"
    path.write_text(json.dumps({"sample_id": "a"}) + "\n" + json.dumps({"sample_id": "b"})[:9])
    with pytest.raises(IngestError, match=r":2: not a JSON line .*partial or corrupt"):
        read_jsonl(path)
    record(Outcome("storage", "a trace sidecar cut short (leaderboard import)", "verdict", runs=0))


@pytest.mark.parametrize("label, broken, verdict", [
    ("a torn row", '{"problem": "torn', r"line 4 is not valid JSON"),
    ("a row without its answer", '{"problem": "p", "solution": "s"}', r"row 4 of .* lacks a field.*answer")])
def test_a_data_file_with_a_broken_row_is_a_clear_verdict(tmp_path, data_dir, label, broken, verdict):
    from inftythink_eval.scoring.datasets import BenchmarkDataError, load_rows

    (tmp_path / "math500").mkdir()
    good = (data_dir / "math500" / "test.jsonl").read_text(encoding="utf-8").splitlines()[:3]
    (tmp_path / "math500" / "test.jsonl").write_text("\n".join(good + [broken]) + "\n", encoding="utf-8")
    with pytest.raises(BenchmarkDataError, match=verdict + r".*restore .*from the public source"):
        load_rows("math500", str(tmp_path))
    record(Outcome("storage", f"a benchmark data file with {label}", "verdict", runs=0))
