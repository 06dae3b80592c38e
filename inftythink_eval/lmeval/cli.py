"""``inftythink eval`` (lm_eval with ``--model inftythink`` by default) and ``inftythink demo``.

Owns: forwarding every flag to lm-eval's own CLI; our two flags of its own,
``--help-mode [NAME]`` and ``--help-backend [NAME]`` (text from the
declarations, ``describe``; an unknown name exits 2 with the valid names);
and the embedded default run (SmolLM2-135M-Instruct, a handful of MATH500
problems, vanilla and iterative, offline once the model is cached).

Does not know: how lm-eval parses its flags.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


HELP_FLAGS = ("--help-mode", "--help-backend")


def help_request(argv: list[str]) -> tuple[str, str] | None:
    """``(flag, name)`` when ``argv`` asks for ``--help-mode``/``--help-backend`` (name ``all`` when none given)."""
    for i, arg in enumerate(argv):
        flag, eq, name = arg.partition("=")
        if flag in HELP_FLAGS:
            if not eq:
                following = argv[i + 1] if i + 1 < len(argv) else ""
                name = "" if following.startswith("-") else following
            return flag, name.strip() or "all"
    return None


def print_help(flag: str, name: str) -> int:
    """Print a mode's or backend's declarations; an unknown name is an error on stderr, exit 2."""
    from inftythink_eval.lmeval import describe

    try:
        print(describe.help_mode(name) if flag == "--help-mode" else describe.help_backend(name))
    except ValueError as exc:
        print(f"inftythink eval {flag}: {exc}", file=sys.stderr)
        return 2
    return 0


def run_lm_eval(argv: list[str]) -> int:
    """Run lm-eval's CLI in-process; ``--model`` defaults to ``inftythink``; ``--help-mode``/``--help-backend``
    print our declarations instead."""
    asked = help_request(argv)
    if asked:
        return print_help(*asked)
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
