"""Regenerate the accuracy / TOK / LAT vs depth curve of the CPU-scale reference models.

    python scripts/synthetic_curve.py                      # the tiny pair, every depth, 32 samples each
    python scripts/synthetic_curve.py --variants inftythink vanilla vanilla-unbounded inftythink_plus
    python scripts/synthetic_curve.py --num-samples 8 --depths 4 24 170 --out /tmp/curve.json

Runs the real CLI (``lm_eval --model inftythink --model_args pretrained=zoo:<name>`` with the
``inftythink_synthetic`` task and ``--metadata '{"depth": D}'``), one lm_eval process per
(model, depth), and keeps each finished cell in ``--cells`` (default runs/synthetic_curve_cells/) so an
interrupted run resumes; a cell's file name carries a hash of the model's weights, so a retrained
model is measured afresh (delete that folder to measure the same weights again).  Cells already in
``--out`` with the same variant, weights hash, depth, sample count and seed are kept as they are
(so adding a variant measures only that variant).
Writes the curve as JSON (atomic) and prints a Markdown table for docs/training.md.

Variants: ``vanilla`` is window-bound (max_gen_toks 228 = 256-token window minus the prompt);
``vanilla-unbounded`` lets the same model generate past its window (--gen_kwargs
max_gen_toks=N) to show what happens to its positions beyond training.  ``inftythink_plus`` is the
tiny InftyThink+ model in ``mode=inftythink_plus`` (its own chat template, ``<history>`` prefilled in
the assistant turn; the card sets the mode and round budget).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEPTHS = (4, 8, 12, 24, 48, 96, 170)
WINDOW = 256
VARIANTS = {
    "inftythink": ["--model_args", "pretrained=zoo:tiny-synthetic-inftythink,backend=hf"],
    "vanilla": ["--model_args", "pretrained=zoo:tiny-synthetic-vanilla,backend=hf", "--apply_chat_template"],
    "vanilla-unbounded": ["--model_args", "pretrained=zoo:tiny-synthetic-vanilla,backend=hf", "--apply_chat_template",
                          "--gen_kwargs", "max_gen_toks=2800"],
    "inftythink_plus": ["--model_args", "pretrained=zoo:tiny-synthetic-inftythink-plus,backend=hf,mode=inftythink_plus"],
}
# One thread unless the caller says otherwise: a ~1M-parameter model gains nothing from a second thread, and on a
# shared 2-core machine OpenMP's spinning made a generation step ~60x slower (713 vs 12 ms, measured here).
THREADS = os.environ.get("OMP_NUM_THREADS", "1")
METRICS = ("acc", "tok", "lat", "rounds", "peak_ctx", "truncated", "format_fail")


def run_cell(variant: str, depth: int, num_samples: int, seed: int) -> dict:
    """One lm_eval run; returns the task's metrics."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = ["lm_eval", "--model", "inftythink", *VARIANTS[variant], "--tasks", "inftythink_synthetic",
               "--metadata", json.dumps({"depth": depth, "num_samples": num_samples, "seed": seed}),
               "--output_path", tmp]
        started = time.time()
        env = {**os.environ, "OMP_NUM_THREADS": THREADS}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        result = json.loads(next(Path(tmp).rglob("results_*.json")).read_text())
    row = result["results"]["inftythink_synthetic"]
    cell = {m: row.get(f"{m},none") for m in METRICS}
    cell.update(acc_stderr=row.get("acc_stderr,none"), variant=variant, depth=depth, num_samples=num_samples,
                seed=seed, wall_s=round(time.time() - started, 1), command=" ".join(cmd[:-2]))
    return cell


def weights_id(variant: str) -> str:
    """First 10 hex digits of the sha256 of the variant's committed weights (zoo/<name>/model.safetensors)."""
    import hashlib

    name = next(a for a in VARIANTS[variant] if a.startswith("pretrained=zoo:")).split(":", 1)[1].split(",")[0]
    weights = Path(__file__).resolve().parents[1] / "zoo" / name / "model.safetensors"
    return hashlib.sha256(weights.read_bytes()).hexdigest()[:10]


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def table(cells: list[dict]) -> str:
    lines = ["| model / mode | depth | trace / window (approx.) | acc | TOK | LAT s | rounds | peak ctx | truncated |",
             "|---|---|---|---|---|---|---|---|---|"]
    for c in cells:
        ratio = (c["depth"] * 15 + 30) / WINDOW
        lines.append(f"| {c['variant']} | {c['depth']} | {ratio:.1f}x | {c['acc']:.3f} | {c['tok']:.0f} | "
                     f"{c['lat']:.2f} | {c['rounds']:.1f} | {c['peak_ctx']:.0f} | {c['truncated']:.2f} |")
    return "\n".join(lines)


def plot(cells: list[dict], path: Path) -> None:
    """Accuracy, TOK and LAT against depth, one line per variant, the window marked (PNG, atomic)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for variant in dict.fromkeys(c["variant"] for c in cells):
        rows = sorted((c for c in cells if c["variant"] == variant), key=lambda c: c["depth"])
        depths = [c["depth"] for c in rows]
        for ax, key in zip(axes, ("acc", "tok", "lat")):
            ax.plot(depths, [c[key] for c in rows], marker="o", label=variant)
    fit = (WINDOW - 30) / 15  # deepest trace that fits the window (~15 tokens per step)
    for ax, label in zip(axes, ("accuracy", "TOK (generated tokens)", "LAT (s per sample)")):
        ax.axvline(fit, color="grey", linestyle="--", linewidth=1)
        ax.set_xscale("log")
        ax.set_xlabel("depth (steps); dashed: window")
        ax.set_title(label)
    axes[0].legend()
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", nargs="+", default=["inftythink", "vanilla"], choices=sorted(VARIANTS))
    ap.add_argument("--depths", nargs="+", type=int, default=list(DEPTHS))
    ap.add_argument("--num-samples", type=int, default=32)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--out", default="docs/training_curve.json")
    ap.add_argument("--plot", default="docs/training_curve.png", help="PNG of the curve ('' for none)")
    ap.add_argument("--cells", default="runs/synthetic_curve_cells", help="finished cells (resume cache)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    cell_dir = Path(args.cells)
    cells = []
    known = {}
    if out.is_file():  # cells of an earlier run, reused when their weights are the committed ones
        known = {(c["variant"], c.get("weights_sha256"), c["depth"], c["num_samples"], c["seed"]): c
                 for c in json.loads(out.read_text())["cells"]}
    for variant in args.variants:
        weights = weights_id(variant)
        for depth in args.depths:
            path = cell_dir / f"{variant}_{weights}_d{depth}_n{args.num_samples}_s{args.seed}.json"
            if path.is_file():
                cell = json.loads(path.read_text())
            elif (variant, weights, depth, args.num_samples, args.seed) in known:
                cell = known[(variant, weights, depth, args.num_samples, args.seed)]
            else:
                cell = {**run_cell(variant, depth, args.num_samples, args.seed), "weights_sha256": weights}
                write_atomic(path, json.dumps(cell, indent=1))
            print(f"{variant:<18} depth {depth:>3}: acc {cell['acc']:.3f}  tok {cell['tok']:.0f}  "
                  f"lat {cell['lat']:.2f}s  rounds {cell['rounds']:.1f}  ({cell['wall_s']} s)", flush=True)
            cells.append(cell)
    import platform

    write_atomic(out, json.dumps({"window_tokens": WINDOW, "machine": f"{platform.machine()}, {os.cpu_count()} cores, OMP_NUM_THREADS={THREADS}",
                                  "cells": cells}, indent=1))
    print(table(cells))
    if args.plot:
        plot(cells, Path(args.plot))
    return 0


if __name__ == "__main__":
    sys.exit(main())
