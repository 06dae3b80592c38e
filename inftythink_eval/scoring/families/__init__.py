"""Task families: one module each, registering its checker, hooks, row schema and benchmarks.

Owns: discovery (``discover``): each module of this package whose name
does not start with ``_`` is imported on first use of the package (a folder
outside it can be added the same way) and registers one family
(``_base.register_family``): its row schema and the conversion to it, its
checker, its lm-eval hooks (prompt, judging filter, ``process_results``,
named ``!function utils.<name>`` in the task YAMLs) and its benchmarks with
their data entries (``_base.Benchmark``: hub id, config, split, offline
file, rows, leaderboard group).  The data loader (``scoring.datasets``),
the task hooks (``scoring.hooks``, re-exported by ``tasks/_base/utils.py``)
and the leaderboard's groups (``results.records``, ``results.render``) all
read the tables here, so adding a benchmark to a family is adding its entry
(and its task YAML), and adding a family is adding its module (and its YAMLs).
See docs/extending.md.

Public names: ``FAMILIES``, ``BENCHMARKS``, ``HOOKS``, ``GROUPS`` (live, in
rank order), ``Benchmark``, ``Family``, ``Group``, ``OTHER``,
``register_family``, ``register_group``, ``group_order``, ``members``,
``discover``.  The families: ``math``, ``choice``, ``code``.

Does not know: file formats, lm-eval's internals, rendering.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path
from typing import Optional

from inftythink_eval.scoring.families._base import (BENCHMARKS, FAMILIES, GROUPS, HOOKS, OTHER, Benchmark, Family, Group,
                                                    group_order, members, register_family, register_group)


def discover(folder: Optional[Path] = None) -> list[str]:
    """Import the family modules of this package, or of ``folder`` (added to the package's path); their names.

    A module of ``folder`` becomes ``inftythink_eval.scoring.families.<name>`` exactly as one placed here
    would; a name already taken by another module is a ``ValueError``.
    """
    paths = list(__path__) if folder is None else [str(Path(folder).resolve())]
    if folder is not None and paths[0] not in __path__:
        __path__.append(paths[0])
    names = []
    for info in pkgutil.iter_modules(paths):
        if info.name.startswith("_"):
            continue
        loaded = sys.modules.get(f"{__name__}.{info.name}")
        if loaded is not None and folder is not None and Path(loaded.__file__).parent != Path(paths[0]):
            raise ValueError(f"{paths[0]}/{info.name}.py: a task family module named {info.name!r} exists already "
                             f"({loaded.__file__}); expected a name of its own")
        importlib.import_module(f"{__name__}.{info.name}")
        names.append(info.name)
    return names


discover()

__all__ = ["BENCHMARKS", "FAMILIES", "GROUPS", "HOOKS", "OTHER", "Benchmark", "Family", "Group", "discover",
           "group_order", "members", "register_family", "register_group"]
