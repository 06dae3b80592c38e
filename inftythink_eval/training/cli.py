"""``inftythink train``: run the SFT recipe on one config, in-process or under ``accelerate launch``.

Owns: argument parsing, running the recipe (``inftythink_eval.training.sft``, part of the
installed package: no checkout needed), and turning ``--accelerate FILE`` into an
``accelerate launch -m inftythink_eval.training.sft`` command for several GPUs or nodes.

Does not know: what the recipe does (see the recipe), config fields (see ``config``).
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

from inftythink_eval.training.config import ConfigError, load

RECIPE = "inftythink_eval.training.sft"  # the module ``accelerate launch -m`` runs


def load_recipe():
    """The recipe module (imported on use: it needs the ``train`` extra, TRL and accelerate)."""
    from inftythink_eval.training import sft

    return sft


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="a training config, e.g. training/configs/tiny-synthetic_inftythink.yaml")
    parser.add_argument("overrides", nargs="*", help="key=value overrides (learning_rate=2e-5 max_steps=10 scratch.hidden_size=64)")
    parser.add_argument("--accelerate", metavar="FILE", help="an accelerate config (training/accelerate/*.yaml): "
                        "run under `accelerate launch` (several GPUs, DeepSpeed ZeRO-3 or FSDP)")
    parser.add_argument("--dry-run", action="store_true", help="validate the config and print it (and the launch command)")


def launch_command(args: argparse.Namespace) -> list[str]:
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", args.accelerate,
            "-m", RECIPE, "--config", args.config, *args.overrides]


def run(args: argparse.Namespace) -> int:
    try:
        cfg = load(args.config, args.overrides)
        if args.accelerate and not Path(args.accelerate).is_file():
            raise ConfigError(f"no accelerate config at {args.accelerate}; pick one of training/accelerate/*.yaml")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.dry_run:
        from inftythink_eval.training.config import to_dict

        print(to_dict(cfg))
        if args.accelerate:
            print(shlex.join(launch_command(args)))
        return 0
    if args.accelerate:
        return subprocess.call(launch_command(args))
    summary = load_recipe().train(cfg)
    print(f"done: {summary['global_step']} steps, train loss {summary['train_loss']:.4f}, "
          f"model in {Path(cfg.output_dir) / 'final'}")
    return 0
