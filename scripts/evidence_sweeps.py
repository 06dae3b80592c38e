"""Reproduce the leaderboard's evidence records: frontier sweeps of the tiny models and a SmolLM2 plumbing check.

    python scripts/evidence_sweeps.py                  # every sweep below; records go to leaderboard/results/
    python scripts/evidence_sweeps.py --dry-run        # print the window check and the exact commands only
    python scripts/evidence_sweeps.py --only tiny-vanilla smollm2-math500

Each sweep is one ``inftythink sweep`` command (one model, a grid of mode/parameter points, each a real
``lm_eval --model inftythink`` run stored as a leaderboard record; resumable: rerunning skips every point
already stored and continues a point that was killed from its call cache).  The sweeps' folders go under
``--out`` (default runs/evidence/<sweep>), the records into ``--store`` (default leaderboard/results of this
checkout).  At the end: each sweep's wall time and the frontier SVG of the sweeps' records
(``--out``/frontiers.svg; ``inftythink leaderboard render`` draws the same plot into index.html).

The sweeps:

- Depths ``inftythink_synthetic_d8,d24,d96`` (32 problems each, greedy: the whole task, so no ``--limit``).
  The window rule: a depth is inside the vanilla window when the round-1 prompt plus the whole solution
  (``<think>\\n{trace}\\n</think>{answer}``) fits the tiny models' 256 positions; the script checks it with
  the model's own tokenizer and prints it (d8 inside; d24 and d96 beyond; the vanilla model was trained on
  depths up to 14, the deepest that fit).
- ``tiny-vanilla``: vanilla at ``max_gen_toks`` 64, 128, 228 (window minus prompt, the task's default) and
  1024 (past the window), and the budget-forcing baseline (mode ``budget``) at ``think_tokens`` 64, 128, 200
  with ``answer_tokens=8``.  The tiny models do have an end-of-thinking marker: their solutions are
  ``<think>\\n...\\n</think>{answer}``, the answer right after ``</think>`` with no blank line, so budget runs
  with ``think_end=</think>`` (its default ``\\n</think>\\n\\n`` would put text the model never saw before the
  answer).  ``think_tokens`` stops at 200 so that prompt + thinking + marker + answer stay inside 256.
- ``tiny-inftythink`` / ``tiny-plus``: the iterative models in their own mode (``inftythink``,
  ``inftythink_plus``) at ``round_tokens`` 128, 160, 200 (the cards' value) and 400; their natural round
  (8 steps and a one-line summary) is ~165 tokens, so the smaller caps cut rounds.  And the same weights
  in vanilla mode at 228 and 1024 tokens: one round, no iteration (the same-model baseline of the
  frontier's equal-accuracy table).  ``max_rounds`` stays at the cards' 40 (depth 96 takes 12 rounds).
- ``smollm2-math500``: SmolLM2-135M-Instruct on 4 MATH500 problems (``--limit 4``, chat template): vanilla at
  128 and 256 tokens, summarize at eta 64 and 96 (3 rounds, 96-token summaries); the pipeline check on a
  real chat model, not a result.

Tiny-model runs use one thread (``OMP_NUM_THREADS=1``; see docs/training.md, speed note).  Needs
``INFTYTHINK_DATA_DIR`` for MATH500 (default: ../shared/data beside the checkout when it exists).
Run on 2026-12-04 (records in leaderboard/results/, figures and reading in docs/leaderboard.md, "Evidence
sweeps"); ``--dry-run`` (tested) prints the window check and the commands.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WINDOW = 256  # positions of the tiny models (zoo/tiny-synthetic-*/config.json)
DEPTHS = (8, 24, 96)
TINY_TASKS = ",".join(f"inftythink_synthetic_d{d}" for d in DEPTHS)
ROUND_TOKENS = "128,160,200,400"


@dataclass(frozen=True)
class Sweep:
    """One ``inftythink sweep`` command."""

    name: str                  # its folder under --out
    model_args: str            # shared --model_args (no mode=)
    tasks: str
    grids: tuple               # --grid values, one per mode
    limit: int | None = None
    gen_kwargs: str = ""
    chat_template: bool = True
    threads: str | None = None  # OMP_NUM_THREADS for its lm-eval runs (None: the caller's)

    def argv(self, out: Path, store: Path) -> list[str]:
        cmd = [sys.executable, "-m", "inftythink_eval.cli", "sweep", "--model_args", self.model_args,
               "--tasks", self.tasks, "--output_path", str(out / self.name), "--store", str(store)]
        for spec in self.grids:
            cmd += ["--grid", spec]
        if self.limit is not None:
            cmd += ["--limit", str(self.limit)]
        if self.gen_kwargs:
            cmd += ["--gen_kwargs", self.gen_kwargs]
        return cmd + (["--apply_chat_template"] if self.chat_template else [])


SWEEPS = (
    Sweep("tiny-vanilla", "pretrained=zoo:tiny-synthetic-vanilla,backend=hf", TINY_TASKS,
          ("vanilla:max_gen_toks=64,128,228,1024",
           "budget:think_tokens=64,128,200;answer_tokens=8;think_end=</think>"), threads="1"),
    Sweep("tiny-inftythink", "pretrained=zoo:tiny-synthetic-inftythink,backend=hf", TINY_TASKS,
          (f"inftythink:round_tokens={ROUND_TOKENS}", "vanilla:max_gen_toks=228,1024"), threads="1"),
    Sweep("tiny-plus", "pretrained=zoo:tiny-synthetic-inftythink-plus,backend=hf", TINY_TASKS,
          (f"inftythink_plus:round_tokens={ROUND_TOKENS}", "vanilla:max_gen_toks=228,1024"), threads="1"),
    Sweep("smollm2-math500", "pretrained=zoo:smollm2-135m-instruct,backend=hf,batch_size=8", "inftythink_math500",
          ("vanilla:max_gen_toks=128,256", "summarize:eta=64,96;max_rounds=3;summary_tokens=96"),
          limit=4, gen_kwargs="max_gen_toks=256"),
)


def window_check(depths=DEPTHS, model: str = "tiny-synthetic-vanilla") -> list[tuple[int, int, bool]]:
    """(depth, tokens of the round-1 prompt + the longest solution at that depth, inside the window?)."""
    from transformers import AutoTokenizer

    from inftythink_eval.scoring.synthetic import Problem

    tok = AutoTokenizer.from_pretrained(ROOT / "zoo" / model)
    out = []
    for depth in depths:
        # the 2-digit start value only changes digits, never the length; x0=99 stands for all of them
        problem = Problem(99, depth)
        prompt = tok.apply_chat_template([{"role": "user", "content": problem.question}], tokenize=False,
                                         add_generation_prompt=True)
        n = len(tok(prompt + problem.solution(), add_special_tokens=False)["input_ids"]) + 1  # + EOS
        out.append((depth, n, n <= WINDOW))
    return out


def _data_dir_env() -> dict:
    env = dict(os.environ)
    shared = ROOT.parent / "shared" / "data"
    if "INFTYTHINK_DATA_DIR" not in env and shared.is_dir():
        env["INFTYTHINK_DATA_DIR"] = str(shared)
    return env


def run_sweep(sweep: Sweep, out: Path, store: Path, dry_run: bool) -> float:
    """Run one sweep (its output streams to the terminal); return its wall seconds.  Exits on a failure."""
    cmd = sweep.argv(out, store)
    env = _data_dir_env()
    if sweep.threads is not None:
        env["OMP_NUM_THREADS"] = sweep.threads
    prefix = f"OMP_NUM_THREADS={sweep.threads} " if sweep.threads else ""
    shown = [os.path.relpath(c, ROOT) if c.startswith(f"{ROOT}{os.sep}") else c for c in cmd[3:]]
    print(f"\n=== {sweep.name}\n$ {prefix}inftythink " + " ".join(shlex.quote(c) for c in shown), flush=True)
    if dry_run:
        return 0.0
    start = time.monotonic()
    done = subprocess.run(cmd, cwd=ROOT, env=env)
    if done.returncode != 0:
        raise SystemExit(f"sweep {sweep.name} failed (exit {done.returncode}); finished points are stored, and "
                         "rerunning this script continues it")
    return time.monotonic() - start


def write_frontier_svg(out: Path, store: Path, names: list[str]) -> Path | None:
    """The frontier plot of the sweeps' records (the plot ``leaderboard render`` puts into index.html)."""
    from inftythink_eval.results import plots, sweep
    from inftythink_eval.results.store import Store, write_text_atomic

    records = []
    for name in names:
        records += sweep.sweep_records(sweep.read_state(out / name), Store(store))
    svg = plots.frontier(records)
    if svg is None:
        return None
    path = out / "frontiers.svg"
    write_text_atomic(path, svg)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", choices=[s.name for s in SWEEPS], help="run only these sweeps")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "evidence", help="the sweeps' folders")
    ap.add_argument("--store", type=Path, default=ROOT / "leaderboard" / "results", help="records folder")
    ap.add_argument("--dry-run", action="store_true", help="print the window check and the commands only")
    args = ap.parse_args(argv)
    args.out, args.store = args.out.resolve(), args.store.resolve()  # the sweeps run in the checkout
    print(f"window rule (prompt + solution + EOS <= {WINDOW} tokens, tiny-synthetic-vanilla's tokenizer):")
    for depth, n, inside in window_check():
        print(f"  d{depth}: {n} tokens: {'inside' if inside else 'beyond'} the vanilla window")
    chosen = [s for s in SWEEPS if not args.only or s.name in args.only]
    started, times = time.monotonic(), {}
    for sweep in chosen:
        times[sweep.name] = round(run_sweep(sweep, args.out, args.store, args.dry_run), 1)
    if args.dry_run:
        return 0
    total = round(time.monotonic() - started, 1)
    print("\nwall time per sweep (s): " + json.dumps({**times, "total": total}))
    svg = write_frontier_svg(args.out, args.store, [s.name for s in chosen])
    print(f"frontier plot: {svg}" if svg else "frontier plot: no task has two points of one model")
    return 0


if __name__ == "__main__":
    sys.exit(main())
