"""The ``inftythink`` console script: one entry, subcommands owned by their parts.

Owns: the subcommand table and dispatch.  Each subcommand lives in the
module of the part it belongs to and exposes ``add_arguments(parser)`` and
``run(args) -> int``; modules are imported only when their subcommand runs.

Does not know: any subcommand's flags (``eval`` passes every flag to lm-eval,
``--help-mode``/``--help-backend`` aside), modes, backends.
"""

from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS = {
    "eval": ("inftythink_eval.lmeval.cli", "run lm_eval with the inftythink model (every lm_eval flag is accepted; "
             "--help-mode [NAME] and --help-backend [NAME] describe the modes and backends)"),
    "demo": ("inftythink_eval.lmeval.cli:demo", "the embedded default: the tiny pair past the window, its frontier, SmolLM2 on MATH500"),
    "data": ("inftythink_eval.data.cli", "build InftyThink training data from long reasoning traces"),
    "train": ("inftythink_eval.training.cli", "run an SFT recipe from training/configs"),
    "zoo": ("inftythink_eval.checkpoints.cli", "list or show zoo checkpoints"),
    "leaderboard": ("inftythink_eval.results.cli", "import, render and publish results"),
    "compare": ("inftythink_eval.results.compare", "run one model in several modes and compare"),
    "sweep": ("inftythink_eval.results.sweep", "run one model over a grid of modes and parameters (resumable); "
              "print its accuracy-cost frontiers"),
    "regress": ("inftythink_eval.results.regress", "compare a fresh run with a stored baseline"),
}


def _module(spec: str):
    name, _, prefix = spec.partition(":")
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        raise SystemExit(f"inftythink: this subcommand is not available in this install ({exc})") from exc
    if not prefix:
        return module.add_arguments, module.run
    return getattr(module, f"{prefix}_add_arguments"), getattr(module, f"{prefix}_run")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="inftythink", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=sorted(SUBCOMMANDS), help="; ".join(f"{k}: {v[1]}" for k, v in SUBCOMMANDS.items()))
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0
    if argv[0] not in SUBCOMMANDS:
        parser.error(f"unknown command {argv[0]!r}; choose one of {', '.join(sorted(SUBCOMMANDS))}")
    command, rest = argv[0], argv[1:]
    if command == "eval":  # pass every flag through to lm_eval untouched
        from inftythink_eval.lmeval.cli import run_lm_eval

        return run_lm_eval(rest)
    add_arguments, run = _module(SUBCOMMANDS[command][0])
    sub = argparse.ArgumentParser(prog=f"inftythink {command}", description=SUBCOMMANDS[command][1])
    add_arguments(sub)
    return int(run(sub.parse_args(rest)) or 0)


if __name__ == "__main__":
    sys.exit(main())
