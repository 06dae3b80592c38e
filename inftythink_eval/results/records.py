"""The normalised leaderboard record: one (model, mode, task) run.

Owns: ``Record`` (frozen; every field documented), its JSON form
(``to_dict`` / ``from_dict``), validation (provenance is required), the
record's identity (``key``, ``record_id``), the mode parameters that tell its run apart
(``shown_params``) and the benchmark and leaderboard group a task
belongs to (read from the task-family registry, ``scoring.families``).

Does not know: where records come from (``ingest``), where they are kept
(``store``), or how they are shown (``render``).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Optional

from inftythink_eval.scoring.families import BENCHMARKS, OTHER

SCHEMA_VERSION = 1


def natural(text: str) -> tuple:
    """A sort key that orders the numbers in a name by value (``..._d4`` < ``..._d24`` < ``..._d170``)."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text) if part)


class RecordError(ValueError):
    """A record (or the run it came from) is missing something the leaderboard needs."""


def benchmark_of(task: str) -> str:
    """The registered benchmark a task measures: ``inftythink_math500_paper`` -> ``math500``; unknown names stay."""
    name = task.lower()
    for bench in sorted(BENCHMARKS, key=len, reverse=True):
        if re.search(rf"(^|_){bench}(_|$)", name):
            return bench
    return task


def group_of(task: str) -> str:
    """The leaderboard group of a task: its benchmark's (the task-family registry), else ``other``."""
    bench = BENCHMARKS.get(benchmark_of(task))
    return bench.group if bench is not None else OTHER


@dataclass(frozen=True)
class Record:
    """One measured run of one model, in one mode, on one task."""

    # --- model -----------------------------------------------------------
    model: str                 # display name (zoo name or the last part of the path / hub id)
    model_args: str            # model_args as given to lm-eval (mode keys included)
    model_source: str          # lm-eval model type: "inftythink", "hf", ...
    revision: str              # hub commit, or "sha256:<hex>" over the weight files
    # --- mode ------------------------------------------------------------
    mode: str                  # vanilla, inftythink, summarize, delethink
    mode_params: dict          # e.g. {"eta": 64, "max_rounds": 3}
    # --- task ------------------------------------------------------------
    task: str                  # lm-eval task name
    task_version: str          # the task's metadata version
    task_hash: str             # lm-eval's task hash (prompts + docs)
    n_questions: int           # questions scored
    samples_per_question: int  # lm-eval repeats
    limit: Optional[float]     # --limit, None for the full set
    seeds: dict                # random/numpy/torch/fewshot seeds lm-eval used
    # --- metrics ---------------------------------------------------------
    acc: float                 # mean pass@1 over samples, then questions (0..1)
    acc_metric: str            # the lm-eval metric that gave ACC ("acc", "exact_match", ...)
    acc_ci: tuple              # 95% interval of ACC (see stats.accuracy_interval)
    pass_at_k: dict            # {"pass@4": 0.5, ...}
    maj_at_k: dict             # {"maj@4": 0.25, ...}
    tok: Optional[float]       # mean generated tokens per sample, all rounds (None: not measured)
    lat: Optional[float]       # mean seconds per sample (engine's LAT definition)
    rounds: Optional[float]    # mean reasoning rounds per sample
    peak_ctx: Optional[float]  # mean of each sample's largest prompt+output
    truncated: Optional[float]    # share of samples cut at a token limit
    format_fail: Optional[float]  # mean format failures per sample
    throughput: Optional[float]   # generated tokens per wall second over the run
    # --- where TOK and LAT were measured --------------------------------
    engine: str                # backend / engine, e.g. "hf (transformers 5.24.0)"
    batch_size: str            # batch size as configured
    concurrency: Optional[int] # requests in flight (API backends)
    hardware: str              # CPU or GPU name
    # --- provenance -----------------------------------------------------
    harness_version: str       # lm-eval version
    inftythink_version: str    # this package's version ("" for non-inftythink models)
    git_commit: str            # commit of the code that ran
    date: str                  # ISO-8601 UTC time of the results file
    source: dict               # {"results_file": name, "sha256": hex} of the imported file
    lm_eval_args: dict         # what reruns it: model, model_args, tasks, limit, gen_kwargs, ...
    # --- detail for plots, compare and regress --------------------------
    samples: list = field(default_factory=list)      # per question: doc_id, acc, tok, lat, rounds, peak_ctx
    rounds_hist: list = field(default_factory=list)  # per rounds used: {"rounds", "n", "correct"}
    sawtooth: dict = field(default_factory=dict)     # one sample: {"doc_id", "calls": [[role, prompt_tokens, output_tokens]]}
    schema_version: int = SCHEMA_VERSION

    # --- identity ----------------------------------------------------------
    @property
    def key(self) -> tuple[str, str, str]:
        return (self.model, self.mode, self.task)

    @property
    def record_id(self) -> str:
        """Stable id: the key plus the imported file's hash (same run -> same id)."""
        text = json.dumps([*self.key, self.source.get("sha256", "")])
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def group(self) -> str:
        return group_of(self.task)

    @property
    def benchmark(self) -> str:
        return benchmark_of(self.task)

    def file_name(self) -> str:
        parts = [_slug(self.model), _slug(self.mode), _slug(self.task), self.date[:10], self.record_id]
        return "__".join(parts) + ".json"

    # --- JSON ----------------------------------------------------------------
    def to_dict(self) -> dict:
        data = asdict(self)
        data["acc_ci"] = list(self.acc_ci)
        return _json_safe(data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict, where: str = "record") -> "Record":
        if not isinstance(data, dict):
            raise RecordError(f"{where}: expected a JSON object, got {type(data).__name__}")
        names = {f.name for f in fields(cls)}
        missing = sorted(n for n in names if n not in data and n not in _DEFAULTED)
        if missing:
            raise RecordError(f"{where}: missing field(s) {', '.join(missing)}; "
                              "re-import the lm-eval output folder with `inftythink leaderboard import`")
        unknown = sorted(set(data) - names)
        if unknown:
            raise RecordError(f"{where}: unknown field(s) {', '.join(unknown)} (schema {SCHEMA_VERSION})")
        record = cls(**{**data, "acc_ci": tuple(data["acc_ci"])})
        validate(record, where)
        return record


_DEFAULTED = {"samples", "rounds_hist", "sawtooth", "schema_version"}
PROVENANCE = ("revision", "git_commit", "harness_version", "date", "task_version", "engine", "hardware")


def shown_params(record: Record) -> dict:
    """The run's mode parameters that tell it apart, as its sidecar recorded them: a registered mode's key
    parameters (``Param(key=True)``) and any other of its own that differs from the declared default; every
    parameter of a mode not registered here (sorted by name)."""
    from inftythink_eval.modes import MODES, mode_param_specs

    if record.mode not in MODES:
        return dict(sorted(record.mode_params.items()))
    declared = {name: param for name, (param, _modes) in mode_param_specs(record.mode).items()}
    return {k: record.mode_params[k] for k, p in declared.items()
            if k in record.mode_params and (p.key or record.mode_params[k] != p.default)}


def validate(record: Record, where: str = "record") -> Record:
    """Raise ``RecordError`` naming every missing provenance field or impossible value."""
    problems = [f"{name} is empty" for name in PROVENANCE if not str(getattr(record, name) or "").strip()]
    if not record.source.get("sha256"):
        problems.append("source.sha256 is empty")
    if not (isinstance(record.acc, (int, float)) and 0.0 <= record.acc <= 1.0):
        problems.append(f"acc={record.acc!r} is not a proportion in [0, 1]")
    elif not (record.acc_ci[0] <= record.acc + 1e-9 and record.acc - 1e-9 <= record.acc_ci[1]):
        problems.append(f"acc_ci={record.acc_ci} does not contain acc={record.acc}")
    if record.n_questions < 1 or record.samples_per_question < 1:
        problems.append(f"n_questions={record.n_questions}, samples_per_question={record.samples_per_question} must be >= 1")
    for name in ("tok", "lat", "rounds", "peak_ctx"):
        value = getattr(record, name)
        if value is not None and (not isinstance(value, (int, float)) or value < 0 or math.isnan(value)):
            problems.append(f"{name}={value!r} must be a non-negative number or null")
    if problems:
        raise RecordError(f"{where} ({record.model} / {record.mode} / {record.task}): " + "; ".join(problems)
                          + ". Provenance comes from lm-eval's results JSON and the inftythink run sidecar; "
                          "run lm-eval from a git checkout with --log_samples so both are complete.")
    return record


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-")[:60] or "x"


def _json_safe(value: Any) -> Any:
    """NaN/inf become null, tuples become lists, keys become strings (strict JSON)."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value
