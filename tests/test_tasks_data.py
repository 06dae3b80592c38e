"""Benchmark data loading: row counts, GPQA in memory with a fixed shuffle, clear errors for bad data."""

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from conftest import DATA_DIR
from inftythink_eval.scoring.datasets import BENCHMARKS, BenchmarkDataError, load_rows
from inftythink_eval.scoring.families import FAMILIES
from inftythink_eval.scoring.families.choice import gpqa_order

DATA = DATA_DIR
pytestmark = pytest.mark.usefixtures("data_dir")  # fails, naming the folder, when the data is missing


def mirror(tmp_path: Path) -> Path:
    """A writable copy of the data folder (symlinks; replace a file to corrupt it)."""
    root = tmp_path / "data"
    for bench in BENCHMARKS.values():
        target = root / bench.local_file
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(DATA / bench.local_file)
    return root


@pytest.mark.parametrize("name", list(BENCHMARKS))
def test_row_counts_and_schema(name):
    rows = load_rows(name, str(DATA))
    assert len(rows) == BENCHMARKS[name].rows
    need = set(FAMILIES[BENCHMARKS[name].family].schema)  # the schema its family declares
    assert all(set(r) == need for r in rows)
    assert len({r["id"] for r in rows}) == len(rows)


def test_family_schemas_are_the_documented_ones():  # docs/tasks.md, "Data loading"
    assert {name: set(f.schema) for name, f in FAMILIES.items()} == {
        "math": {"id", "problem", "answer"}, "choice": {"id", "question", "choices", "answer", "gold_text"},
        "code": {"id", "prompt", "entry_point", "setup", "tests", "reference", "first_test"}}


def test_mbpp_is_the_standard_test_split():
    ids = sorted(int(r["id"]) for r in load_rows("mbpp", str(DATA)))
    assert ids == list(range(11, 511))
    assert all(r["first_test"].startswith("assert") for r in load_rows("mbpp", str(DATA)))


def test_gpqa_shuffle_is_deterministic_and_balanced():
    first, second = load_rows("gpqa_diamond", str(DATA)), load_rows("gpqa_diamond", str(DATA))
    assert first == second
    for row in first:
        assert row["choices"]["ABCD".index(row["answer"])] == row["gold_text"]
        assert sorted(gpqa_order(row["id"])) == [0, 1, 2, 3]
    counts = Counter(r["answer"] for r in first)
    assert set(counts) == set("ABCD") and min(counts.values()) >= 30, counts  # not always "A"


def test_gpqa_order_depends_only_on_the_record_id():
    assert gpqa_order("recX") == gpqa_order("recX")
    assert len({tuple(gpqa_order(f"rec{i}")) for i in range(50)}) > 10


def test_gpqa_plaintext_is_never_written(tmp_path):
    root = mirror(tmp_path)
    load_rows("gpqa_diamond", str(root))
    assert sorted(p.name for p in (root / "gpqa").iterdir()) == ["dataset.zip"]


def test_corrupt_line_names_file_line_and_both_fixes(tmp_path):
    root = mirror(tmp_path)
    path = root / "math500" / "test.jsonl"
    lines = (DATA / "math500" / "test.jsonl").read_text().splitlines()
    lines[6] = lines[6][:40]  # truncate line 7
    path.unlink()
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(BenchmarkDataError) as info:
        load_rows("math500", str(root))
    message = str(info.value)
    assert str(path) in message and "line 7" in message
    assert "restore" in message and "HuggingFaceH4/MATH-500" in message and "INFTYTHINK_DATA_DIR" in message


def test_missing_file_and_wrong_row_count(tmp_path):
    root = mirror(tmp_path)
    (root / "aime24" / "test.jsonl").unlink()
    with pytest.raises(BenchmarkDataError, match=r"does not exist.*Fix it either way"):
        load_rows("aime24", str(root))
    path = root / "amc23" / "test.jsonl"
    path.unlink()
    path.write_text("\n".join((DATA / "amc23" / "test.jsonl").read_text().splitlines()[:39]) + "\n")
    with pytest.raises(BenchmarkDataError, match="has 39 rows, expected 40"):
        load_rows("amc23", str(root))


def test_bad_zip_and_bad_gzip(tmp_path):
    root = mirror(tmp_path)
    for rel in ("gpqa/dataset.zip", "humaneval/HumanEval.jsonl.gz"):
        (root / rel).unlink()
        (root / rel).write_bytes(b"not an archive")
    with pytest.raises(BenchmarkDataError, match="not the GPQA-diamond zip with dataset/gpqa_diamond.csv"):
        load_rows("gpqa_diamond", str(root))
    with pytest.raises(BenchmarkDataError, match="cannot be read as gzip"):
        load_rows("humaneval", str(root))


def test_missing_field_is_reported(tmp_path):
    root = mirror(tmp_path)
    path = root / "aime25" / "test.jsonl"
    path.unlink()
    path.write_text((DATA / "aime25" / "test.jsonl").read_text().replace('"answer"', '"solution_text"', 1))
    with pytest.raises(BenchmarkDataError, match="row 1 .* lacks a field"):
        load_rows("aime25", str(root))


def test_unknown_benchmark():
    with pytest.raises(ValueError, match="expected one of math500"):
        load_rows("math5000")


def test_hub_failure_explains_both_fixes(tmp_path):
    code = ("from inftythink_eval.scoring.datasets import load_rows\n"
            "try:\n    load_rows('gpqa_diamond')\nexcept Exception as exc:\n    print(type(exc).__name__, exc)\n")
    env = {k: v for k, v in os.environ.items() if k != "INFTYTHINK_DATA_DIR"}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120).stdout
    assert out.startswith("BenchmarkDataError") and "Idavidrein/gpqa" in out
    assert "INFTYTHINK_DATA_DIR" in out and "HF_TOKEN" in out
