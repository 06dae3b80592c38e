"""Generation modes: small strategies that decide a sample's next call from its calls so far.

Owns: discovery of the modes and the registry's public names.  Each mode is one module of this package that registers itself
(``_base.register``) with its parameters (``_base.Param``: name, type,
default, docstring).  A mode is a pure ``next_call(sample, calls) -> Call | Final``:
all state is derived from the calls already made, which is what makes resume
from the cache exact.  Every module here whose name does not start with ``_`` is
imported on first use of the package, so adding a mode is adding its module.

Public names: ``Sample``, ``Tools``, ``Param``, ``ModeParams`` (every registered
parameter, built from the declarations), ``MODES``, ``make_mode``,
``mode_param_specs``.  The modes: see each module's docstring (``vanilla``,
``inftythink``, ``summarize``, ``delethink``, ``budget``, ``inftythink_plus``).

Does not know: backends' internals, scheduling, caching, lm-eval.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from inftythink_eval.modes._base import REGISTRY, Decision, Mode, Param, Sample, Tools, all_params, own_params, union_params_class
from inftythink_eval.modes._base import seeded as _seeded  # noqa: F401  (tests check per-call seeds)

for _info in pkgutil.iter_modules(__path__):
    if not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")

MODES: dict[str, type] = {spec.name: spec.cls for spec in sorted(REGISTRY.values(), key=lambda s: s.rank)}
ModeParams = union_params_class()


def mode_param_specs(mode: str | None = None) -> dict[str, tuple[Param, list[str]]]:
    """Declared parameters -> (declaration, modes that read it): of one mode, or of all of them."""
    specs = all_params()
    return specs if mode is None else {k: v for k, v in specs.items() if mode in v[1]}


def make_mode(name: str, tools: Tools, params: Any = None) -> Mode:
    """The registered mode ``name`` with its own parameters taken from ``params`` (``ModeParams`` or a dict)."""
    if name not in MODES:
        raise ValueError(f"unknown mode {name!r}; valid modes: {', '.join(MODES)}")
    spec = REGISTRY[name]
    return spec.cls(tools=tools, params=own_params(spec, ModeParams() if params is None else params))


def engine_thinking(name: str, params: Any = None) -> "tuple[str, str] | None":
    """The (opening, forced end) texts mode ``name`` asks the backend to enforce itself (an engine-side
    thinking budget; a mode declares it with a static ``engine_thinking(params)``), or None."""
    spec = REGISTRY[name]
    hook = getattr(spec.cls, "engine_thinking", None)
    return hook(own_params(spec, ModeParams() if params is None else params)) if hook else None


__all__ = ["MODES", "engine_thinking", "Decision", "Mode", "ModeParams", "Param", "Sample", "Tools", "make_mode", "mode_param_specs"]
