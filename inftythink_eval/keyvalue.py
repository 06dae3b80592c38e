"""The one ``key=value,key=value`` parser: model_args, summariser specs, training overrides, gen_kwargs.

Owns: splitting such text into an ordered ``dict`` of raw strings, joining one back, and reading a raw
value the way lm-eval reads ``model_args`` text (``true``/``false``, integers, floats, else the text).
Errors name what was being parsed and show the expected form.

Does not know: what any key means, or its type; each caller checks its own keys against its declarations.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping


def parse_pairs(text: str | Iterable[str] | None, what: str, example: str = "key=value,key=value") -> dict[str, str]:
    """``"a=1, b=x"`` (or the items ``["a=1", "b=x"]``) -> ``{"a": "1", "b": "x"}``, in order.

    Blank items are skipped; an item without ``=``, an empty key or a key given twice is a
    ``ValueError`` that names ``what`` and shows ``example``.  Values keep their own ``=`` signs
    (``a=b=c`` -> ``{"a": "b=c"}``) and are stripped of surrounding blanks.
    """
    if text is None:
        return {}
    items = text.split(",") if isinstance(text, str) else list(text)
    out: dict[str, str] = {}
    for item in (i.strip() for i in items):
        if not item:
            continue
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ValueError(f"{what}: expected {example}, got {item!r}")
        if key in out:
            raise ValueError(f"{what}: {key} is given twice ({key}={out[key]} and {key}={value.strip()})")
        out[key] = value.strip()
    return out


def format_pairs(pairs: Mapping[str, Any]) -> str:
    """``{"a": 1, "b": "x"}`` -> ``"a=1,b=x"`` (the inverse of ``parse_pairs`` for plain values)."""
    return ",".join(f"{key}={value}" for key, value in pairs.items())


def literal(value: Any) -> Any:
    """A raw value as lm-eval reads model_args text: ``true``/``false`` (any case), ints, floats, else as given."""
    if not isinstance(value, str):
        return value
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value
