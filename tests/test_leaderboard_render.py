"""Rendering: LEADERBOARD.md holds every record; index.html loads in real headless Chromium without script errors."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from inftythink_eval.leaderboard import plots
from inftythink_eval.leaderboard.ingest import import_path
from inftythink_eval.leaderboard.render import markdown, render_all
from inftythink_eval.leaderboard import reference
from test_leaderboard_fixtures import REPO, scripted_degraded, scripted_two_modes

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def records():
    return import_path(scripted_two_modes()) + import_path(scripted_degraded())


def test_markdown_has_every_record_groups_deltas_and_reported_rows(records):
    text = markdown(records, reference.load())
    for record in records:
        assert record.record_id in text, record.key
    assert "## Paper benchmarks" in text and "### lbt_math500" in text and "### lbt_aime24" in text
    aime = text.split("### lbt_aime24")[1].split("###")[0]
    aime_native = next(line for line in aime.splitlines() if line.startswith("| scripted-good | inftythink |"))
    assert "+108%" in aime_native  # TOK 52 vs the vanilla 25 of the same model and task
    assert "## Reported in the paper (not measured here)" in text and "80.8" in text and "UNVERIFIED" in text


def test_plots_draw_from_traces(records):
    for name, (_title, draw) in plots.PLOTS.items():
        svg = draw(records)
        assert svg and svg.startswith("<svg"), name
    pair = plots.sawtooth_pair(records)
    assert [r.mode for r in pair] == ["vanilla", "inftythink"]
    assert plots.sawtooth([r for r in records if not r.sawtooth]) is None  # no traces: the page says so instead


def chromium(url, tmp_path):
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
           "--enable-logging=stderr", "--v=0", "--virtual-time-budget=3000", "--dump-dom", url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    errors = [l for l in proc.stderr.splitlines() if "CONSOLE" in l and re.search(r"Uncaught|Error", l)]
    return proc.stdout, errors


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed: apt-get install -y chromium")
def test_page_loads_in_headless_chromium_and_shows_every_record(records, tmp_path):
    broken = tmp_path / "broken.html"
    broken.write_text("<html><body><script>notDefined();</script></body></html>")
    assert chromium(broken.as_uri(), tmp_path)[1], "the console-error detector must see a broken page"

    _md, page = render_all(records, tmp_path / "site")
    dom, errors = chromium(page.as_uri(), tmp_path)
    assert errors == []
    assert 'data-ready="yes"' in dom  # the page script ran to its end
    shown = set(re.findall(r'<tr class="record" data-id="([0-9a-f]+)"', dom))
    assert shown == {r.record_id for r in records}
    assert re.search(rf'id="shown">{len(records)}<', dom)
    assert dom.count("<svg") >= 4 and "Reported in the paper" in dom


def test_render_cli_writes_both_pages(tmp_path):
    store = tmp_path / "results"
    env_args = ["--store", str(store), "--out", str(tmp_path / "site")]
    base = [sys.executable, "-m", "inftythink_eval.cli", "leaderboard", *env_args]
    assert subprocess.run(base + ["import", str(scripted_two_modes())], cwd=REPO, capture_output=True).returncode == 0
    proc = subprocess.run(base + ["render"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "rendered 4 record(s)" in proc.stdout
    assert (tmp_path / "site" / "LEADERBOARD.md").is_file() and (tmp_path / "site" / "index.html").is_file()


def test_pass_and_majority_at_the_largest_k_are_shown():
    from test_leaderboard_fixtures import make_record

    record = make_record(samples_per_question=4, pass_at_k={"pass@1": 0.5, "pass@4": 0.75}, maj_at_k={"maj@4": 0.625})
    assert "pass@4 75.0 · maj@4 62.5" in markdown([record], [])
