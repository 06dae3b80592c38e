"""Fault-injection scenarios: each runs a real evaluation, injects one fault and says how it ended.

Owns: ``Outcome`` (one scenario's figures: faults injected, how the run
ended, samples failed with a reason, calls recomputed after resume, samples
lost, seconds to resolve), the table of misbehaving-server faults and what
each must end in (``SERVER_FAULTS``), the runner of one server scenario
against ``FaultServer`` through the real ``openai`` backend and engine,
cache counting (``cache_lines``: a call recomputed after a resume is a
second line with the same key), the real ``lm_eval`` CLI interrupted at a
chosen moment (``interrupt_at``) and compared with an uninterrupted run
(``differences``), and the ledger (``record``).  The tests
(``tests/test_faults_*.py``) assert on these outcomes and record them;
``scripts/reliability.py`` runs the tests with a ledger and writes the
figures into ``docs/reliability.md``.

Each fault ends one of three ways, chosen on purpose: ``retried`` (to
success), ``sample failed`` (that sample records the reason, the run goes
on), ``run stopped`` (a clear error, every finished call kept; a rerun with
the same cache resumes).  ``answered`` marks answers that are odd but whole
(no ``usage``, a stop string left in): they are repaired client-side.

Does not know: lm-eval's output layout (the tests read it), figures' layout.
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from inftythink_eval.backends.base import BackendError, SamplingParams, make_backend
from inftythink_eval.run.cache import CallCache
from inftythink_eval.engine.loop import Engine
from inftythink_eval.modes import ModeParams, Sample
from fault_server import FaultServer

OPENAI_LOGGER = "inftythink_eval.backends.openai"   # where the openai backend warns of each retry

ENDINGS = ("retried", "answered", "sample failed", "run stopped")
ANSWER = "one two three. four five"  # every healthy answer; the stop string "four" cuts it to "one two three. "


@dataclass
class Outcome:
    """What one scenario did and how it ended (one row of the figures)."""

    kind: str                 # "server", "kill", "storage", "output", "concurrent", "builder"
    scenario: str
    ending: str               # one of ENDINGS, or "resumed" / "verdict"
    injected: int = 1         # faults injected
    runs: int = 1             # runs started (a resume counts)
    completed: int = 0        # runs that finished (after resume where there was one)
    samples: int = 0
    failed: int = 0           # samples recorded as failed, with their reason
    recomputed: int = 0       # calls run again after a resume (target 0)
    lost: int = 0             # samples neither finished nor recorded as failed (target 0)
    seconds: float = 0.0      # longest time from injecting a fault to its resolution
    detail: str = ""
    extra: dict = field(default_factory=dict)

    def row(self) -> dict:
        return asdict(self)


LEDGER_ENV = "INFTYTHINK_FAULT_LEDGER"


def record(outcome: Outcome) -> Outcome:
    """Append the outcome to the ledger file named by $INFTYTHINK_FAULT_LEDGER (set by
    ``scripts/reliability.py``; without it, nothing is written)."""
    import os

    path = os.environ.get(LEDGER_ENV)
    if path:
        row = {k: v for k, v in outcome.row().items() if k != "extra"}
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
    return outcome


# name -> (faults for the first sample's requests, the ending chosen for it, model_args overrides)
SERVER_FAULTS: dict[str, tuple[list[str], str]] = {
    "HTTP 500 burst (2)": (["500", "500"], "retried"),
    "HTTP 502": (["502"], "retried"),
    "HTTP 503 burst (3)": (["503"] * 3, "retried"),
    "HTTP 429 burst (3)": (["429"] * 3, "retried"),
    "server dies mid-request": (["die"], "retried"),
    "read timeout (no answer)": (["slow"], "retried"),
    "read timeout (stream stalls)": (["stall"], "retried"),
    "malformed JSON": (["malformed"], "retried"),
    "body cut short": (["cut"], "retried"),
    "no usage in the answer": (["no_usage"], "answered"),
    "stop string left in": (["stop_left_in"], "answered"),
    "invalid UTF-8 and NUL in a stream": (["bad_utf8"], "answered"),
    "HTTP 400 context length exceeded": (["context"], "sample failed"),
    "HTTP 503 for good (every retry spent)": (["503"] * 50, "sample failed"),
    "connection refused (no server)": ([], "run stopped"),
    "server restarted mid-run": ([], "retried"),
    "server stopped mid-run": ([], "run stopped"),
}
MID_RUN = ("server restarted mid-run", "server stopped mid-run")  # a second wave of requests meets the closed port
# Client settings.  A read timeout is injected by a server that stalls until it is released, never by a slow
# answer, so TIMEOUT only has to be far above any healthy answer's time on a loaded machine (milliseconds).
RETRIES, BACKOFF, TIMEOUT = 4, 0.05, 10.0
REFUSED_BEFORE_BACK = 2  # a restarted server listens again once the client has been refused this often


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cache_lines(folder: Path) -> tuple[int, int]:
    """(whole lines, distinct keys) over a cache folder: lines - keys = calls computed twice."""
    keys: list[str] = []
    for path in sorted(Path(folder).glob("calls-*.jsonl")):
        for raw in path.read_bytes().split(b"\n"):
            try:
                keys.append(json.loads(raw)["key"])
            except (ValueError, KeyError, TypeError):
                continue
    return len(keys), len(set(keys))


def kill_server_mid_run(run, cache_dir: Path, pid: int, after: int = 2) -> tuple[float, int]:
    """Call ``run(cache)`` (an evaluation over an openai backend with 2 retries) and SIGKILL the server's process
    group ``pid`` once ``after`` calls are cached.  The run must stop with the unreachable-server error and the
    resume hint; returns (seconds until it stopped, cache lines kept)."""
    import os

    cache = CallCache(cache_dir)

    def kill_when_cached():
        while len(cache) < after:
            time.sleep(0.02)
        os.killpg(pid, signal.SIGKILL)

    threading.Thread(target=kill_when_cached, daemon=True).start()
    began = time.time()
    try:
        run(cache)
    except BackendError as exc:
        message = str(exc)
        for part in ("failed after 3 attempts", "Is the server running", "same cache_dir"):
            assert part in message, f"the stop message lacks {part!r}: {message}"
    else:
        raise AssertionError("the run went on after its server was killed")
    return time.time() - began, cache_lines(cache_dir)[0]


def _samples(n: int) -> list[Sample]:
    return [Sample(f"s{i}", f"Q{i}: say something.", SamplingParams(max_tokens=8, stop=("four",))) for i in range(n)]


def _run(url: str, tokenizer: str, cache: Path, samples: list[Sample]):
    backend = make_backend("openai", base_url=url, tokenizer=tokenizer, http_retries=RETRIES, backoff=BACKOFF,
                           timeout=TIMEOUT, concurrency=4)
    try:
        return Engine(backend, "vanilla", ModeParams(), cache=CallCache(cache), progress=False).run(samples), backend
    finally:
        backend.close()


def server_scenario(name: str, tokenizer: str, workdir: Optional[Path] = None, n: int = 4) -> Outcome:
    """Run ``n`` samples through the ``openai`` backend against a ``FaultServer`` whose first sample meets
    the fault ``name``; where the run stops, resume it against a healthy server with the same cache."""
    faults, _ = SERVER_FAULTS[name]
    workdir = Path(workdir or tempfile.mkdtemp(prefix="faults-"))
    cache = workdir / "cache"
    rules = [{"match": "Q0:", "output": ANSWER, "faults": faults}, {"match": "", "output": ANSWER}]
    n = 2 * n if name in MID_RUN else n
    samples = _samples(n)
    outcome = Outcome("server", name, ending="", injected=len(faults) or 1, samples=n)
    # mid-run: the port closes when the first request arrives (no answer goes out before), so the requests
    # after the first wave meet it; a restarted server listens again once the client was refused twice
    server = (None if name.startswith("connection refused") else
              FaultServer(rules, down_at=1 if name in MID_RUN else None))
    url = server.url if server else f"http://127.0.0.1:{free_port()}/v1"
    back = _BackWhenRefused(server, REFUSED_BEFORE_BACK) if name == "server restarted mid-run" else None
    start = time.time()
    try:
        traces, backend = _run(url, tokenizer, cache, samples)
        outcome.completed, outcome.seconds = 1, time.time() - start
        outcome.extra["stats"] = dict(backend.stats)
    except BackendError as exc:
        outcome.seconds, outcome.detail = time.time() - start, str(exc)
        if server is not None:
            server.close()
        traces = _resume(outcome, rules, tokenizer, cache, samples, int(url.rsplit(":", 1)[1].split("/")[0]))
    finally:
        if back is not None:
            back.remove()
        if server is not None:
            server.close()
    if back is not None:
        outcome.extra["refused"] = back.refused
    if server is not None and faults:
        outcome.injected = sum(1 for e in server.log if e["fault"])  # the faults that were met, not scripted
    outcome.failed = sum(1 for t in traces if t.final is not None and t.final.reason == "error")
    outcome.lost = sum(1 for t in traces if t.final is None)
    outcome.extra["outputs"] = [t.calls[-1].output if t.calls else None for t in traces]
    outcome.extra["errors"] = [t.error for t in traces]
    outcome.extra["attempts_first"] = sum(1 for e in (server.log if server else []) if e["prompt"].startswith("Q0:"))
    if not outcome.ending:
        outcome.ending = ("sample failed" if outcome.failed else
                          "retried" if outcome.extra["stats"]["retries"] else "answered")
    return outcome


class _BackWhenRefused(logging.Handler):
    """Listens on the client's retry warnings: on the ``n``-th refused connection the server listens again.
    It runs on the client's thread before that request's backoff, so its next attempt finds the port open:
    the outage ends on the client's own failed attempts, not on a clock that retries must outlast."""

    def __init__(self, server: FaultServer, n: int) -> None:
        super().__init__(logging.WARNING)
        self.server, self.n, self.refused = server, n, 0
        self.logger = logging.getLogger(OPENAI_LOGGER)
        self.level_before = self.logger.level
        if not self.logger.isEnabledFor(logging.WARNING):   # the warnings are this handler's only signal
            self.logger.setLevel(logging.WARNING)
        self.logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        if "ConnectError" in record.getMessage():
            self.refused += 1
            if self.refused == self.n:
                self.server.listen_again()

    def remove(self) -> None:
        self.logger.removeHandler(self)
        self.logger.setLevel(self.level_before)


def _resume(outcome: Outcome, rules: list[dict], tokenizer: str, cache: Path, samples: list[Sample], port: int):
    """The run stopped: count what the cache kept, resume against a healthy server on the same port (the
    backend's fingerprint holds the URL), count recomputed calls."""
    outcome.ending, outcome.runs = "run stopped", 2
    kept, _ = cache_lines(cache)
    healthy = [{**r, "faults": []} for r in rules]
    with FaultServer(healthy, port=port) as server:
        traces, _ = _run(server.url, tokenizer, cache, samples)
        asked = len(server.log)
    lines, keys = cache_lines(cache)
    outcome.completed = 1
    outcome.recomputed = lines - keys
    outcome.extra.update(kept_before_resume=kept, asked_on_resume=asked)
    return traces


# --- the real lm_eval CLI: kills, interrupts and resume --------------------------------------------------
def lm_eval_cmd(model_args: str, task_dir: Path, out: Path, limit: int, *extra: str) -> list[str]:
    """``lm_eval --model inftythink`` on the minimal task (``tests/fixtures/mini_task``) with samples logged."""
    import sys

    return [sys.executable, "-m", "lm_eval", "--model", "inftythink", "--model_args", model_args, "--tasks",
            "itt_mini", "--include_path", str(task_dir), "--limit", str(limit), "--output_path", str(out),
            "--log_samples", *extra]


def interrupt_at(cmd: list[str], cache: Path, lines: int, sig: int, pause: float = 0.0, limit: float = 600,
                 env: Optional[dict] = None) -> dict:
    """Start ``cmd``; once the cache holds ``lines`` whole lines (and ``pause`` more seconds), send ``sig``.
    Returns whether the signal landed before the run ended, the exit status, stdout, stderr and the seconds
    from the signal to the exit (the time to resolve the fault)."""
    import os
    import signal as _signal
    import subprocess

    full_env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", **(env or {})}
    err, out = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    # a shell that starts a job in the background makes it ignore SIGINT, and children inherit that: give the
    # child the default disposition, as a terminal's foreground job has (Python then raises KeyboardInterrupt)
    proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=full_env, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline, sent = time.time() + limit, None
    try:
        while proc.poll() is None and time.time() < deadline:
            if cache_lines(cache)[0] >= lines:
                time.sleep(pause)
                if proc.poll() is None:
                    sent = time.time()
                    (os.killpg if sig == _signal.SIGKILL else os.kill)(proc.pid, sig)
                break
            time.sleep(0.02)
        code = proc.wait(timeout=max(1.0, deadline - time.time()))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, _signal.SIGKILL)
        code = proc.wait()
        raise RuntimeError(f"{cmd[:6]}... did not end within {limit:.0f} s after {_signal.Signals(sig).name}") from None
    err.seek(0), out.seek(0)
    return {"landed": sent is not None, "code": code, "stderr": err.read().decode("utf-8", "replace"),
            "stdout": out.read().decode("utf-8", "replace"),
            "seconds": time.time() - sent if sent else 0.0}


def read_output(out: Path) -> dict:
    """lm-eval's results and samples and the inftythink trace sidecars of one ``--output_path``."""
    folder = next(p for p in Path(out).iterdir() if p.is_dir())
    results = json.loads(max(folder.glob("results_*.json")).read_text())["results"]
    samples = [json.loads(l) for l in max(folder.glob("samples_*.jsonl")).read_text().splitlines()]
    # the latest run's traces: a run killed after generating (while scoring) leaves a traces file of its own
    traces = [json.loads(l) for l in max(folder.glob("inftythink_traces_*.jsonl")).read_text().splitlines()]
    return {"results": results, "samples": samples, "traces": traces}


TIMED = ("lat",)  # measured seconds: they differ between any two runs, so comparisons leave them out


def differences(a: dict, b: dict) -> list[str]:
    """What differs between two ``read_output``s, leaving out measured times (results, samples, answers, calls)."""
    diffs = []
    for task, metrics in a["results"].items():
        for key, value in metrics.items():
            if key.split(",")[0].split("_stderr")[0] not in TIMED and b["results"].get(task, {}).get(key) != value:
                diffs.append(f"results {task} {key}: {value} != {b['results'].get(task, {}).get(key)}")
    keep = ("doc_id", "resps", "filtered_resps", "acc", "tok", "rounds", "peak_ctx", "truncated", "target")
    rows = lambda out: sorted(json.dumps({k: s.get(k) for k in keep}, sort_keys=True) for s in out["samples"])
    if rows(a) != rows(b):
        diffs.append("samples differ")
    calls = lambda out: sorted(json.dumps([t["trace_id"], [(c["role"], c["prompt"], c["output"]) for c in t["calls"]],
                                           t["final"], t["error"]]) for t in out["traces"])
    if calls(a) != calls(b):
        diffs.append("traces (calls, finals or errors) differ")
    return diffs
