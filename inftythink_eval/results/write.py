"""Writing the leaderboard's two pages: ``LEADERBOARD.md`` and ``index.html``.

Owns: ``render_all`` (both pages from the stored records and the papers'
reported rows, each written atomically into one folder).

Does not know: the tables' layout (``render``), HTML markup and plots (``page``,
``plots``), where records come from (``store``, ``ingest``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from inftythink_eval.results import page, reference, render  # page imports matplotlib: import this module lazily
from inftythink_eval.results.records import Record
from inftythink_eval.results.store import write_text_atomic


def render_all(records: list[Record], out_dir: Path, reported: Optional[list] = None) -> tuple[Path, Path]:
    """Write ``LEADERBOARD.md`` and ``index.html`` into ``out_dir``; return both paths."""
    reported = reference.load() if reported is None else reported
    md = write_text_atomic(Path(out_dir) / "LEADERBOARD.md", render.markdown(records, reported) + "\n")
    html = write_text_atomic(Path(out_dir) / "index.html", page.build(records, reported))
    return md, html
