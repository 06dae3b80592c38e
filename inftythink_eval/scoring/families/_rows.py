"""Small helpers family modules use to read raw hub/offline rows.

Owns: looking a field up under any of several names, case-insensitively
(hub and offline copies spell columns differently), with or without a default.

Does not know: any family or benchmark.
"""

from __future__ import annotations


def field(row: dict, *names: str):
    """The first of ``names`` present (case-insensitive) and not None; ``KeyError`` listing what the row has."""
    lowered = {k.lower(): v for k, v in row.items()}
    for name in names:
        if name.lower() in lowered and lowered[name.lower()] is not None:
            return lowered[name.lower()]
    raise KeyError(f"none of the fields {names} (it has {sorted(row)})")


def field_or(row: dict, names: tuple, default):
    try:
        return field(row, *names)
    except KeyError:
        return default
