"""``inftythink leaderboard publish``: the dry run lists exactly the upload; an unreachable hub is a clear failure."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

from inftythink_eval.results.write import render_all
from inftythink_eval.results.store import Store
from test_leaderboard_fixtures import REPO, make_record


def site(tmp_path):
    store = Store(tmp_path / "lb" / "results")
    records = [make_record(), make_record(mode="vanilla", acc=0.5, tok=800.0)]
    store.add(records)
    render_all(records, tmp_path / "lb")
    return tmp_path / "lb"


def publish(tmp_path, *args, env=None):
    lb = site(tmp_path)
    cmd = [sys.executable, "-m", "inftythink_eval.cli", "leaderboard", "--store", str(lb / "results"), "--out", str(lb),
           "publish", "--repo", "someone/inftythink-leaderboard", *args]
    return lb, subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})


def test_dry_run_lists_exactly_what_would_be_uploaded(tmp_path):
    lb, proc = publish(tmp_path, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    expected = sorted(f"results/{p.name}" for p in (lb / "results").glob("*.json")) + ["LEADERBOARD.md", "index.html"]
    listed = [line.split()[0] for line in proc.stdout.splitlines() if line.startswith("  ")]
    assert listed == expected
    page = (lb / "index.html").read_bytes()
    assert f"{len(page):,} B  sha256:{hashlib.sha256(page).hexdigest()[:16]}" in proc.stdout
    assert "would upload 4 file(s)" in proc.stdout and "dry run: nothing uploaded" in proc.stdout


def test_unreachable_hub_fails_with_a_clear_message(tmp_path):
    # a closed local port stands for the hub, which this machine cannot reach either
    _lb, proc = publish(tmp_path, env={"HF_ENDPOINT": "http://127.0.0.1:9", "HF_TOKEN": "hf_fake"})
    assert proc.returncode == 2
    assert "could not publish to hub dataset someone/inftythink-leaderboard at http://127.0.0.1:9" in proc.stderr
    assert "Nothing was uploaded" in proc.stderr and "--dry-run" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_nothing_to_publish_is_a_clear_error(tmp_path):
    cmd = [sys.executable, "-m", "inftythink_eval.cli", "leaderboard", "--store", str(tmp_path / "none"), "--out",
           str(tmp_path / "none"), "publish", "--repo", "a/b", "--dry-run"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "nothing to publish" in proc.stderr
