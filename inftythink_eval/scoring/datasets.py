"""Load the seven benchmarks as rows of one schema per family, from the hub or an offline folder.

Owns: where each benchmark comes from (hub id/config/split by default; the
folder named by ``INFTYTHINK_DATA_DIR``, laid out like ``../shared/data``,
when set), turning its rows into the family schema the task hooks read,
the expected row counts (500/30/30/40/198/164/500), GPQA's in-memory
extraction from the password-protected zip and its deterministic
per-question choice shuffle, and one clear error for missing or corrupt
data that names the file, the line and both fixes.

Family schemas (every value a string unless noted):
  math   {id, problem, answer}
  choice {id, question, choices: [4], answer: letter, gold_text}
  code   {id, prompt, entry_point, setup, tests, reference, first_test}

Does not know: prompts, scoring, lm-eval (``scoring.hooks`` adapts this to tasks).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

DATA_DIR_ENV = "INFTYTHINK_DATA_DIR"
GPQA_ZIP_PASSWORD = b"deserted-untie-orchid"  # published in the idavidrein/gpqa README
GPQA_SHUFFLE_SEED = "inftythink-gpqa-v1"       # changing it changes every GPQA prompt: bump the task version
LETTERS = "ABCD"


class BenchmarkDataError(RuntimeError):
    """Missing or corrupt benchmark data, with the file, the line and how to fix it."""


@dataclass(frozen=True)
class Benchmark:
    """Where one benchmark lives and how big it is."""

    name: str
    family: str                 # math | choice | code
    hub_path: str
    hub_name: Optional[str]
    hub_split: str
    local_file: str             # relative to INFTYTHINK_DATA_DIR
    rows: int


BENCHMARKS = {b.name: b for b in [
    Benchmark("math500", "math", "HuggingFaceH4/MATH-500", None, "test", "math500/test.jsonl", 500),
    Benchmark("aime24", "math", "Maxwell-Jia/AIME_2024", None, "train", "aime24/test.jsonl", 30),
    Benchmark("aime25", "math", "math-ai/aime25", None, "test", "aime25/test.jsonl", 30),
    Benchmark("amc23", "math", "math-ai/amc23", None, "test", "amc23/test.jsonl", 40),
    Benchmark("gpqa_diamond", "choice", "Idavidrein/gpqa", "gpqa_diamond", "train", "gpqa/dataset.zip", 198),
    Benchmark("humaneval", "code", "openai/openai_humaneval", None, "test", "humaneval/HumanEval.jsonl.gz", 164),
    Benchmark("mbpp", "code", "google-research-datasets/mbpp", "full", "test", "mbpp/mbpp.jsonl", 500),
]}


def _fixes(bench: Benchmark, path: Optional[Path]) -> str:
    where = f"restore {path} from the public source listed in the data folder's README" if path else \
        f"set {DATA_DIR_ENV} to a folder laid out like ../shared/data (with {bench.local_file})"
    return (f"Fix it either way: (1) {where}; or (2) unset {DATA_DIR_ENV} and make the hub reachable "
            f"so {bench.hub_path}{'/' + bench.hub_name if bench.hub_name else ''} loads "
            f"({'gated: accept its terms and set HF_TOKEN' if bench.name == 'gpqa_diamond' else 'public'}).")


def _error(bench: Benchmark, path: Optional[Path], what: str) -> BenchmarkDataError:
    return BenchmarkDataError(f"{bench.name}: {what}. {_fixes(bench, path)}")


# --- reading raw rows -------------------------------------------------------------
def _read_jsonl(bench: Benchmark, path: Path, text: str) -> list[dict]:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _error(bench, path, f"{path} line {number} is not valid JSON ({exc.msg} at column {exc.colno})") from exc
        if not isinstance(row, dict):
            raise _error(bench, path, f"{path} line {number} is not a JSON object")
        rows.append(row)
    return rows


def _read_gpqa_zip(bench: Benchmark, path: Path) -> list[dict]:
    """The diamond CSV, decrypted in memory (never written anywhere)."""
    try:
        with zipfile.ZipFile(path) as archive:
            data = archive.read("dataset/gpqa_diamond.csv", pwd=GPQA_ZIP_PASSWORD)
    except (zipfile.BadZipFile, KeyError, RuntimeError, zipfile.LargeZipFile) as exc:
        raise _error(bench, path, f"{path} is not the GPQA zip with dataset/gpqa_diamond.csv ({exc})") from exc
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


def read_local(bench: Benchmark, root: Path) -> list[dict]:
    path = root / bench.local_file
    if not path.is_file():
        raise _error(bench, path, f"{path} does not exist ({DATA_DIR_ENV}={root})")
    if path.suffix == ".zip":
        return _read_gpqa_zip(bench, path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        text = raw.decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise _error(bench, path, f"{path} cannot be read as {'gzip ' if path.suffix == '.gz' else ''}UTF-8 text ({exc})") from exc
    rows = _read_jsonl(bench, path, text)
    if bench.name == "mbpp":  # the file holds all 974 problems; the test split is task ids 11-510
        rows = [r for r in rows if 11 <= int(r.get("task_id", 0)) <= 510]
    return rows


def read_hub(bench: Benchmark) -> list[dict]:
    import datasets

    try:
        data = datasets.load_dataset(bench.hub_path, bench.hub_name, split=bench.hub_split)
    except Exception as exc:  # network, auth or hub errors all get the same advice
        raise _error(bench, None, f"loading {bench.hub_path} from the hub failed ({type(exc).__name__}: {exc})") from exc
    return [dict(row) for row in data]


# --- one schema per family ------------------------------------------------------
def _field(row: dict, *names: str):
    lowered = {k.lower(): v for k, v in row.items()}
    for name in names:
        if name.lower() in lowered and lowered[name.lower()] is not None:
            return lowered[name.lower()]
    raise KeyError(f"none of the fields {names} (it has {sorted(row)})")


def _math_row(row: dict, index: int) -> dict:
    problem = _field(row, "problem", "question")
    ident = row.get("unique_id") or _field_or(row, ("id",), index)
    return {"id": str(ident), "problem": str(problem), "answer": str(_field(row, "answer"))}


def _field_or(row: dict, names: tuple, default):
    try:
        return _field(row, *names)
    except KeyError:
        return default


def gpqa_order(record_id: str) -> list[int]:
    """Deterministic shuffle of [correct, wrong1, wrong2, wrong3] for one question (documented in docs/tasks.md).

    Positions are sorted by sha256("{GPQA_SHUFFLE_SEED}/{record_id}/{i}"), so the order depends only on
    the seed and the question's Record ID, never on Python's hash seed or row order.
    """
    digest = lambda i: hashlib.sha256(f"{GPQA_SHUFFLE_SEED}/{record_id}/{i}".encode()).hexdigest()
    return sorted(range(4), key=digest)


def _choice_row(row: dict, index: int) -> dict:
    options = [_field(row, "Correct Answer")] + [_field(row, f"Incorrect Answer {i}") for i in (1, 2, 3)]
    options = [str(o).strip() for o in options]
    record_id = str(_field_or(row, ("Record ID",), index))
    order = gpqa_order(record_id)
    return {"id": record_id, "question": str(_field(row, "Question")).strip(), "choices": [options[i] for i in order],
            "answer": LETTERS[order.index(0)], "gold_text": options[0]}


def _code_row(row: dict, index: int) -> dict:
    if "entry_point" in row:  # HumanEval
        entry = str(row["entry_point"])
        return {"id": str(row["task_id"]), "prompt": row["prompt"], "entry_point": entry, "setup": row["prompt"],
                "tests": f"{row['test']}\n\ncheck({entry})\n", "reference": row["prompt"] + row["canonical_solution"],
                "first_test": ""}
    tests = list(row["test_list"])  # MBPP
    setup = str(row.get("test_setup_code") or "")  # after the sample: it may use the sample's classes (task 367)
    return {"id": str(row["task_id"]), "prompt": str(row["text"]), "entry_point": "", "setup": "",
            "tests": f"{setup}\n" + "\n".join(tests) + "\n", "reference": str(row["code"]), "first_test": tests[0]}


_NORMALIZERS: dict[str, Callable[[dict, int], dict]] = {"math": _math_row, "choice": _choice_row, "code": _code_row}


def load_rows(name: str, data_dir: Optional[str] = None) -> list[dict]:
    """Rows of benchmark ``name`` in its family schema; offline when ``data_dir`` or ``INFTYTHINK_DATA_DIR`` is set."""
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; expected one of {', '.join(BENCHMARKS)}")
    bench = BENCHMARKS[name]
    root = data_dir or os.environ.get(DATA_DIR_ENV)
    path = Path(root) / bench.local_file if root else None
    raw = read_local(bench, Path(root)) if root else read_hub(bench)
    rows = []
    for index, row in enumerate(raw):
        try:
            rows.append(_NORMALIZERS[bench.family](row, index))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise _error(bench, path, f"row {index + 1} of {path or bench.hub_path} lacks a field: {exc}") from exc
    if len(rows) != bench.rows:
        raise _error(bench, path, f"{path or bench.hub_path} has {len(rows)} rows, expected {bench.rows}")
    return rows


def load_dataset_dict(name: str, data_dir: Optional[str] = None):
    """``datasets.DatasetDict`` with one ``test`` split: what lm-eval's ``custom_dataset`` hook returns."""
    import datasets

    return datasets.DatasetDict({"test": datasets.Dataset.from_list(load_rows(name, data_dir))})
