"""The package's layout rules (issue 20), read from the source with ``ast``: parts import only parts below
them, no import circle, no module over 400 lines, every module says what it owns and what it does not know.

Imports inside functions count: a lazy import is still an arrow between parts.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "inftythink_eval"

# Each part of the package and its layer: a module may import its own part and parts on lower layers only.
LAYERS = {
    "keyvalue": 0,      # the one key=value parser
    "formats": 0,       # protocol formats: strings, parsers, templates
    "backends": 1,      # generation engines behind one protocol
    "run": 2,           # the engine's value types: sample, trace, cache, output
    "checkpoints": 2,   # the zoo's code
    "modes": 3,         # one file per mode
    "scoring": 3,       # answer checking, task hooks, benchmark rows
    "data": 3,          # the dataset builder
    "training": 4,      # SFT recipe and its config
    "engine": 4,        # the round loop and prompt rendering
    "results": 5,       # leaderboard code: records, store, tables, compare, regress
    "lmeval": 6,        # the lm-eval adapter
    "cli": 7,           # the `inftythink` command
    "__init__": 7,      # the package's lazy public nouns
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def _part(module: str) -> str:
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else "__init__"


def _imports(module: str) -> set[str]:
    """Package modules ``module`` imports anywhere in its body (``from X import Y`` counts X, and X.Y if a module)."""
    out = set()
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(MODULES[module].read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        out |= {n for n in names if n in MODULES and n != module}
    return out


GRAPH = {m: _imports(m) for m in MODULES}


def test_every_part_has_a_layer():
    unknown = sorted({_part(m) for m in MODULES} - set(LAYERS))
    assert not unknown, f"new parts {unknown}: give each a layer in LAYERS (what may it import, what imports it?)"


def test_no_upward_import():
    upward = [f"{a} -> {b}" for a, bs in GRAPH.items() for b in sorted(bs)
              if _part(a) != _part(b) and LAYERS.get(_part(b), 99) >= LAYERS.get(_part(a), -1)]
    assert not upward, "imports that reach a part on the same or a higher layer:\n  " + "\n  ".join(upward)


def test_no_import_circle():
    state: dict[str, int] = {}
    stack: list[str] = []
    circles: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(GRAPH[m]):
            if state.get(n) == 1:
                circles.append(" -> ".join(stack[stack.index(n):] + [n]))
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            visit(m)
    # a package's __init__ that re-exports its own modules is not a circle unless a module imports the __init__ back
    assert not circles, "import circles:\n  " + "\n  ".join(circles)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_is_small_and_says_what_it_owns(module):
    path = MODULES[module]
    text = path.read_text(encoding="utf-8")
    lines = text.count("\n") + 1
    assert lines <= 400, f"{path.relative_to(PACKAGE.parent)} has {lines} lines; split it by concern (limit 400)"
    doc = ast.get_docstring(ast.parse(text)) or ""
    assert "Owns:" in doc and "Does not know:" in doc, \
        f"{path.relative_to(PACKAGE.parent)}: its docstring needs an 'Owns:' and a 'Does not know:' paragraph"


def test_the_layout_checks_can_fail():
    """The rules above are checked on a graph built from real source: a known arrow exists and a fake upward
    arrow would be reported (so a broken parser that finds no imports cannot pass silently)."""
    assert "inftythink_eval.engine.loop" in MODULES and GRAPH["inftythink_eval.engine.loop"], "no imports found"
    assert any(_part(b) == "modes" for b in GRAPH["inftythink_eval.engine.loop"])
    fake = {"inftythink_eval.formats.inftythink": {"inftythink_eval.lmeval.model"}}
    assert [a for a, bs in fake.items() for b in bs if LAYERS[_part(b)] >= LAYERS[_part(a)]]
