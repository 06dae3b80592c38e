"""Print or update README.md's mode and backend tables, generated from the modes' and backends' declarations.

    python scripts/readme_tables.py            # print both tables
    python scripts/readme_tables.py --write    # replace them in README.md (between the marker comments)
    python scripts/readme_tables.py --check    # exit 1 when README.md differs from the declarations

Each mode (``register(..., summary=...)`` and its ``Param``s) and each backend (``register_backend(...,
summary=...)`` and its options dataclass) declares its row; ``inftythink_eval.lmeval.describe`` renders it.
tests/test_declarations.py fails when README.md is not regenerated after a mode or backend changes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from inftythink_eval.lmeval.describe import backends_table, modes_table, readme_with_tables

README = Path(__file__).resolve().parents[1] / "README.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help="replace the tables in README.md")
    action.add_argument("--check", action="store_true", help="exit 1 when README.md's tables are out of date")
    args = parser.parse_args(argv)
    if not (args.write or args.check):
        print(modes_table(), backends_table(), sep="\n\n")
        return 0
    text = README.read_text(encoding="utf-8")
    fresh = readme_with_tables(text)
    if args.check:
        if fresh != text:
            print(f"{README}: the mode/backend tables are out of date; run python scripts/readme_tables.py --write",
                  file=sys.stderr)
            return 1
        return 0
    if fresh != text:
        README.write_text(fresh, encoding="utf-8")
    print(f"{README}: tables {'updated' if fresh != text else 'already up to date'} ({len(fresh)} characters)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
