"""CI itself: a skip under CI is a failure, a tier that ran nothing or skipped something fails, and a budget that
cannot fit the tiers fails before anything runs (.ci/run, .ci/tiers.py, tests/conftest.py)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

SKIPPING = '''
import pytest
def test_missing_part():
    pytest.skip("chromium is not installed")
@pytest.mark.skipif(True, reason="needs root")
def test_root_only():
    pass
@pytest.mark.xfail(reason="a known failure", strict=True)
def test_known():
    assert False
def test_fine():
    pass
'''


def _run_skipping_suite(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess:
    shutil.copy(ROOT / "tests" / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_skipping.py").write_text(SKIPPING)
    env = {k: v for k, v in os.environ.items() if k != "CI"} | ({"CI": ci} if ci is not None else {})
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", str(tmp_path)],
                          cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize("ci", ["true", "1"])
def test_a_skip_under_ci_is_a_failure_with_its_reason(tmp_path, ci):
    done = _run_skipping_suite(tmp_path, ci)
    assert done.returncode == 1, done.stdout
    assert "1 failed, 1 passed, 1 xfailed, 1 error" in done.stdout, done.stdout
    assert "skipped under CI (Skipped: chromium is not installed)" in done.stdout
    assert "skipped under CI (Skipped: needs root)" in done.stdout


@pytest.mark.parametrize("ci", [None, "", "false", "0"])
def test_outside_ci_a_skip_stays_a_skip(tmp_path, ci):
    done = _run_skipping_suite(tmp_path, ci)
    assert done.returncode == 0, done.stdout
    assert "1 passed, 2 skipped, 1 xfailed" in done.stdout, done.stdout


def _junit(path: Path, tests: int, failures: int = 0, errors: int = 0, skipped: int = 0) -> Path:
    path.write_text(f'<?xml version="1.0"?><testsuites><testsuite name="pytest" tests="{tests}" '
                    f'failures="{failures}" errors="{errors}" skipped="{skipped}"></testsuite></testsuites>')
    return path


@pytest.mark.parametrize("counts,ok", [({"tests": 5}, True), ({"tests": 0}, False), ({"tests": 5, "skipped": 1}, False),
                                       ({"tests": 5, "failures": 1}, False), ({"tests": 5, "errors": 1}, False)])
def test_a_tier_passes_only_when_it_ran_tests_and_none_failed_or_skipped(tmp_path, counts, ok):
    xml = _junit(tmp_path / "tier.xml", **counts)
    done = subprocess.run([sys.executable, str(ROOT / ".ci" / "tiers.py"), "verify", "slow", str(xml)],
                          capture_output=True, text=True, timeout=120)
    assert (done.returncode == 0) is ok, done.stdout


def test_a_tier_without_a_report_did_not_run(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / ".ci" / "tiers.py"), "verify", "vllm", str(tmp_path / "no.xml")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "did not run" in done.stdout, done.stdout


def test_the_tiers_partition_the_markers():
    sys.path.insert(0, str(ROOT / ".ci"))
    try:
        import tiers
    finally:
        sys.path.remove(str(ROOT / ".ci"))
    assert tiers.tier_of(set()) == "default" and tiers.tier_of({"slow"}) == "slow"
    assert tiers.tier_of({"vllm"}) == "vllm" and tiers.tier_of({"slow", "vllm"}) == "vllm"
    assert tiers._declared_markers() == {"slow", "vllm"}   # a marker added later needs a tier of its own


def test_ci_fails_at_once_when_its_budget_cannot_fit_the_tiers():
    # Nothing is installed, run or deleted: the budget check comes first (this test runs inside CI's own run).
    done = subprocess.run(["bash", str(ROOT / ".ci" / "run")], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "CI_BUDGET_S": "60"})
    assert done.returncode == 1, done.stdout + done.stderr
    assert "CI cannot run them all" in done.stdout, done.stdout
    for tier in ("default", "regress", "slow", "vllm"):
        assert re.search(rf"^ +{tier} +NOT RUN$", done.stdout, flags=re.M), (tier, done.stdout)
