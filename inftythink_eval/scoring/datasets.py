"""Load a registered benchmark as rows of its family's schema, from the hub or an offline folder.

Owns: reading a benchmark's rows from where its data entry says (hub
id/config/split by default; the folder named by ``INFTYTHINK_DATA_DIR``,
laid out like ``../shared/data``, when set): JSON lines, gzipped JSON lines,
or a CSV/JSON-lines member of a (password-protected) zip read in memory and
never written out; handing each raw row to its family's conversion; checking
the expected row count; and one clear error for missing or corrupt data that
names the file, the line and both fixes.

Does not know: which benchmarks exist, their schemas or row conversions (the
registry, ``scoring.families``), prompts, scoring, lm-eval (``scoring.hooks``
adapts this to tasks).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Optional

from inftythink_eval.scoring.families import BENCHMARKS, FAMILIES, Benchmark

DATA_DIR_ENV = "INFTYTHINK_DATA_DIR"


class BenchmarkDataError(RuntimeError):
    """Missing or corrupt benchmark data, with the file, the line and how to fix it."""


def _fixes(bench: Benchmark, path: Optional[Path]) -> str:
    where = f"restore {path} from the public source listed in the data folder's README" if path else \
        f"set {DATA_DIR_ENV} to a folder laid out like ../shared/data (with {bench.local_file})"
    return (f"Fix it either way: (1) {where}; or (2) unset {DATA_DIR_ENV} and make the hub reachable "
            f"so {bench.hub_path}{'/' + bench.hub_name if bench.hub_name else ''} loads "
            f"({'gated: accept its terms and set HF_TOKEN' if bench.gated else 'public'}).")


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


def _read_zip_member(bench: Benchmark, path: Path) -> str:
    """The entry's member of the archive, decrypted in memory (never written anywhere)."""
    if not bench.member:
        raise _error(bench, path, f"{path} is a zip, but the benchmark's data entry names no member to read "
                                  "(expected Benchmark(member=...))")
    try:
        with zipfile.ZipFile(path) as archive:
            data = archive.read(bench.member, pwd=bench.password)
        return data.decode("utf-8")
    except (zipfile.BadZipFile, KeyError, RuntimeError, zipfile.LargeZipFile, UnicodeDecodeError) as exc:
        raise _error(bench, path, f"{path} is not the {bench.title} zip with {bench.member} ({exc})") from exc


def _read_text(bench: Benchmark, path: Path) -> str:
    gz = path.suffix == ".gz"
    try:
        raw = gzip.decompress(path.read_bytes()) if gz else path.read_bytes()
        return raw.decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise _error(bench, path, f"{path} cannot be read as {'gzip ' if gz else ''}UTF-8 text ({exc})") from exc


def read_local(bench: Benchmark, root: Path) -> list[dict]:
    """The raw rows of the entry's offline file (JSON lines, gzipped or not, or a zip member: CSV or JSON lines)."""
    path = root / bench.local_file
    if not path.is_file():
        raise _error(bench, path, f"{path} does not exist ({DATA_DIR_ENV}={root})")
    if path.suffix == ".zip":
        text = _read_zip_member(bench, path)
        rows = list(csv.DictReader(io.StringIO(text))) if bench.member.endswith(".csv") else _read_jsonl(bench, path, text)
    else:
        rows = _read_jsonl(bench, path, _read_text(bench, path))
    return [r for r in rows if bench.keep(r)] if bench.keep else rows


def read_hub(bench: Benchmark) -> list[dict]:
    import datasets

    try:
        data = datasets.load_dataset(bench.hub_path, bench.hub_name, split=bench.hub_split)
    except Exception as exc:  # network, auth or hub errors all get the same advice
        raise _error(bench, None, f"loading {bench.hub_path} from the hub failed ({type(exc).__name__}: {exc})") from exc
    return [dict(row) for row in data]


# --- rows in the family schema -----------------------------------------------------
def load_rows(name: str, data_dir: Optional[str] = None) -> list[dict]:
    """Rows of benchmark ``name`` in its family schema; offline when ``data_dir`` or ``INFTYTHINK_DATA_DIR`` is set."""
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; expected one of {', '.join(BENCHMARKS)}")
    bench = BENCHMARKS[name]
    root = data_dir or os.environ.get(DATA_DIR_ENV)
    path = Path(root) / bench.local_file if root else None
    raw = read_local(bench, Path(root)) if root else read_hub(bench)
    to_row = FAMILIES[bench.family].to_row
    rows = []
    for index, row in enumerate(raw):
        try:
            rows.append(to_row(row, index))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise _error(bench, path, f"row {index + 1} of {path or bench.hub_path} lacks a field: {exc}") from exc
    if len(rows) != bench.rows:
        raise _error(bench, path, f"{path or bench.hub_path} has {len(rows)} rows, expected {bench.rows}")
    return rows


def load_dataset_dict(name: str, data_dir: Optional[str] = None):
    """``datasets.DatasetDict`` with one ``test`` split: what lm-eval's ``custom_dataset`` hook returns."""
    import datasets

    return datasets.DatasetDict({"test": datasets.Dataset.from_list(load_rows(name, data_dir))})
