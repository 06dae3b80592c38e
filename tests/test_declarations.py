"""Modes and backends are declared once, in their own modules: config, help and README derive from it.

The README's two tables are what ``scripts/readme_tables.py`` generates; no module outside ``backends/``
names a backend; ``--help-mode``/``--help-backend`` print every declared key; and a backend written as one
new module is discovered, accepted by ``model_args`` and built, with no other file touched.
"""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import INFTYTHINK_BIN, ROOT
from inftythink_eval.backends.base import backend_names, backend_spec, default_backend
from inftythink_eval.lmeval import describe
from inftythink_eval.lmeval.cli import run_lm_eval
from inftythink_eval.modes import MODES, REGISTRY, mode_param_specs

PACKAGE = ROOT / "inftythink_eval"
FIX = "python scripts/readme_tables.py --write"


def test_readme_tables_are_generated_from_the_declarations():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for name, (start, end) in describe.MARKERS.items():
        assert start in text and end in text, f"README.md lost its {start} ... {end} markers; restore them, then {FIX}"
        table = text.split(start, 1)[1].split(end, 1)[0].strip()
        assert table == describe.TABLES[name](), f"README.md's {name} table is out of date: run {FIX}"
    completed = subprocess.run([sys.executable, str(ROOT / "scripts" / "readme_tables.py"), "--check"],
                               capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr


def backend_literals(path: Path, names: set[str]) -> list[str]:
    """String constants in ``path`` equal to a backend name, docstrings and other bare strings excepted."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    bare = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
    return [f"{path}:{node.lineno}: {node.value!r}" for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and node.value in names and id(node) not in bare]


def test_no_module_outside_backends_names_a_backend():
    names = set(backend_names())
    found = [hit for path in sorted(PACKAGE.rglob("*.py")) if path.relative_to(PACKAGE).parts[0] != "backends"
             for hit in backend_literals(path, names)]
    assert not found, ("these modules name a backend in code; declare what they need in the backend's "
                       "register_backend(...) (backends.base.BackendSpec) instead:\n  " + "\n  ".join(found))


def test_the_literal_check_can_fail(tmp_path):
    sample = tmp_path / "x.py"
    sample.write_text('"""Docstrings may say hf."""\n# so may comments: "hf"\nif backend == "hf":\n'
                      '    x = f"{1}: hf is named in a longer text"\n')
    assert backend_literals(sample, {"hf"}) == [f"{sample}:3: 'hf'"]


def test_every_backend_and_mode_declares_a_summary_and_documents_each_key():
    assert default_backend() in backend_names()
    for name in backend_names():
        spec = backend_spec(name)
        assert spec.summary, f"backend {name}: register_backend(..., summary='one line') is missing"
        docs = describe.field_docs(spec.options)
        undocumented = [f.name for f in dataclasses.fields(spec.options) if not docs.get(f.name)]
        assert not undocumented, f"backend {name}: give each option a docstring: {undocumented}"
    for name in MODES:
        assert REGISTRY[name].summary, f"mode {name}: register(..., summary='one line') is missing"
        assert all(p.doc for p in REGISTRY[name].params), f"mode {name}: every Param needs its doc"


@pytest.mark.parametrize("flag,names,keys", [
    ("--help-backend", backend_names, lambda n: [f.name for f in dataclasses.fields(backend_spec(n).options)]),
    ("--help-mode", lambda: list(MODES), lambda n: list(mode_param_specs(n))),
])
def test_help_prints_every_declared_key(capsys, flag, names, keys):
    for name in names():
        assert run_lm_eval([flag, name]) == 0
        out = capsys.readouterr().out
        missing = [k for k in keys(name) if f"  {k} (" not in out]
        assert not missing, f"{flag} {name} does not print {missing}:\n{out}"
    assert run_lm_eval([f"{flag}=all"]) == 0
    listing = capsys.readouterr().out
    assert all(f"  {name} " in listing for name in names())
    assert run_lm_eval([flag]) == 0 and capsys.readouterr().out == listing


def test_help_with_an_unknown_name_lists_the_valid_ones():
    proc = subprocess.run([INFTYTHINK_BIN, "eval", "--help-backend", "telepathy"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2
    assert "unknown backend 'telepathy'; valid backends: " + ", ".join(backend_names()) in proc.stderr
    proc = subprocess.run([INFTYTHINK_BIN, "eval", "--help-mode=fast"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "valid modes: " + ", ".join(MODES) in proc.stderr


NEW_BACKEND = '''"""``echo``: a backend written as one module, to show that nothing else needs an edit.

Owns: repeating its configuration.  Does not know: anything else.
"""
from dataclasses import dataclass
from typing import Optional

from inftythink_eval.backends.base import register_backend


@dataclass(frozen=True)
class EchoOptions:
    """model_args keys of backend=echo."""

    endpoint: Optional[str] = None
    """Where the echo server listens."""
    loudness: int = 3
    """How loud the echo is."""


register_backend("echo", f"{__name__}:EchoBackend", EchoOptions, install="nothing", needs_pretrained=False,
                 url_key="endpoint", takes_seed=True, extra_keys=lambda: {"reverb"}, extra_doc="reverb=",
                 summary="repeats what it was given")


class EchoBackend:
    name = "echo"

    def __init__(self, **kwargs):
        self.kwargs = kwargs
'''

USE_IT = '''
import sys
import inftythink_eval.backends as backends

backends.__path__.append(sys.argv[1])  # as if echo.py sat in inftythink_eval/backends/

from inftythink_eval.backends.base import backend_names
from inftythink_eval.lmeval.config import parse
from inftythink_eval.lmeval.describe import backends_table, help_backend
from inftythink_eval.lmeval.model import open_backend

print(backend_names())
config = parse({"backend": "echo", "endpoint": "http://127.0.0.1:1/v1", "loudness": "5", "reverb": "2", "seed": 9})
built = open_backend(config, "echo", None, config.url("echo"))
print(sorted(built.kwargs.items(), key=str))
for bad in ({"backend": "echo"}, {"backend": "echo", "endpoint": "u", "echoes": 1}):
    try:
        parse(bad)
    except ValueError as err:
        print(err)
print(help_backend("echo"))
print("`echo`" in backends_table())
'''


def test_a_new_backend_is_one_module(tmp_path):
    """A backend module put beside the others is found by discovery (pkgutil over the package's path, so a
    hand list would miss it), its options become model_args keys, its declared URL key, pass-through keys and
    seed reach its constructor, and help and the README table show it."""
    (tmp_path / "echo.py").write_text(NEW_BACKEND)
    (tmp_path / "use_it.py").write_text(USE_IT)
    proc = subprocess.run([sys.executable, str(tmp_path / "use_it.py"), str(tmp_path)], capture_output=True,
                          text=True, timeout=600)  # bounds a hang only
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0] == str(sorted(backend_names() + ["echo"]))
    assert lines[1] == str([("endpoint", "http://127.0.0.1:1/v1"), ("loudness", 5), ("model_id", None),
                            ("pretrained", None), ("reverb", 2), ("seed", 9)])
    assert lines[2] == "backend=echo needs endpoint=http://HOST:PORT/v1 (the server's URL)"
    assert lines[3].startswith("unknown model_args key(s) echoes for --model inftythink with backend=echo")
    help_text = "\n".join(lines[4:-1])
    assert "needs: no model" in help_text and "  loudness (int, default 3): How loud the echo is." in help_text
    assert "  and reverb=" in help_text and lines[-1] == "True"
