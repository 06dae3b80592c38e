"""Leaderboard: normalised records from lm-eval outputs, an append-only store, rendering, compare and regress.

Modules: ``records`` (the record), ``ingest`` + ``sidecars`` (lm-eval folders -> records),
``store`` (append-only files), ``reference`` (the paper's reported rows), ``stats``
(intervals, bootstrap), ``render`` / ``html`` / ``plots`` (LEADERBOARD.md, index.html),
``compare``, ``regress``, ``publish``, ``cli`` (subcommands).
"""
