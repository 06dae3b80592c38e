"""``inftythink train``: run the SFT recipe on one config, in-process or under ``accelerate launch``.

Owns: argument parsing, locating ``training/recipes/sft.py`` in the checkout,
and turning ``--accelerate FILE`` into an ``accelerate launch`` command for
several GPUs or nodes.

Does not know: what the recipe does (see the recipe), config fields (see ``config``).
"""

from __future__ import annotations

import argparse
import importlib.util
import shlex
import subprocess
import sys
from pathlib import Path

from inftythink_eval.training.config import ConfigError, load


def recipe_path() -> Path:
    """The recipe file of this checkout (training needs a source checkout, not only the wheel)."""
    path = Path(__file__).resolve().parents[2] / "training" / "recipes" / "sft.py"
    if not path.is_file():
        raise ConfigError(f"recipe not found at {path}; `inftythink train` runs from a source checkout "
                          "(git clone ... && pip install -e '.[train]')")
    return path


def load_recipe():
    """The recipe module, imported from its file."""
    spec = importlib.util.spec_from_file_location("inftythink_sft_recipe", recipe_path())
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="a training config, e.g. training/configs/tiny-synthetic_inftythink.yaml")
    parser.add_argument("overrides", nargs="*", help="key=value overrides (learning_rate=2e-5 max_steps=10 scratch.hidden_size=64)")
    parser.add_argument("--accelerate", metavar="FILE", help="an accelerate config (training/accelerate/*.yaml): "
                        "run under `accelerate launch` (several GPUs, DeepSpeed ZeRO-3 or FSDP)")
    parser.add_argument("--dry-run", action="store_true", help="validate the config and print it (and the launch command)")


def launch_command(args: argparse.Namespace) -> list[str]:
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", args.accelerate,
            str(recipe_path()), "--config", args.config, *args.overrides]


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
