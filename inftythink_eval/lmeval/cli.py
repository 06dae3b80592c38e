"""``inftythink eval`` (lm_eval with ``--model inftythink`` by default) and ``inftythink demo``.

Owns: forwarding every flag to lm-eval's own CLI; our two flags of its own,
``--help-mode [NAME]`` and ``--help-backend [NAME]`` (text from the
declarations, ``describe``; an unknown name exits 2 with the valid names);
and the embedded default run (``demo``: the tiny vanilla model against its
InftyThink twin beyond the vanilla window, the twin's frontier, then
SmolLM2-135M-Instruct on a handful of MATH500 problems, vanilla and
iterative; offline once the model is cached).

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


DEMO_DEPTH = 24  # beyond the tiny models' 256-position window (scripts/evidence_sweeps.py checks it)


def demo_add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=int, default=4, help="MATH500 problems (default 4)")
    parser.add_argument("--modes", default="vanilla,summarize", help="SmolLM2's modes, comma-separated (default "
                        "vanilla,summarize)")
    parser.add_argument("--task", default="inftythink_math500", help="SmolLM2's task (default inftythink_math500)")
    parser.add_argument("--max_gen_toks", type=int, default=256, help="SmolLM2's token budget per sample (default 256)")
    parser.add_argument("--eta", type=int, default=96, help="summarize: tokens per round (default 96)")
    parser.add_argument("--tiny-limit", type=int, default=8, help="synthetic problems for the tiny models (default 8; "
                        "0 skips parts 1 and 2)")
    parser.add_argument("--output_path", default="runs/demo", help="where results go (default runs/demo)")


def demo_run(args: argparse.Namespace) -> int:
    """The story in three parts: (1) the tiny vanilla model at a depth beyond its window against its InftyThink
    twin, (2) the twin's frontier (``inftythink sweep``: round sizes against the same weights run vanilla), (3)
    SmolLM2-135M-Instruct on a few MATH500 problems, vanilla and iterative.  Records of part 2 go to a store
    inside ``--output_path``, not to the leaderboard."""
    if "INFTYTHINK_DATA_DIR" not in os.environ:
        shared = Path(__file__).resolve().parents[2].parent / "shared" / "data"
        if shared.is_dir():
            os.environ["INFTYTHINK_DATA_DIR"] = str(shared)
    out = args.output_path
    if args.tiny_limit > 0:
        task = f"inftythink_synthetic_d{DEMO_DEPTH}"
        print(f"\n=== 1/3 depth {DEMO_DEPTH}, beyond the 256-token window: the tiny vanilla model, whose one chain of "
              "thought does not fit (its InftyThink twin, trained on the same data, comes next)", flush=True)
        code = run_lm_eval(["--model_args", "pretrained=zoo:tiny-synthetic-vanilla,backend=hf,batch_size=8",
                            "--tasks", task, "--limit", str(args.tiny_limit), "--apply_chat_template",
                            "--output_path", f"{out}/tiny-vanilla", "--log_samples"])
        if code:
            return code
        print(f"\n=== 2/3 the InftyThink twin at depth {DEMO_DEPTH}: rounds of 128 and 200 tokens against the same "
              "weights in one vanilla chain; then the least cost at which each reaches 90%", flush=True)
        from inftythink_eval.results import sweep

        parser = argparse.ArgumentParser()
        sweep.add_arguments(parser)
        code = sweep.run(parser.parse_args([
            "--model_args", "pretrained=zoo:tiny-synthetic-inftythink,backend=hf,batch_size=8", "--tasks", task,
            "--grid", "inftythink:round_tokens=128,200", "--grid", "vanilla:max_gen_toks=228",
            "--limit", str(args.tiny_limit), "--apply_chat_template", "--output_path", f"{out}/tiny-sweep",
            "--store", f"{out}/records", "--bootstrap-iters", "200", "--target-acc", "90"]))
        if code:
            return code
        print("\n=== 3/3 SmolLM2-135M-Instruct on MATH500 (a real chat model; the pipeline check, not a result)",
              flush=True)
    for mode in args.modes.split(","):
        model_args = (f"pretrained=zoo:smollm2-135m-instruct,backend=hf,mode={mode},eta={args.eta},"
                      f"max_rounds=3,summary_tokens=96,batch_size=8,cache_dir={out}/cache")
        code = run_lm_eval(["--model_args", model_args, "--tasks", args.task, "--limit", str(args.limit),
                            "--apply_chat_template", "--gen_kwargs", f"max_gen_toks={args.max_gen_toks}",
                            "--output_path", f"{out}/{mode}", "--log_samples"])
        if code:
            return code
    print(f"demo finished: results, per-sample logs and traces under {out}/ (the tiny sweep: inftythink sweep --show "
          f"{out}/tiny-sweep --store {out}/records)")
    return 0
