"""``inftythink zoo list|show NAME``: print the zoo's cards.

Owns: the two listings.  Does not know: how cards are read (``cards``) or evaluated.
"""

from __future__ import annotations

import argparse
import sys

from inftythink_eval.checkpoints.cards import cards, get_card, summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("list", "show"), help="list: one line per card; show NAME: the whole card")
    parser.add_argument("name", nargs="?", help="card name for show (see list)")


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        print(f"{'name':<28} {'eval mode':<11} source")
        for card in cards().values():
            print(summary(card))
        return 0
    if not args.name:
        print("error: `inftythink zoo show` needs a NAME; see `inftythink zoo list`", file=sys.stderr)
        return 2
    try:
        card = get_card(args.name)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"# {card.path}")
    print(card.path.read_text(encoding="utf-8").rstrip())
    print(f"# resolves to: {card.resolve_path()}")
    return 0
