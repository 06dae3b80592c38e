"""``inftythink leaderboard import|render|publish``.

Owns: the three actions' arguments and their printed summaries; the
default locations (``leaderboard/results/`` for records and
``leaderboard/`` for the pages, under the current folder or
``$INFTYTHINK_LEADERBOARD``); turning errors into one clear line and a
non-zero exit.

Does not know: lm-eval formats (``ingest``), layout (``render``, ``write``), the hub (``publish``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from inftythink_eval.results import publish
from inftythink_eval.results.records import RecordError
from inftythink_eval.results.sidecars import IngestError
from inftythink_eval.results.store import Store, StoreError, default_root


def _pages_dir() -> Path:
    return Path(os.environ.get("INFTYTHINK_LEADERBOARD", "leaderboard"))


def _locations(parser: argparse.ArgumentParser, default) -> argparse.ArgumentParser:
    """--store/--out, accepted before or after the action (``default``: None on the parent, SUPPRESS on actions)."""
    parser.add_argument("--store", type=Path, default=default,
                        help="records folder (default: $INFTYTHINK_LEADERBOARD/results or leaderboard/results)")
    parser.add_argument("--out", type=Path, default=default,
                        help="folder for LEADERBOARD.md and index.html (default: $INFTYTHINK_LEADERBOARD or leaderboard)")
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _locations(parser, None)
    actions = parser.add_subparsers(dest="action", required=True)
    action = lambda name, text: _locations(actions.add_parser(name, help=text), argparse.SUPPRESS)  # noqa: E731
    imp = action("import", "import lm-eval output folders (run with --log_samples) into the store")
    imp.add_argument("paths", nargs="+", type=Path, help="lm-eval --output_path folders, model folders or results files")
    imp.add_argument("--render", action="store_true", help="render the pages afterwards")
    action("render", "write LEADERBOARD.md and index.html from the store")
    action("list", "print one line per stored record")
    publish.add_arguments(action("publish", "upload the store and pages to a hub dataset"))


def run(args: argparse.Namespace) -> int:
    args.store = args.store or default_root()
    args.out = args.out or _pages_dir()
    try:
        if args.action == "import":
            return _import(args)
        if args.action == "render":
            return _render(args)
        if args.action == "list":
            for record in Store(args.store).load():
                print(f"{record.record_id}  {record.model:<28} {record.mode:<11} {record.task:<28} "
                      f"ACC {100 * record.acc:5.1f}  n={record.n_questions}x{record.samples_per_question}  {record.date}")
            return 0
        return publish.run(args)
    except (IngestError, RecordError, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _import(args: argparse.Namespace) -> int:
    from inftythink_eval.results.ingest import iter_records

    records = iter_records(args.paths)  # every input parsed and validated before anything is written
    report = Store(args.store).add(records)
    print(f"{report.summary()} in {args.store}")
    for path in report.added:
        print(f"  + {path.name}")
    return _render(args) if args.render else 0


def _render(args: argparse.Namespace) -> int:
    from inftythink_eval.results.write import render_all  # matplotlib loads only when pages are written

    records = Store(args.store).load()
    md, page = render_all(records, args.out)
    print(f"rendered {len(records)} record(s): {md} and {page}")
    return 0
