"""What every mode shares: parameter declarations and the registry.

Owns: ``Param`` (one declared mode parameter: name, type, default,
docstring, lower bound), ``register`` (a mode module registers its class and
its parameters), the frozen parameter dataclasses built from those
declarations, and the small helpers several modes use (per-call seeds).

Does not know: any one mode's rules, backends' internals, scheduling, lm-eval.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping, Optional, Sequence

from inftythink_eval.backends.base import SamplingParams
from inftythink_eval.formats.inftythink import DEFAULT_MAX_ROUNDS, DEFAULT_ROUND_TOKENS
from inftythink_eval.run.sample import Decision, Mode, Sample, Tools  # noqa: F401  (modes import them from here)
from inftythink_eval.run.trace import REASON, RETRY, SUMMARY, CallRecord


# --- parameters --------------------------------------------------------------
@dataclass(frozen=True)
class Param:
    """One mode parameter, as ``model_args`` accepts it (``name=value``)."""

    name: str
    type: Any              # int, float, bool or str, or Optional[...] of one
    default: Any
    doc: str
    minimum: Optional[float] = None
    key: bool = False      # shown beside the mode in leaderboard tables even at its default

    def check(self, value: Any) -> None:
        if value is None and type(None) in typing.get_args(self.type):
            return
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"{self.name} must be >= {self.minimum:g}, got {value}")


# Declared once here because several modes share them (same name, type and default).
MAX_ROUNDS = Param("max_rounds", int, DEFAULT_MAX_ROUNDS, "most reasoning rounds (iterations) per sample", 1, key=True)
ROUND_TOKENS = Param("round_tokens", int, DEFAULT_ROUND_TOKENS, "most tokens per round", 1, key=True)

Validator = Callable[[dict], dict]


@dataclass(frozen=True)
class ModeSpec:
    """A registered mode: its class, its parameters, an optional cross-parameter check, its rank in listings."""

    name: str
    cls: type
    params: tuple[Param, ...]
    validate: Optional[Validator]
    rank: int
    params_class: type
    summary: str = ""
    """One line: what the mode does (``--help-mode`` and the README's table show it)."""


REGISTRY: dict[str, ModeSpec] = {}


def register(name: str, params: Sequence[Param] = (), validate: Optional[Validator] = None, rank: int = 100,
             summary: str = ""):
    """Class decorator: make ``cls`` the mode ``name`` with these declared parameters and a one-line summary
    (default: the first line of the mode module's docstring).

    ``validate(values) -> values`` may check several parameters together and
    resolve defaults that depend on others; it raises ``ValueError`` with the fix.
    """
    def decorate(cls: type) -> type:
        if name in REGISTRY:
            raise ValueError(f"mode {name!r} is registered twice ({REGISTRY[name].cls.__module__} and {cls.__module__})")
        for p in params:
            _check_same(p, name)
        klass = params_class(f"{cls.__name__}Params", params, [validate] if validate else [],
                             f"Parameters of mode {name}.")
        REGISTRY[name] = ModeSpec(name, cls, tuple(params), validate, rank, klass, summary or _first_line(cls))
        cls.name = name
        return cls
    return decorate


def _first_line(cls: type) -> str:
    import sys

    doc = getattr(sys.modules.get(cls.__module__), "__doc__", None) or cls.__doc__ or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _check_same(param: Param, mode: str) -> None:
    for spec in REGISTRY.values():
        for other in spec.params:
            if other.name == param.name and (other.type, other.default) != (param.type, param.default):
                raise ValueError(f"mode {mode!r} declares {param.name} as {param.type}={param.default!r}, "
                                 f"but mode {spec.name!r} declares it as {other.type}={other.default!r}; "
                                 "a shared parameter needs one type and default (or rename it)")


def params_class(class_name: str, params: Sequence[Param], validators: Sequence[Validator], doc: str) -> type:
    """A frozen dataclass with one field per parameter; construction checks bounds, then each validator."""
    unique = list({p.name: p for p in params}.values())

    def __post_init__(self) -> None:
        values = {p.name: getattr(self, p.name) for p in unique}
        for p in unique:
            p.check(values[p.name])
        for validate in validators:
            values = validate(values)
        for key, value in values.items():
            object.__setattr__(self, key, value)

    fields = [(p.name, p.type, dataclasses.field(default=p.default)) for p in unique]
    cls = dataclasses.make_dataclass(class_name, fields, frozen=True, namespace={"__post_init__": __post_init__})
    cls.__doc__ = doc + "\n\n" + "\n".join(f"{p.name} ({_type_name(p.type)}, default {p.default!r}): {p.doc}"
                                           for p in unique)
    cls.__module__ = __name__
    return cls


def _type_name(hint: Any) -> str:
    inner = [t for t in typing.get_args(hint) if t is not type(None)]
    return f"optional {inner[0].__name__}" if inner else getattr(hint, "__name__", str(hint))


def all_params() -> dict[str, tuple[Param, list[str]]]:
    """Every declared parameter name -> (its declaration, the modes that read it), in mode rank order."""
    out: dict[str, tuple[Param, list[str]]] = {}
    for spec in sorted(REGISTRY.values(), key=lambda s: s.rank):
        for p in spec.params:
            out.setdefault(p.name, (p, []))[1].append(spec.name)
    return out


def union_params_class() -> type:
    """``ModeParams``: one frozen dataclass with the parameters of every registered mode."""
    specs = sorted(REGISTRY.values(), key=lambda s: s.rank)
    params = [p for spec in specs for p in spec.params]
    validators = [spec.validate for spec in specs if spec.validate]
    return params_class("ModeParams", params, validators, "Parameters of every mode (each mode reads its own).")


def own_params(spec: ModeSpec, params: Any) -> Any:
    """The mode's own parameter dataclass, taken from ``params`` (a ``ModeParams`` or a mapping)."""
    if isinstance(params, spec.params_class):
        return params
    get = params.get if isinstance(params, Mapping) else (lambda k, d: getattr(params, k, d))
    return spec.params_class(**{p.name: get(p.name, p.default) for p in spec.params})


# --- helpers shared by modes -------------------------------------------------
def seeded(params: SamplingParams, call_index: int) -> SamplingParams:
    """Each call of a sample gets its own reproducible seed (kept in the cache key)."""
    if params.seed is None:
        return params
    return replace(params, seed=(params.seed * 1_000_003 + call_index) % (2**31 - 1))


def reasons(calls: list[CallRecord]) -> list[CallRecord]:
    return [c for c in calls if c.role in (REASON, RETRY)]


def trailing_retries(calls: list[CallRecord]) -> int:
    count = 0
    for c in reversed(calls):
        if c.role != RETRY:
            break
        count += 1
    return count


def last_summary(calls: list[CallRecord]) -> Optional[str]:
    """The last summary's text, without the summariser's thinking (``formats.inftythink.summary_text``)."""
    from inftythink_eval.formats.inftythink import summary_text

    return next((summary_text(c.output) for c in reversed(calls) if c.role == SUMMARY), None)
