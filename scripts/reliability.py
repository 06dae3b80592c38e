"""Regenerate the fault-injection figures in docs/reliability.md (issue 11).

    python scripts/reliability.py            # the fast part (the default test run's fault tests), ~2 min
    python scripts/reliability.py --slow     # also the slow part: lm_eval CLI kills on hf and openai, ~30 min

Runs ``tests/test_faults_*.py`` under pytest with a ledger (``$INFTYTHINK_FAULT_LEDGER``): every test
that passes records its outcome (``faults.record``).  The figures are the ledger
summed by kind, and one row per scenario; the text between the FIGURES markers of docs/reliability.md is
replaced, the rest of the page is kept.  Only outcomes of passing tests are counted; failures are listed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "reliability.md"
BEGIN, END = "<!-- FIGURES BEGIN (scripts/reliability.py) -->", "<!-- FIGURES END -->"
KINDS = ("server", "kill", "storage", "output", "concurrent", "builder")


def run_tests(slow: bool, ledger: Path) -> tuple[int, str]:
    env = {**os.environ, "INFTYTHINK_FAULT_LEDGER": str(ledger), "TOKENIZERS_PARALLELISM": "false"}
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_faults_*.py"))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files,
           "-m", "slow or not slow" if slow else "not slow"]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    summary = (done.stdout.strip().splitlines() or ["(no pytest output)"])[-1]
    failed = [l for l in done.stdout.splitlines() if l.startswith(("FAILED tests", "ERROR tests"))]
    return done.returncode, "\n".join([summary, *failed])


def by_kind(rows: list[dict]) -> list[str]:
    totals: dict[str, dict] = defaultdict(lambda: defaultdict(float))
    for r in rows:
        t = totals[r["kind"]]
        t["scenarios"] += 1
        for key in ("injected", "runs", "completed", "samples", "failed", "recomputed", "lost"):
            t[key] += r[key]
        t["seconds"] = max(t["seconds"], r["seconds"])
    lines = ["| kind | scenarios | faults injected | runs completed / started | samples failed with a reason "
             "| calls recomputed after resume (target 0) | samples lost (target 0) | longest time to resolve (s) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for kind in [k for k in KINDS if k in totals] + sorted(set(totals) - set(KINDS)):
        t = totals[kind]
        lines.append(f"| {kind} | {int(t['scenarios'])} | {int(t['injected'])} | {int(t['completed'])} / {int(t['runs'])} "
                     f"| {int(t['failed'])} | {int(t['recomputed'])} | {int(t['lost'])} | {t['seconds']:.1f} |")
    return lines


def per_scenario(rows: list[dict]) -> list[str]:
    lines = ["| kind | scenario | ending | injected | failed | recomputed | lost | seconds | note |",
             "|---|---|---|---:|---:|---:|---:|---:|---|"]
    for r in sorted(rows, key=lambda r: (KINDS.index(r["kind"]) if r["kind"] in KINDS else 99, r["scenario"])):
        note = r["detail"] if len(r["detail"]) < 60 else ""
        lines.append(f"| {r['kind']} | {r['scenario']} | {r['ending']} | {r['injected']} | {r['failed']} "
                     f"| {r['recomputed']} | {r['lost']} | {r['seconds']:.1f} | {note} |")
    return lines


def figures(rows: list[dict], slow: bool, status: int, summary: str) -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    head = [BEGIN, "",
            f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC at commit `{commit}` by "
            f"`python scripts/reliability.py{' --slow' if slow else ''}` on {platform.machine()}, "
            f"{os.cpu_count()} CPU cores (load average {load:.1f} at the end: seconds are wall time on a shared machine).",
            f"Tests: {summary.splitlines()[0]}" + ("" if status == 0 else " (failures below: their outcomes are not counted)"),
            ""]
    if status != 0:
        head += ["```", *summary.splitlines()[1:], "```", ""]
    head += ["Definitions: *faults injected* counts faults actually served or sent (a scripted burst the client "
             "outlived counts each try); *runs* counts processes or engine runs started, a resume included; "
             "*calls recomputed* counts cache keys written twice (a finished call or summary computed again); "
             "*samples lost* counts samples neither finished nor recorded as failed; *time to resolve* is, for "
             "server faults, the run's wall time until every sample ended (an upper bound), for signals and full "
             "disks the time from the fault to the process's exit, and for parsing the time to parse the largest "
             "input.", ""]
    return "\n".join(head + ["### By kind", ""] + by_kind(rows) + ["", "### Each scenario", ""] + per_scenario(rows)
                     + ["", END])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slow", action="store_true", help="include the slow part (real lm_eval runs killed)")
    parser.add_argument("--doc", type=Path, default=DOC, help="page to update (default: docs/reliability.md)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        ledger = Path(tmp) / "ledger.jsonl"
        ledger.touch()
        status, summary = run_tests(args.slow, ledger)
        rows = [json.loads(l) for l in ledger.read_text().splitlines() if l.strip()]
    text = args.doc.read_text(encoding="utf-8") if args.doc.exists() else f"# Reliability\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{args.doc}: the markers {BEGIN!r} and {END!r} are missing; put them where the figures go")
    before, rest = text.split(BEGIN, 1)
    after = rest.split(END, 1)[1]
    args.doc.write_text(before + figures(rows, args.slow, status, summary) + after, encoding="utf-8")
    print(f"{len(rows)} outcomes from {summary.splitlines()[0]} -> {args.doc}")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
