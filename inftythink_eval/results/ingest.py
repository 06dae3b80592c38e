"""lm-eval output folders -> leaderboard records.

Owns: turning one ``results_<date>.json`` (with its ``samples_<task>_<date>.jsonl``
and, for the ``inftythink`` model, its run and traces sidecars) into one
validated ``Record`` per task: which metric is ACC, where the revision,
mode, engine and hardware come from, and the per-question detail.

Does not know: the store layout, rendering, how lm-eval was launched, or how
``key=value`` text is split (``keyvalue``).
"""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path
from typing import Iterable, Optional

from inftythink_eval.keyvalue import format_pairs, parse_pairs
from inftythink_eval.results import sidecars, stats
from inftythink_eval.results.records import Record, RecordError, validate
from inftythink_eval.results.sidecars import IngestError

ACC_METRICS = ("acc", "pass@1", "exact_match", "math_verify", "acc_norm")
STAT_METRICS = ("tok", "lat", "rounds", "peak_ctx", "truncated", "format_fail")
SAMPLE_EXTRAS = ("kv_tokens",)  # per-question numbers kept when a task logs them (the frontiers read them)


def results_files(path: Path) -> list[Path]:
    """Every ``results_*.json`` under ``path`` (a results file, a model folder or an ``--output_path``)."""
    path = Path(path)
    if path.is_file():
        return [path]
    found = sorted(path.rglob("results_*.json")) if path.is_dir() else []
    if not found:
        raise IngestError(f"{path}: no lm-eval results_*.json found; pass the --output_path of an "
                          "`lm_eval ... --log_samples` run, one of its model folders, or a results file")
    return found


def import_path(path: Path) -> list[Record]:
    """All records in ``path``; raises on the first bad file (nothing is half-imported)."""
    return [record for results in results_files(path) for record in records_from_results(results)]


def records_from_results(results: Path) -> list[Record]:
    data = sidecars.read_json(results)
    for key in ("results", "config", "configs", "n-samples"):
        if not isinstance(data.get(key), dict):
            raise IngestError(f"{results}: the '{key}' section is missing; this is not a complete lm-eval "
                              "results file (partial write?): rerun lm-eval for this task")
    run_path, run = sidecars.run_sidecar(results)
    traces_path = sidecars.traces_sidecar(results, run_path)
    traces = sidecars.read_jsonl(traces_path) if traces_path else []
    digest = hashlib.sha256(results.read_bytes()).hexdigest()
    subtasks = {t for subs in (data.get("group_subtasks") or {}).values() for t in subs}
    groups = {g for g, subs in (data.get("group_subtasks") or {}).items() if subs}
    tasks = [t for t in data["results"] if t not in groups] or sorted(subtasks)
    out = []
    for task in tasks:
        try:
            record = _record(results, data, task, run, traces, digest)
        except RecordError as exc:
            raise IngestError(f"{results}: {exc}") from exc
        out.append(validate(record, str(results)))
    return out


def _metric_table(metrics: dict) -> tuple[str, dict]:
    """Pick a filter ("none" when present) and return {metric: value} for it."""
    by_filter: dict[str, dict] = {}
    for key, value in metrics.items():
        name, sep, flt = key.partition(",")
        if sep and "_stderr" not in name and isinstance(value, (int, float)):
            by_filter.setdefault(flt, {})[name] = float(value)
    if not by_filter:
        return "none", {}
    flt = "none" if "none" in by_filter else sorted(by_filter)[0]
    return flt, by_filter[flt]


def _acc_metric(table: dict, where: str) -> str:
    for name in ACC_METRICS:
        if name in table:
            return name
    raise IngestError(f"{where}: no accuracy metric among {', '.join(sorted(table)) or 'none'}; "
                      f"expected one of {', '.join(ACC_METRICS)}")


def _per_question(rows: list[dict], flt: str, metric: str) -> list[dict]:
    keep = [r for r in rows if r.get("filter", flt) == flt] or rows
    out = []
    for row in sorted(keep, key=lambda r: r.get("doc_id", 0)):
        if metric not in row:
            raise IngestError(f"samples line doc_id={row.get('doc_id')}: no '{metric}' value; "
                              "the samples file does not match its results file")
        item = {"doc_id": row.get("doc_id"), "acc": _num(row.get(metric))}
        item.update({k: _num(row.get(k)) for k in STAT_METRICS + SAMPLE_EXTRAS if k in row})
        out.append(item)
    return out


def _num(value) -> Optional[float]:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (list, tuple)):  # some metrics log [value, ...]
        value = value[0] if value else None
    if isinstance(value, (int, float)) and not math.isnan(float(value)):
        return float(value)
    return None


def _model_args(value) -> dict:
    """A results file's model_args, read as lm-eval read them when it ran (``keyvalue.parse_pairs``).

    lm-eval also accepted, and older results files may hold, an item without ``=`` (no value: left out)
    and a key given twice (the last one counts); both are read as then instead of refusing the file.
    """
    if isinstance(value, dict):
        return dict(value)
    last = {item.partition("=")[0].strip(): item for item in str(value or "").split(",") if "=" in item}
    return parse_pairs([item for key, item in last.items() if key], "model_args of the results file")


def _args_text(args: dict) -> str:
    return format_pairs(args)


def _display_name(pretrained: str) -> str:
    text = str(pretrained).rstrip("/")
    return text.split(":", 1)[1] if text.startswith("zoo:") else text.rsplit("/", 1)[-1]


def _revision(run: dict, config: dict, pretrained: str) -> str:
    weights = run.get("weights") if isinstance(run.get("weights"), dict) else {}
    for value in (run.get("revision"), weights.get("sha256"), config.get("model_sha")):
        if value:
            return f"sha256:{value}" if re.fullmatch(r"[0-9a-f]{64}", str(value)) else str(value)
    folder = Path(str(pretrained)).expanduser()
    if folder.is_dir():
        return sidecars.weights_sha256(folder) or ""
    return ""


def _hardware(run: dict, data: dict) -> str:
    hw = run.get("hardware")
    if isinstance(hw, str) and hw:
        return hw
    if isinstance(hw, dict) and (hw.get("gpu") or hw.get("cpu")):
        gpu = hw.get("gpu")
        if gpu:
            return ", ".join(gpu) if isinstance(gpu, list) else str(gpu)
        return f"{hw['cpu']} ({hw['cpu_count']} cores)" if hw.get("cpu_count") else str(hw["cpu"])
    env = str(data.get("pretty_env_info") or "")
    gpu = re.search(r"GPU models and configuration: (.+)", env)
    cpu = re.search(r"Model name:\s+(.+)", env)
    cores = re.search(r"^CPU\(s\):\s+(\d+)", env, re.M)
    if gpu and "Could not collect" not in gpu.group(1):
        return gpu.group(1).strip()
    if cpu:
        return cpu.group(1).strip() + (f" ({cores.group(1)} cores)" if cores else "")
    return ""


def _mode(run: dict, args: dict, source: str) -> tuple[str, dict]:
    params = run.get("mode_params") or run.get("mode_config")
    mode = run.get("mode") or args.get("mode")
    if isinstance(mode, dict):  # sidecar may hold {"name": ..., params...}
        params, mode = {k: v for k, v in mode.items() if k != "name"}, mode.get("name")
    if params is None:  # no sidecar (another lm-eval model): the keys the registered modes declare
        from inftythink_eval.modes import mode_param_specs

        params = {k: v for k, v in args.items() if k in mode_param_specs(str(mode) if mode else None)}
    if not isinstance(params, dict):
        params = {"params": str(params)}
    if not mode:
        if source == "inftythink":
            raise RecordError("the inftythink run does not say its mode (no sidecar and no mode= in model_args)")
        mode = "vanilla"  # any other lm-eval model generates in one pass
    return str(mode), dict(params)


def _date(results: Path, data: dict) -> str:
    when = sidecars.stamp_of(results) or sidecars.parse_time(data.get("date"))
    return when.isoformat(timespec="seconds").replace("+00:00", "Z") if when else ""


def _record(results: Path, data: dict, task: str, run: dict, traces: list, digest: str) -> Record:
    config, task_cfg = data["config"], (data["configs"].get(task) or {})
    where = f"{results.name} task {task}"
    flt, table = _metric_table(data["results"].get(task) or {})
    acc_metric = _acc_metric(table, where)
    rows = _per_question(sidecars.read_jsonl(sidecars.samples_file(results, task)), flt, acc_metric)
    if not rows:
        raise IngestError(f"{where}: the samples file is empty; rerun lm-eval for this task")
    args = _model_args(config.get("model_args"))
    source = str(config.get("model") or "")
    if source == "inftythink" and not run:
        raise IngestError(f"{where}: no inftythink_run_*.json sidecar started before this results file in "
                          f"{results.parent}; the run's provenance (engine, revision, mode parameters) is missing. "
                          "Rerun with --output_path and pass pretrained= so lm-eval and the model write to one folder")
    mode, params = _mode(run, args, source)
    pretrained = run.get("model_path") or run.get("pretrained") or args.get("pretrained") or data.get("model_name", "")
    doc_acc = {r["doc_id"]: r["acc"] for r in rows}
    condensed = sidecars.condense_traces(traces, task, doc_acc) if traces else {}
    acc_values = [r["acc"] for r in rows if r["acc"] is not None]
    return Record(
        model=_display_name(args.get("pretrained") or pretrained), model_args=_args_text(args), model_source=source,
        revision=_revision(run, config, pretrained), mode=mode, mode_params=params,
        task=task, task_version=str((data.get("versions") or {}).get(task, (task_cfg.get("metadata") or {}).get("version", ""))),
        task_hash=str((data.get("task_hashes") or {}).get(task, "")),
        n_questions=int((data["n-samples"].get(task) or {}).get("effective", len(rows))),
        samples_per_question=int(task_cfg.get("repeats") or 1), limit=config.get("limit"),
        seeds={k: config.get(k) for k in ("random_seed", "numpy_seed", "torch_seed", "fewshot_seed") if k in config},
        acc=table[acc_metric], acc_metric=acc_metric, acc_ci=stats.accuracy_interval(acc_values),
        pass_at_k={k: v for k, v in table.items() if re.fullmatch(r"pass@\d+", k)},
        maj_at_k={k: v for k, v in table.items() if re.fullmatch(r"maj@\d+", k)},
        **{k: _stat(table, rows, k) for k in STAT_METRICS},
        throughput=condensed.get("throughput"),
        engine=_engine(run, source, data), batch_size=str(run.get("batch_size", config.get("batch_size", ""))),
        concurrency=run.get("concurrency"), hardware=_hardware(run, data),
        harness_version=str(data.get("lm_eval_version") or ""), inftythink_version=str(run.get("inftythink_eval_version") or run.get("version") or ""),
        git_commit=str(run.get("git_commit") or data.get("git_hash") or ""), date=_date(results, data),
        source={"results_file": results.name, "sha256": digest},
        lm_eval_args=_rerun_args(config, args, task, task_cfg, data),
        samples=rows, rounds_hist=condensed.get("rounds_hist", []), sawtooth=condensed.get("sawtooth", {}),
    )


def _stat(table: dict, rows: list[dict], name: str) -> Optional[float]:
    if name in table and not math.isnan(table[name]):
        return table[name]
    return stats.mean([r.get(name) for r in rows])


def _engine(run: dict, source: str, data: dict) -> str:
    transformers = f"transformers {data.get('transformers_version', '?')}"
    if run.get("engine") or run.get("backend"):
        backend, engine = str(run.get("backend") or ""), str(run.get("engine") or "")
        if not engine and _runs_on_transformers(backend):  # older sidecars: the engine was transformers itself
            engine = transformers
        schedule = f"schedule={run['schedule']}" if run.get("schedule") else ""
        return " / ".join(p for p in (backend, engine, schedule) if p)
    return f"{source} (lm-eval; {transformers})" if source else ""


def _runs_on_transformers(backend: str) -> bool:
    from inftythink_eval.backends.base import backend_names, backend_spec

    return backend in backend_names() and "transformers" in backend_spec(backend).requires


def _rerun_args(config: dict, args: dict, task: str, task_cfg: dict, data: dict) -> dict:
    """What ``regress`` needs to rerun the same measurement."""
    return {"model": config.get("model"), "model_args": _args_text(args), "tasks": task,
            "limit": config.get("limit"), "gen_kwargs": config.get("gen_kwargs") or {},
            "num_fewshot": (data.get("n-shot") or {}).get(task), "repeats": task_cfg.get("repeats"),
            "apply_chat_template": data.get("chat_template") is not None,  # "" when applied, null when not
            "system_instruction": data.get("system_instruction"),
            "seed": [config.get(k) for k in ("random_seed", "numpy_seed", "torch_seed", "fewshot_seed")]}


def iter_records(paths: Iterable[Path]) -> list[Record]:
    return [record for path in paths for record in import_path(Path(path))]
