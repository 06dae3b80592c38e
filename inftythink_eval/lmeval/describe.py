"""Modes and backends described from their own declarations: ``--help-mode``, ``--help-backend``, README tables.

Owns: rendering what each mode registers (``modes.REGISTRY``: summary, declared ``Param``s, the module
docstring) and what each backend registers (``backends.base.BackendSpec``: summary, options dataclass with
its field docstrings, pass-through arguments, needs, install) as terminal help and as the two Markdown
tables of README.md (between ``<!-- modes:start -->``/``<!-- modes:end -->`` and
``<!-- backends:start -->``/``<!-- backends:end -->``; ``scripts/readme_tables.py`` writes them).

Does not know: what any mode or backend does beyond what it declares; lm-eval's own flags.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import sys
import textwrap
import typing
from typing import Any

from inftythink_eval.backends.base import BackendSpec, backend_names, backend_spec, default_backend
from inftythink_eval.modes import MODES, REGISTRY

MARKERS = {"modes": ("<!-- modes:start -->", "<!-- modes:end -->"),
           "backends": ("<!-- backends:start -->", "<!-- backends:end -->")}


# --- declarations as rows -------------------------------------------------------
def field_docs(cls: type) -> dict[str, str]:
    """Each dataclass field's docstring (the string literal right after the field), read from the class source."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return {}
    docs: dict[str, str] = {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    for node, after in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(after, ast.Expr) \
                and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str):
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def type_name(hint: Any) -> str:
    inner = [t for t in typing.get_args(hint) if t is not type(None)]
    if inner and len(inner) < len(typing.get_args(hint)):
        return f"optional {type_name(inner[0])}"
    return getattr(hint, "__name__", str(hint))


def shown(value: Any) -> str:
    """A default as model_args text (``true``, ``8192``, ``auto``)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def backend_keys(spec: BackendSpec) -> list[tuple[str, str, Any, str]]:
    """(key, type, default, doc) of each option the backend declares, in declaration order."""
    hints, docs = typing.get_type_hints(spec.options), field_docs(spec.options)
    rows = []
    for f in dataclasses.fields(spec.options):
        default = f.default if f.default is not dataclasses.MISSING else None
        rows.append((f.name, type_name(hints[f.name]), default, docs.get(f.name, "")))
    return rows


def mode_keys(name: str) -> list[tuple[str, str, Any, str]]:
    """(key, type, default, doc) of each parameter the mode declares, in declaration order."""
    return [(p.name, type_name(p.type), p.default, p.doc) for p in REGISTRY[name].params]


def mode_doc(name: str) -> str:
    """The first paragraph of the mode module's docstring."""
    doc = inspect.cleandoc(getattr(sys.modules.get(MODES[name].__module__), "__doc__", None) or "")
    return " ".join(doc.split("\n\n")[0].split())


# --- terminal help --------------------------------------------------------------------
def _keys_text(rows: list[tuple[str, str, Any, str]]) -> list[str]:
    return [f"  {key} ({kind}, default {shown(default) if default is not None else 'none'}): {doc}".rstrip(": ")
            for key, kind, default, doc in rows]


def help_mode(name: str = "all") -> str:
    """``--help-mode NAME`` (one mode) or ``--help-mode`` / ``all`` (the list); ValueError for an unknown name."""
    if name in ("", "all"):
        width = max(len(m) for m in MODES)
        return "\n".join(["modes (mode=NAME; `inftythink eval --help-mode NAME` describes one):"] +
                         [f"  {m:<{width}}  {REGISTRY[m].summary}" for m in MODES])
    if name not in MODES:
        raise ValueError(f"unknown mode {name!r}; valid modes: {', '.join(MODES)} (or all)")
    rows = mode_keys(name)
    lines = [f"mode={name}: {REGISTRY[name].summary}", "", mode_doc(name), ""]
    lines += ["model_args keys of this mode:"] + _keys_text(rows) if rows else ["no model_args keys of its own"]
    return "\n".join(lines)


def help_backend(name: str = "all") -> str:
    """``--help-backend NAME`` (one backend) or ``--help-backend`` / ``all`` (the list); ValueError when unknown."""
    if name in ("", "all"):
        width = max(len(b) for b in backend_names())
        return "\n".join(["backends (backend=NAME; `inftythink eval --help-backend NAME` describes one):"] +
                         [f"  {b:<{width}}  {backend_spec(b).summary}" for b in backend_names(ranked=True)])
    if name not in backend_names():
        raise ValueError(f"unknown backend {name!r}; valid backends: {', '.join(backend_names())} (or all)")
    spec = backend_spec(name)
    missing = spec.missing()
    lines = [f"backend={name}{' (the default)' if name == default_backend() else ''}: {spec.summary}", "",
             f"needs: {'pretrained=<model>' if spec.needs_pretrained else 'no model (pretrained= is optional)'}"
             f"{f', {spec.url_key}=<server URL>' if spec.url_key else ''}",
             f"requires: {', '.join(spec.requires) or 'nothing'} "
             f"({'missing: ' + ', '.join(missing) if missing else 'installed'}); install: {spec.install}", "",
             "model_args keys of this backend:"] + _keys_text(backend_keys(spec))
    if spec.extra_keys is not None:
        lines.append(f"  and {spec.extra_doc or 'the engine its own arguments'}")
    return "\n".join(lines)


# --- README tables ---------------------------------------------------------------------
def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _key_cell(rows: list[tuple[str, str, Any, str]]) -> str:
    keys = ", ".join(f"{key}={shown(default)}" if default is not None else key for key, _kind, default, _doc in rows)
    return f"`{keys}`" if keys else "–"


def modes_table() -> str:
    lines = ["| mode | what happens | main parameters |", "|---|---|---|"]
    lines += [f"| `{m}` | {_cell(REGISTRY[m].summary)} | {_key_cell(mode_keys(m))} |" for m in MODES]
    return "\n".join(lines)


def backends_table() -> str:
    lines = ["| backend | engine | its keys (defaults) |", "|---|---|---|"]
    for b in backend_names(ranked=True):
        spec = backend_spec(b)
        keys = _key_cell(backend_keys(spec)) + (f", and {spec.extra_doc}" if spec.extra_keys is not None else "")
        marked = f"`{b}` (default)" if b == default_backend() else f"`{b}`"
        lines.append(f"| {marked} | {_cell(spec.summary)} | {_cell(keys)} |")
    return "\n".join(lines)


TABLES = {"modes": modes_table, "backends": backends_table}


def readme_with_tables(text: str) -> str:
    """``text`` (README.md) with the text between each pair of markers replaced by the generated table."""
    for name, (start, end) in MARKERS.items():
        if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
            raise ValueError(f"README.md needs one {start} line before one {end} line (around the {name} table)")
        head, rest = text.split(start, 1)
        _old, tail = rest.split(end, 1)
        text = f"{head}{start}\n{TABLES[name]()}\n{end}{tail}"
    return text
