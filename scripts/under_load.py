"""Run a command while every core is kept busy, to show that the tests do not depend on the machine's speed.

    python scripts/under_load.py [--burners N] -- COMMAND ...

Starts N busy-looping processes (default: one per core), runs COMMAND, stops the burners, and prints the command's
exit status and wall time. Exits with the command's status. Example, the README's test command under load:

    INFTYTHINK_DATA_DIR=../shared/data python scripts/under_load.py -- python -m pytest -q
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import subprocess
import sys
import time


def _burn() -> None:
    while True:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--burners", type=int, default=os.cpu_count() or 1, help="busy processes (default: one per core)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command to run, after --")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --, e.g. -- python -m pytest -q")
    if args.burners < 0:
        parser.error(f"--burners must be >= 0, got {args.burners}")
    burners = [mp.Process(target=_burn, daemon=True) for _ in range(args.burners)]
    for proc in burners:
        proc.start()
    start = time.monotonic()
    try:
        rc = subprocess.call(command)
    finally:
        for proc in burners:
            proc.kill()
    wall = time.monotonic() - start
    print(f"under_load: {' '.join(command)} exited {rc} after {wall:.0f} s beside {args.burners} busy processes "
          f"on {os.cpu_count()} cores", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
