"""The grid of an ``inftythink sweep``: which (mode, parameters) points to run.

Owns: the grid syntax (``MODE:key=v1,v2;key=v3``, one ``--grid`` per mode, the cartesian product of the
value lists) and its YAML file form, ``GridPoint`` (one point: a mode and its typed parameter values,
its label and folder name), and checking every name and value against the modes' own declarations
(``modes.MODES``, ``modes.mode_param_specs``) before anything runs.  ``max_gen_toks`` is the one key
that is not a mode parameter: the task's token budget (vanilla's only budget), passed to lm-eval as
``--gen_kwargs``.

Does not know: lm-eval, the store, how points are run or resumed (``sweep``).
"""

from __future__ import annotations

import itertools
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional

from inftythink_eval.keyvalue import literal, parse_pairs

BUDGET_KEY = "max_gen_toks"
SYNTAX = "MODE:key=v1,v2;key=v3 (e.g. summarize:eta=64,128;max_rounds=4, or vanilla:max_gen_toks=256,512)"


class GridError(ValueError):
    """A grid names an unknown mode or parameter, or a value of the wrong type."""


@dataclass(frozen=True)
class GridPoint:
    """One point of a sweep: a mode and its parameter values (in the mode's declared order, ``max_gen_toks`` last)."""

    mode: str
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def label(self) -> str:
        """``summarize eta=128 max_rounds=4``."""
        return " ".join([self.mode] + [f"{k}={v}" for k, v in self.params])

    @property
    def slug(self) -> str:
        """A folder name for the point (``summarize-eta=128-max_rounds=4``)."""
        return re.sub(r"[^A-Za-z0-9._=-]+", "_", "-".join([self.mode] + [f"{k}={v}" for k, v in self.params]))

    def model_params(self) -> dict[str, Any]:
        """The point's mode parameters (they go into ``model_args``)."""
        return {k: v for k, v in self.params if k != BUDGET_KEY}

    def gen_kwargs(self) -> dict[str, Any]:
        """The point's ``--gen_kwargs`` (``max_gen_toks`` when the grid sets it)."""
        return {k: v for k, v in self.params if k == BUDGET_KEY}

    def to_dict(self) -> dict:
        return {"mode": self.mode, "params": dict(self.params)}

    @classmethod
    def from_dict(cls, data: dict) -> "GridPoint":
        return cls(str(data["mode"]), tuple((str(k), v) for k, v in (data.get("params") or {}).items()))


def _modes():
    from inftythink_eval.modes import MODES, mode_param_specs

    return MODES, mode_param_specs


def valid_keys(mode: str) -> dict[str, Any]:
    """{key: its Param (None for ``max_gen_toks``)} a grid of ``mode`` may set."""
    _, specs = _modes()
    return {**{name: param for name, (param, _users) in specs(mode).items()}, BUDGET_KEY: None}


def _check_mode(mode: str, where: str) -> None:
    modes, _ = _modes()
    if mode not in modes:
        raise GridError(f"{where}: unknown mode {mode!r}; valid modes: {', '.join(modes)}. Expected {SYNTAX}")


def coerce(mode: str, key: str, raw: Any, where: str) -> Any:
    """``raw`` (text, or a YAML scalar) as the value its declaration takes; ``GridError`` says what is expected."""
    keys = valid_keys(mode)
    if key not in keys:
        own = [k for k in keys if k != BUDGET_KEY]
        raise GridError(f"{where}: mode {mode} has no parameter {key!r}; its parameters: "
                        f"{', '.join(own) or '(none)'}, and {BUDGET_KEY} (the task's token budget, sent as --gen_kwargs)")
    param = keys[key]
    kind, optional = (int, False) if param is None else _kind(param.type)
    text = str(raw).strip()
    if optional and text.lower() in ("none", "null"):
        return None
    value = literal(text) if kind is not str else text
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise GridError(f"{where}: {key} takes {kind.__name__} values{' or none' if optional else ''}, got {text!r}")
    minimum = 1 if param is None else param.minimum
    if minimum is not None and value < minimum:
        raise GridError(f"{where}: {key} must be >= {minimum:g}, got {value}")
    return value


def _kind(hint: Any) -> tuple[type, bool]:
    inner = [t for t in typing.get_args(hint) if t is not type(None)]
    return (inner[0], True) if inner else (hint, False)


def _product(mode: str, axes: dict[str, list[Any]], where: str) -> list[GridPoint]:
    for key, values in axes.items():
        if not values:
            raise GridError(f"{where}: {key} has no values; expected {SYNTAX}")
    order = list(valid_keys(mode))  # declared order, max_gen_toks last: one spelling per point
    names = sorted(axes, key=order.index)
    points = [GridPoint(mode, tuple(zip(names, combo))) for combo in itertools.product(*(axes[n] for n in names))]
    for point in points:
        check_point(point, where)
    return points


def check_point(point: GridPoint, where: str, base: Optional[dict] = None) -> None:
    """The mode's own cross-parameter checks (``register(validate=...)``) on the point's values over ``base``."""
    from inftythink_eval.modes import ModeParams

    values = {**(base or {}), **point.model_params()}
    try:
        ModeParams(**values)
    except (TypeError, ValueError) as exc:
        raise GridError(f"{where}: the point {point.label} is not a valid {point.mode} setting: {exc}") from exc


def parse_grid(text: str) -> list[GridPoint]:
    """``"summarize:eta=64,128;max_rounds=4"`` -> the points (summarize eta=64 max_rounds=4), (eta=128 ...)."""
    where = f"--grid {text!r}"
    mode, _, body = str(text).partition(":")
    mode = mode.strip()
    _check_mode(mode, where)
    pairs = parse_pairs(body.split(";"), where, SYNTAX) if body.strip() else {}
    axes = {key: [coerce(mode, key, v, where) for v in raw.split(",") if v.strip()] for key, raw in pairs.items()}
    return _product(mode, axes, where)


def parse_entry(entry: Any, where: str) -> list[GridPoint]:
    """One entry of a grid file: ``{mode: M, key: value-or-list, ...}`` or a ``--grid`` string."""
    if isinstance(entry, str):
        return parse_grid(entry)
    if not isinstance(entry, dict) or "mode" not in entry:
        raise GridError(f"{where}: expected a mapping with 'mode' (e.g. {{mode: summarize, eta: [64, 128], "
                        f"max_rounds: 4}}) or a string {SYNTAX}, got {entry!r}")
    mode = str(entry["mode"])
    _check_mode(mode, where)
    axes = {str(k): [coerce(mode, str(k), v, where) for v in (vs if isinstance(vs, list) else [vs])]
            for k, vs in entry.items() if k != "mode"}
    return _product(mode, axes, where)


def load_grid_file(path: Path) -> list[GridPoint]:
    """A YAML grid file: a list of entries, or ``{grid: [entries]}``."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise GridError(f"--grid-file {path}: cannot be read as YAML ({exc})") from exc
    entries = data.get("grid") if isinstance(data, dict) else data
    if not isinstance(entries, list) or not entries:
        raise GridError(f"--grid-file {path}: expected a list of entries (or 'grid:' holding one), each "
                        "{mode: summarize, eta: [64, 128], max_rounds: 4} or a string like the --grid flag")
    return [p for i, entry in enumerate(entries, 1) for p in parse_entry(entry, f"--grid-file {path} entry {i}")]


def expand(grids: Iterable[str] = (), grid_file: Optional[Path] = None) -> list[GridPoint]:
    """Every point of the ``--grid`` flags and the grid file, in order, each once."""
    points = [p for text in grids for p in parse_grid(text)]
    if grid_file is not None:
        points += load_grid_file(grid_file)
    if not points:
        raise GridError(f"the sweep has no points: give --grid {SYNTAX} (once per mode) or --grid-file FILE")
    unique = list(dict.fromkeys(points))
    slugs = [p.slug for p in unique]
    clash = sorted({s for s in slugs if slugs.count(s) > 1})
    if clash:
        raise GridError(f"points {', '.join(clash)} share a folder name; write each value once")
    return unique
