"""``inftythink sweep``: one model, a grid of (mode, parameters) points, each a real lm-eval run; resumable.

Owns: the sweep's plan (``Plan``: the lm-eval settings every point shares, and the points) and its state file
``sweep.json`` in the output folder (plan, store, each point's status and records; written atomically after
every step), each point's folders (``points/<point>/run-<k>``: lm-eval's outputs, one per attempt;
``points/<point>/cache``: the model's call cache, ``cache_dir=``; vanilla points share ``vanilla-cache`` and run
largest budget first, so each smaller budget is derived from that generation, ``derive_budgets=true``, unless
``--no-reuse``), deciding which points are done (every
task has a stored record of the same run: model, task, mode, model_args but ``cache_dir``, limit,
gen_kwargs, chat template, system instruction), running the others one at a time with a progress line
each, storing their records, and printing the frontiers at the end (``--show DIR`` prints them again).
A point killed mid-run resumes through its call cache: a finished call is not computed again.

Does not know: the grid syntax (``grid``), lm-eval's formats (``ingest``), the frontier maths and text
(``frontier``), the store layout (``store``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Optional

from inftythink_eval.keyvalue import format_pairs, literal, parse_pairs
from inftythink_eval.results import frontier, grid, lmeval_run
from inftythink_eval.results.ingest import import_path
from inftythink_eval.results.records import Record, RecordError
from inftythink_eval.results.sidecars import IngestError
from inftythink_eval.results.store import Store, StoreError, default_root, write_text_atomic

STATE = "sweep.json"
STATE_VERSION = 1
PER_RUN_KEYS = ("cache_dir", "trace_dir", "derive_budgets")  # how a run keeps or finds its calls: not what it measures


class SweepError(RuntimeError):
    """The sweep cannot go on as asked (another sweep in the folder, no state to resume, ...)."""


@dataclass(frozen=True)
class Plan:
    """What an ``inftythink sweep`` runs: the settings every point shares, and the points."""

    model_args: str               # model_args of --model inftythink, without mode=
    tasks: str                    # lm-eval --tasks, comma-separated
    points: tuple                 # the grid's points (grid.GridPoint), in order
    limit: Optional[float] = None          # --limit
    gen_kwargs: dict = field(default_factory=dict)  # --gen_kwargs of every point; a point's max_gen_toks wins
    include_path: Optional[str] = None     # --include_path
    apply_chat_template: bool = False      # --apply_chat_template
    system_instruction: Optional[str] = None  # --system_instruction
    reuse: bool = True            # vanilla budgets derived from the largest one's generation (``derive_budgets``)

    def to_dict(self) -> dict:
        return {"model_args": self.model_args, "tasks": self.tasks, "limit": self.limit, "reuse": self.reuse,
                "gen_kwargs": dict(self.gen_kwargs), "include_path": self.include_path,
                "apply_chat_template": self.apply_chat_template, "system_instruction": self.system_instruction,
                "points": [p.to_dict() for p in self.points]}

    @classmethod
    def from_dict(cls, data: dict) -> "Plan":
        return cls(**{**data, "points": tuple(grid.GridPoint.from_dict(p) for p in data["points"])})

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True, default=str).encode()).hexdigest()[:10]

    def task_names(self) -> list[str]:
        return [t.strip() for t in self.tasks.split(",") if t.strip()]

    def derives(self, point: grid.GridPoint) -> bool:
        """Does ``point`` take its calls from the largest vanilla budget's generation?  Vanilla points, with reuse
        on: their calls differ only in ``max_tokens``, so they share one call cache (``budget_cache``)."""
        return self.reuse and point.mode == "vanilla"

    def order(self) -> list[int]:
        """The points' indices in running order: with reuse, vanilla points first, largest budget first (a point
        without ``max_gen_toks`` counts as largest), so every smaller budget finds its calls; else the grid's order."""
        def budget(i: int) -> float:
            return -float(self.points[i].gen_kwargs().get(grid.BUDGET_KEY, self.gen_kwargs.get(grid.BUDGET_KEY, 1e18)))

        return sorted(range(len(self.points)), key=lambda i: (0, budget(i)) if self.derives(self.points[i]) else (1, 0))

    def cache_for(self, point: grid.GridPoint, folder: Path) -> Path:
        """The call cache of ``point``: its own, or the vanilla budgets' shared one."""
        return (Path(folder) / ("vanilla-cache" if self.derives(point) else f"points/{point.slug}/cache")).resolve()

    def spec(self, point: grid.GridPoint, output: Path, cache: Path) -> lmeval_run.LmEvalRun:
        """The lm-eval run of ``point``: its mode and parameters over the shared model_args, its call cache."""
        pairs = parse_pairs(self.model_args, "--model_args", lmeval_run.MODEL_ARGS_EXAMPLE)
        pairs.update({k: "None" if v is None else v for k, v in point.model_params().items()})
        pairs.update(mode=point.mode, cache_dir=str(cache))
        if self.derives(point):
            pairs.update(derive_budgets="true")
        return lmeval_run.LmEvalRun(
            model="inftythink", model_args=format_pairs(pairs), tasks=self.tasks, output_path=output,
            limit=self.limit, gen_kwargs={**self.gen_kwargs, **point.gen_kwargs()}, include_path=self.include_path,
            apply_chat_template=self.apply_chat_template, system_instruction=self.system_instruction)


# --- which stored record is which point's -----------------------------------------------------------------
def _args(text: str) -> dict:
    return {k: literal(v) for k, v in parse_pairs(text or "", "model_args").items() if k not in PER_RUN_KEYS}


def _kwargs(values) -> dict:
    if isinstance(values, str):  # older results files keep --gen_kwargs as its text
        values = parse_pairs(values, "gen_kwargs")
    return {k: literal(str(v)) for k, v in (values or {}).items()}


def same_run(record: Record, spec: lmeval_run.LmEvalRun) -> bool:
    """Did ``record`` measure what ``spec`` runs (any task)?  The call cache's folder does not count."""
    a = record.lm_eval_args
    limit = a.get("limit")
    return (a.get("model") == spec.model and _args(a.get("model_args", "")) == _args(spec.model_args)
            and (limit is None) == (spec.limit is None) and (limit is None or float(limit) == float(spec.limit))
            and _kwargs(a.get("gen_kwargs")) == _kwargs(spec.gen_kwargs)
            and bool(a.get("apply_chat_template")) == bool(spec.apply_chat_template)
            and (a.get("system_instruction") or None) == (spec.system_instruction or None))


def stored_for(records: list[Record], spec: lmeval_run.LmEvalRun, tasks: list[str],
               files: tuple = ()) -> Optional[list[Record]]:
    """The stored records of the run (latest per task) when every task has one; else None.  ``files``: the
    records the state lists for the point (how a group task, stored under its subtasks' names, is found)."""
    latest: dict[str, Record] = {}
    for record in sorted(records, key=lambda r: r.date):
        if same_run(record, spec) and (record.task in tasks or record.file_name() in files):
            latest[record.task] = record
    named = all(t in latest for t in tasks)
    listed = bool(files) and set(files) <= {r.file_name() for r in latest.values()}
    return list(latest.values()) if latest and (named or listed) else None


# --- the state file -----------------------------------------------------------------------------------------
def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def new_state(plan: Plan, store: Path) -> dict:
    points = [{"label": p.label, "folder": p.slug, "status": "pending", "records": [], "runs": 0}
              for p in plan.points]
    return {"version": STATE_VERSION, "plan": plan.to_dict(), "store": str(Path(store).resolve()), "points": points}


def read_state(folder: Path) -> dict:
    path = Path(folder) / STATE
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SweepError(f"{path} not found: --resume and --show take the --output_path of an earlier "
                         "`inftythink sweep`") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise SweepError(f"{path} is not readable JSON ({exc}); it is written atomically, so it was changed by "
                         "hand: restore it or start the sweep in a new --output_path") from exc
    if state.get("version") != STATE_VERSION:
        raise SweepError(f"{path}: state version {state.get('version')!r}, expected {STATE_VERSION}")
    return state


def save_state(folder: Path, state: dict) -> None:
    write_text_atomic(Path(folder) / STATE, json.dumps({**state, "updated": _now()}, indent=1, default=str) + "\n")


# --- running ----------------------------------------------------------------------------------------------
def _attempts(point_dir: Path) -> list[tuple[int, Path]]:
    """The point's lm-eval output folders ``run-<k>``, by k."""
    found = [(p.name.partition("-")[2], p) for p in point_dir.glob("run-*") if p.is_dir()]
    return sorted((int(k), p) for k, p in found if k.isdigit())


def _finished_attempt(point_dir: Path, spec: lmeval_run.LmEvalRun) -> Optional[list[Record]]:
    """Records of an earlier attempt that finished but was not stored (killed between lm-eval and the store)."""
    for _k, run in reversed(_attempts(point_dir)):
        try:
            records = [r for r in import_path(run) if same_run(r, spec)]
        except (IngestError, RecordError):
            continue  # an attempt killed before lm-eval wrote its results
        if records:
            return records
    return None


def _run_point(spec: lmeval_run.LmEvalRun, point_dir: Path, entry: dict, save: Callable[[], None]) -> list[Record]:
    """The point's records: from an attempt that finished unstored, else from a new lm-eval run (its call cache
    serves every call an earlier attempt finished)."""
    records = _finished_attempt(point_dir, spec)
    if records is not None:
        return records
    output = point_dir / f"run-{max((k for k, _p in _attempts(point_dir)), default=0) + 1}"
    entry["runs"] += 1
    save()
    lmeval_run.run(replace(spec, output_path=output))
    records = [r for r in import_path(output) if same_run(r, spec)]
    if not records:
        raise SweepError(f"{output}: lm-eval finished but recorded other arguments than the point's "
                         f"({spec.model_args}); nothing was stored")
    return records


def _summary(records: list[Record]) -> str:
    return "; ".join(f"{r.task} ACC {100 * r.acc:.1f}%" + (f" TOK {r.tok:,.0f}" if r.tok is not None else "")
                     for r in sorted(records, key=lambda r: r.task))


def run_sweep(plan: Plan, folder: Path, store: Store, echo: Callable[[str], None] = print) -> dict:
    """Run every point whose records are not stored yet; return the final state.  Errors leave the state saved."""
    folder = Path(folder)
    path = folder / STATE
    state = read_state(folder) if path.exists() else new_state(plan, store.root)
    state["store"] = str(Path(store.root).resolve())
    stored = store.load()
    n, ran, skipped = len(plan.points), 0, 0
    for i, index in enumerate(plan.order(), 1):
        point, entry = plan.points[index], state["points"][index]
        point_dir = folder / "points" / point.slug
        spec = plan.spec(point, point_dir / "run-0", plan.cache_for(point, folder))
        found = stored_for(stored, spec, plan.task_names(), tuple(entry["records"]))
        if found is not None:
            skipped += 1
            entry.update(status=entry["status"] if entry["status"] == "done" else "skipped",
                         records=sorted(r.file_name() for r in found))
            echo(f"[{i}/{n}] {point.label}: already in the store, skipped ({_summary(found)})")
            save_state(folder, state)
            continue
        echo(f"[{i}/{n}] {point.label} … running ({ran} run, {skipped} skipped, {n - i} after this)")
        entry.update(status="running", started=_now())
        save_state(folder, state)
        start = time.monotonic()
        try:
            records = _run_point(spec, point_dir, entry, lambda: save_state(folder, state))
            report = store.add(records)
        except BaseException as exc:
            entry.update(status="interrupted" if isinstance(exc, KeyboardInterrupt) else "failed",
                         error=str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__)
            save_state(folder, state)
            raise
        stored += records
        ran += 1
        entry.update(status="done", records=sorted(r.file_name() for r in records), error=None,
                     seconds=round(time.monotonic() - start, 1))
        save_state(folder, state)
        echo(f"[{i}/{n}] {point.label}: done in {entry['seconds']:.0f} s, {report.summary()} ({_summary(records)})")
    echo(f"sweep: {n} point(s): {ran} run now, {skipped} already in the store (skipped); state in {path}")
    return state


def sweep_records(state: dict, store: Store) -> list[Record]:
    """The stored records of a sweep's points (each point's latest per task)."""
    plan, stored, out = Plan.from_dict(state["plan"]), store.load(), []
    for point, entry in zip(plan.points, state["points"]):
        spec = plan.spec(point, Path("."), Path("."))
        out += stored_for(stored, spec, plan.task_names(), tuple(entry.get("records") or ())) or []
    return out


# --- the command --------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model_args", help="model_args of --model inftythink, without mode= "
                        "(e.g. pretrained=zoo:smollm2-135m-instruct,backend=hf); shared by every point")
    parser.add_argument("--tasks", help="lm-eval tasks, comma-separated")
    parser.add_argument("--grid", action="append", default=[], metavar="SPEC",
                        help=f"one mode's points: {grid.SYNTAX}; the cartesian product of the value lists; "
                        "repeat per mode. Keys: the mode's own parameters (`inftythink eval --help-mode NAME`) "
                        "and max_gen_toks (the task's token budget, sent as --gen_kwargs: vanilla's budget)")
    parser.add_argument("--grid-file", type=Path, default=None, help="a YAML list of entries like "
                        "{mode: summarize, eta: [64, 128], max_rounds: 4} (or --grid strings), added to --grid")
    parser.add_argument("--limit", type=float, default=None, help="lm-eval --limit (questions per task)")
    parser.add_argument("--gen_kwargs", default="", help="lm-eval --gen_kwargs of every point (a point's max_gen_toks wins)")
    parser.add_argument("--include_path", default=None, help="extra task folder for lm-eval")
    parser.add_argument("--apply_chat_template", action="store_true", help="lm-eval --apply_chat_template (chat models)")
    parser.add_argument("--system_instruction", default=None, help="lm-eval --system_instruction")
    parser.add_argument("--output_path", type=Path, default=None, help="the sweep's folder: sweep.json, each point's "
                        "lm-eval outputs and call cache (default: sweeps/<model>-<hash of the plan>, so the same "
                        "command finds it again)")
    parser.add_argument("--store", type=Path, default=None, help="records folder (default leaderboard/results)")
    parser.add_argument("--no-reuse", dest="reuse", action="store_false", help="run every vanilla budget on its "
                        "own (default: the largest runs, each smaller budget is derived from its generation when "
                        "decoding is greedy or seeded: the same outputs and scores, LAT from token times)")
    parser.add_argument("--resume", type=Path, default=None, metavar="DIR", help="continue the sweep in DIR (its plan "
                        "comes from DIR/sweep.json); rerunning the same command does the same")
    parser.add_argument("--show", type=Path, default=None, metavar="DIR", help="print the frontiers of the sweep in DIR")
    parser.add_argument("--target-acc", type=float, default=None, metavar="PCT", help="target ACC in percent of the "
                        "equal-accuracy table (default: the best vanilla point's ACC)")
    parser.add_argument("--bootstrap-iters", type=int, default=2000, help="paired bootstrap resamples (default 2000)")


def _plan(args: argparse.Namespace) -> Plan:
    if not args.model_args or not args.tasks:
        raise SweepError("--model_args and --tasks are required (or --resume DIR / --show DIR for an earlier sweep)")
    base = parse_pairs(args.model_args, "--model_args", lmeval_run.MODEL_ARGS_EXAMPLE)
    if "mode" in base:
        raise SweepError("--model_args must not set mode=; each --grid names its mode (e.g. --grid vanilla "
                         "--grid summarize:eta=64,128)")
    points = grid.expand(args.grid, args.grid_file)
    from inftythink_eval.modes import mode_param_specs

    specs = mode_param_specs()
    shared = {k: grid.coerce(specs[k][1][0], k, v, "--model_args") for k, v in base.items() if k in specs}
    for point in points:  # the mode's cross-parameter checks, with the shared model_args' mode parameters
        grid.check_point(point, f"--grid {point.label}", {k: v for k, v in shared.items() if point.mode in specs[k][1]})
    gen = parse_pairs(args.gen_kwargs, "--gen_kwargs", "max_gen_toks=256,temperature=0.7")
    return Plan(model_args=args.model_args, tasks=args.tasks, points=tuple(points), limit=args.limit,
                gen_kwargs={k: literal(v) for k, v in gen.items()}, include_path=args.include_path,
                apply_chat_template=args.apply_chat_template, system_instruction=args.system_instruction,
                reuse=args.reuse)


def _folder(plan: Plan, given: Optional[Path]) -> Path:
    if given is not None:
        return Path(given)
    pretrained = parse_pairs(plan.model_args, "--model_args").get("pretrained", "model").rstrip("/")
    name = pretrained.split(":", 1)[-1].rsplit("/", 1)[-1] or "model"
    return Path("sweeps") / f"{name}-{plan.digest()}"


def _same_plan(folder: Path, plan: Plan) -> None:
    if not (folder / STATE).exists():
        return
    earlier = Plan.from_dict(read_state(folder)["plan"])
    if earlier.to_dict() != plan.to_dict():
        raise SweepError(f"{folder / STATE} holds another sweep ({len(earlier.points)} points over "
                         f"{earlier.model_args!r}, tasks {earlier.tasks}); continue it with `inftythink sweep --resume "
                         f"{folder}`, or run this one with another --output_path (points already stored are "
                         "skipped there too)")


def show(folder: Path, store: Optional[Path], target: Optional[float], iters: int) -> str:
    state = read_state(folder)
    records = sweep_records(state, Store(store or Path(state["store"])))
    lines = [f"sweep {folder}: {len(state['points'])} point(s)"]
    lines += [f"  {e['status']:<11} {e['label']}" for e in state["points"]]
    return "\n".join(lines) + "\n\n" + frontier.report(records, target, iters)


def run(args: argparse.Namespace) -> int:
    target = None if args.target_acc is None else args.target_acc / 100
    folder: Optional[Path] = None
    try:
        if args.show is not None:
            print(show(args.show, args.store, target, args.bootstrap_iters))
            return 0
        if args.resume is not None:
            if args.model_args or args.tasks or args.grid or args.grid_file or not args.reuse:
                raise SweepError("--resume DIR takes the plan from DIR/sweep.json; drop --model_args, --tasks, "
                                 "--grid and --no-reuse (or rerun the original command, which continues too)")
            state = read_state(args.resume)
            plan, folder = Plan.from_dict(state["plan"]), args.resume
            store = Store(args.store or Path(state["store"]))
        else:
            plan = _plan(args)
            folder = _folder(plan, args.output_path)
            _same_plan(folder, plan)
            store = Store(args.store or default_root())
        print(f"sweep: {len(plan.points)} point(s) × tasks {plan.tasks} in {folder}; records go to {store.root}",
              flush=True)
        run_sweep(plan, folder, store, echo=lambda line: print(line, flush=True))
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished points are stored; `inftythink sweep --resume {folder}` (or the same "
              "command) continues, and the point that was running resumes from its call cache", file=sys.stderr)
        return 130
    except (ValueError, SweepError, lmeval_run.LmEvalFailed, IngestError, RecordError, StoreError) as exc:
        hint = f"\nfinished points are kept: `inftythink sweep --resume {folder}` continues" if folder else ""
        print(f"error: {exc}{hint}", file=sys.stderr)
        return 2
    print("\n" + frontier.report(sweep_records(read_state(folder), store), target, args.bootstrap_iters))
    return 0
