"""The test tiers of .ci/run, checked: each test belongs to exactly one tier, every tier ran and ran something.

  python .ci/tiers.py collect REPORT_DIR   collect every test once (markers ignored), write the files of each tier
                                           to REPORT_DIR/<tier>.files, print the counts; non-zero when a tier is
                                           empty or a marker declared in pyproject.toml is used by no test
  python .ci/tiers.py verify TIER XML      read a tier's JUnit report: non-zero unless it ran at least one test,
                                           none failed and none was skipped

The tiers are defined by markers, so together they hold every test exactly once: a slow test needs no CI line of
its own (a file list once left five slow tests to no CI step).
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

# Tier name -> pytest marker expression. The default tier is the README's command (pyproject's addopts).
TIERS = {
    "default": "not slow and not vllm",
    "slow": "slow and not vllm",
    "vllm": "vllm",
}


def tier_of(markers: set[str]) -> str:
    return "vllm" if "vllm" in markers else "slow" if "slow" in markers else "default"


class _Collector:
    def __init__(self) -> None:
        self.items: list[tuple[str, set[str]]] = []

    def pytest_collection_modifyitems(self, config, items):
        self.items = [(item.nodeid, {m.name for m in item.iter_markers()}) for item in items]


def _declared_markers() -> set[str]:
    """The project's own markers (pyproject.toml), not pytest's or its plugins' (parametrize, timeout, ...)."""
    import tomllib

    ini = tomllib.loads(Path("pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    return {line.split(":")[0].strip() for line in ini["markers"]}


def collect(report_dir: Path) -> int:
    import pytest

    collector = _Collector()
    rc = pytest.main(["--collect-only", "-qq", "-m", "", "-p", "no:cacheprovider", "tests"], plugins=[collector])
    if rc != 0:
        print(f"tiers: collecting the tests failed (pytest exit {rc})")
        return 1
    ours = _declared_markers()
    used = set().union(*(markers for _, markers in collector.items))
    problems = [f"marker {name!r} is declared in pyproject.toml but no test uses it" for name in sorted(ours - used)]
    report_dir.mkdir(parents=True, exist_ok=True)
    for tier in TIERS:
        nodes = [node for node, markers in collector.items if tier_of(markers & ours) == tier]
        files = sorted({node.split("::")[0] for node in nodes})
        (report_dir / f"{tier}.files").write_text("".join(f"{f}\n" for f in files))
        print(f"tier {tier:8s} -m {TIERS[tier]!r}: {len(nodes)} tests in {len(files)} files")
        if not nodes:
            problems.append(f"tier {tier!r} holds no test")
    for line in problems:
        print(f"tiers: {line}")
    return 1 if problems else 0


def verify(tier: str, xml_path: Path) -> int:
    if not xml_path.is_file():
        print(f"tiers: {tier}: no report at {xml_path}: the tier did not run")
        return 1
    root = ET.parse(xml_path).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    count = {key: sum(int(s.get(key, 0)) for s in suites) for key in ("tests", "failures", "errors", "skipped")}
    print(f"tier {tier}: {count['tests']} tests, {count['failures']} failed, {count['errors']} errors, "
          f"{count['skipped']} skipped")
    if count["tests"] == 0:
        print(f"tiers: {tier} collected nothing")
    if count["skipped"]:
        print(f"tiers: {tier} skipped {count['skipped']} tests; in CI every collected test must run")
    return 0 if count["tests"] and not (count["failures"] or count["errors"] or count["skipped"]) else 1


if __name__ == "__main__":
    usage = __doc__.split("\n\n")[0]
    if len(sys.argv) == 3 and sys.argv[1] == "collect":
        sys.exit(collect(Path(sys.argv[2])))
    if len(sys.argv) == 4 and sys.argv[1] == "verify":
        sys.exit(verify(sys.argv[2], Path(sys.argv[3])))
    sys.exit(usage)
