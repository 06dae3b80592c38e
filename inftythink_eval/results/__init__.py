"""Leaderboard: normalised records from lm-eval outputs, an append-only store, rendering, compare and regress.

Owns: nothing itself; its modules are ``records`` (the record; its benchmark and group come from the
task-family registry, ``scoring.families``), ``ingest`` + ``sidecars`` (lm-eval folders -> records),
``store`` (append-only files), ``reference`` (the papers' reported rows), ``stats`` (intervals,
bootstrap), ``render`` (tables, LEADERBOARD.md text), ``page`` + ``plots`` (index.html), ``write``
(both pages to disk), ``compare``, ``sweep`` + ``grid`` (a grid of points, resumable), ``frontier``
(Pareto sets, equal-accuracy table), ``regress``, ``lmeval_run``, ``publish``, ``cli`` (subcommands).

Does not know: how answers are scored, models and engines.
"""
