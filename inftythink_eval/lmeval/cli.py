"""``inftythink eval`` (lm_eval with ``--model inftythink`` by default) and ``inftythink demo``.

Owns: forwarding every flag to lm-eval's own CLI, and the embedded default
run (SmolLM2-135M-Instruct, a handful of MATH500 problems, vanilla and
iterative, offline once the model is cached).

Does not know: how lm-eval parses its flags.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def run_lm_eval(argv: list[str]) -> int:
    """Run lm-eval's CLI in-process; ``--model`` defaults to ``inftythink``."""
    if not any(a == "--model" or a.startswith("--model=") for a in argv) and argv[:1] not in (["ls"], ["validate"]):
        argv = ["--model", "inftythink", *argv]
    from lm_eval.__main__ import cli_evaluate

    old = sys.argv
    sys.argv = ["lm_eval", *argv]
    try:
        cli_evaluate()
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        sys.argv = old
    return 0


def demo_add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=int, default=4, help="problems per task (default 4)")
    parser.add_argument("--modes", default="vanilla,summarize", help="comma-separated modes (default vanilla,summarize)")
    parser.add_argument("--task", default="inftythink_math500", help="task (default inftythink_math500)")
    parser.add_argument("--max_gen_toks", type=int, default=256, help="token budget per sample (default 256)")
    parser.add_argument("--eta", type=int, default=96, help="summarize: tokens per round (default 96)")
    parser.add_argument("--output_path", default="runs/demo", help="where results go (default runs/demo)")


def demo_run(args: argparse.Namespace) -> int:
    if "INFTYTHINK_DATA_DIR" not in os.environ:
        shared = Path(__file__).resolve().parents[2].parent / "shared" / "data"
        if shared.is_dir():
            os.environ["INFTYTHINK_DATA_DIR"] = str(shared)
    for mode in args.modes.split(","):
        model_args = (f"pretrained=zoo:smollm2-135m-instruct,backend=hf,mode={mode},eta={args.eta},"
                      f"max_rounds=3,summary_tokens=96,batch_size=8,cache_dir={args.output_path}/cache")
        code = run_lm_eval(["--model_args", model_args, "--tasks", args.task, "--limit", str(args.limit),
                            "--apply_chat_template", "--gen_kwargs", f"max_gen_toks={args.max_gen_toks}",
                            "--output_path", f"{args.output_path}/{mode}", "--log_samples"])
        if code:
            return code
    print(f"demo finished: results, per-sample logs and traces under {args.output_path}/")
    return 0
