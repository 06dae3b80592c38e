"""What a grid of vanilla budgets costs with and without reuse (``inftythink sweep``; prints numbers, not a test).

Three sweeps of one model on one task, each in fresh folders, timed end to end (lm-eval start-up, model load,
generation, scoring, storing the records):

1. the largest budget alone (``--grid vanilla:max_gen_toks=BMAX``);
2. every budget, reuse on (the default: BMAX runs, each smaller budget is derived from its generation);
3. every budget, ``--no-reuse`` (each budget generates).

Target: (2) costs at most 1.1x (1).  What (2) adds to (1) is one lm-eval start-up per smaller budget (no
generation), so the ratio falls as the largest run grows; the script prints that start-up too.  It also checks
that each derived point's stored ACC and TOK equal the ones (3) measured.

Run: ``python benchmarks/bench_sweep_reuse.py --budgets 128 256 512 1024 --limit 32`` (SmolLM2 on MATH500,
``backend=hf``; ``--model_args`` to change).  Every ratio comes from one run on one machine.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from inftythink_eval.results.store import Store


def sweep(args, folder: Path, budgets: list[int], *flags: str) -> tuple[float, dict]:
    """Seconds the sweep took and {budget: (ACC, TOK)} of its stored records."""
    argv = [sys.executable, "-m", "inftythink_eval.cli", "sweep", "--model_args", args.model_args, "--tasks",
            args.tasks, "--limit", str(args.limit), "--apply_chat_template", "--grid",
            "vanilla:max_gen_toks=" + ",".join(map(str, budgets)), "--output_path", str(folder / "sweep"),
            "--store", str(folder / "store"), "--bootstrap-iters", "100", *flags]
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"sweep failed:\n{proc.stderr[-3000:]}")
    records = Store(folder / "store").load()
    return took, {r.lm_eval_args["gen_kwargs"]["max_gen_toks"]: (r.acc, r.tok) for r in records}


def startup(args, folder: Path) -> float:
    """One lm-eval run that generates nothing new: the largest budget again, served whole from its cache (``mode=``
    as the sweep sets it: a zoo card's own mode would apply otherwise)."""
    cache = folder / "sweep" / "vanilla-cache"
    argv = [sys.executable, "-m", "lm_eval", "--model", "inftythink", "--model_args",
            f"{args.model_args},mode=vanilla,cache_dir={cache},derive_budgets=true", "--tasks", args.tasks, "--limit",
            str(args.limit), "--apply_chat_template", "--gen_kwargs", f"max_gen_toks={max(args.budgets)}",
            "--output_path", str(folder / "again")]
    start = time.perf_counter()
    subprocess.run(argv, capture_output=True, text=True, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budgets", type=int, nargs="+", default=[128, 256, 512, 1024])
    parser.add_argument("--limit", type=int, default=32)
    parser.add_argument("--tasks", default="inftythink_math500")
    parser.add_argument("--model_args", default="pretrained=zoo:smollm2-135m-instruct,backend=hf,batch_size=16")
    args = parser.parse_args()
    budgets = sorted(args.budgets)
    with tempfile.TemporaryDirectory(prefix="bench-reuse-") as tmp:
        root = Path(tmp)
        alone, _ = sweep(args, root / "alone", budgets[-1:], "--no-reuse")
        reuse, derived = sweep(args, root / "reuse", budgets)
        every, own = sweep(args, root / "every", budgets, "--no-reuse")
        again = startup(args, root / "reuse")
    same = all(derived[b] == own[b] for b in budgets)
    print(f"[reuse] {args.model_args} on {args.tasks} --limit {args.limit}, vanilla budgets {budgets}:")
    print(f"  largest budget alone  {alone:8.1f} s")
    print(f"  all budgets, reuse    {reuse:8.1f} s  ({reuse / alone:.2f}x the largest alone; target <= 1.1x)")
    print(f"  all budgets, no reuse {every:8.1f} s  ({every / alone:.2f}x)")
    print(f"  one lm-eval run served from the cache (the cost of a derived point): {again:.1f} s")
    print(f"  derived points' ACC/TOK equal their own runs': {same}  {derived}")


if __name__ == "__main__":
    main()
