"""Packaging: the wheel carries the start-up hook, tasks and zoo; the hook is cheap and registers lazily."""

from __future__ import annotations

import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

from conftest import ROOT, run_cli

HEAVY = ("torch", "transformers", "lm_eval", "datasets")


def test_startup_hook_imports_nothing_heavy():
    code = ("import sys; print(','.join(sorted({m.split('.')[0] for m in sys.modules if m.split('.')[0] in %r})));"
            "print(any(type(f).__name__ == '_Watcher' for f in sys.meta_path))" % (HEAVY,))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "", f"the start-up hook imported {out[0]}"
    assert out[1] == "True", "the start-up hook is not installed (is inftythink_eval_hook.pth in site-packages?)"


def test_registration_keeps_builtin_models_and_adds_ours():
    code = ("from lm_eval.api.registry import get_model, model_registry;"
            "print(get_model('inftythink').__name__, get_model('hf').__name__, 'vllm' in model_registry)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "InftyThinkLM HFLM True"


def test_wheel_installs_hook_tasks_and_zoo(tmp_path):
    run_cli([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(ROOT)], timeout=900)
    wheel = next((tmp_path / "dist").glob("inftythink_eval-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "inftythink_eval_hook.pth" in names
    assert any(n.startswith("inftythink_eval/tasks/") and n.endswith(".yaml") for n in names)
    assert any(n.startswith("inftythink_eval/_zoo/") and n.endswith(".yaml") for n in names)
    env = tmp_path / "venv"
    python = _venv_seeing_our_dependencies(env)
    run_cli([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], timeout=900)
    code = ("import inftythink_eval, lm_eval.tasks as t; tm = t.TaskManager();"
            "print(inftythink_eval.__file__); print('inftythink_math500' in tm.all_tasks, 'inftythink_paper' in tm.all_tasks);"
            "from inftythink_eval.checkpoints.cards import zoo_dir; print(zoo_dir())")
    out = run_cli([str(python), "-c", code], cwd=tmp_path).stdout.splitlines()
    assert str(env) in out[0], "the wheel's package should shadow the checkout"
    assert out[1] == "True True"
    assert str(env) in out[2]


def _venv_seeing_our_dependencies(env: Path) -> Path:
    """A fresh venv (no system site-packages) that sees the running environment's packages *after* its own.

    A user's venv holds lm_eval, torch, ... in its own site-packages, not in the system Python's, so
    ``system_site_packages=True`` would find nothing there. A ``.pth`` file in the new venv appends the running
    interpreter's site-packages folders as plain paths: the wheel installed into the new venv comes first, and the
    running environment's ``.pth`` files (the checkout's editable install) are not processed.
    """
    venv.create(env, system_site_packages=False, with_pip=True)
    python = env / "bin" / "python"
    own = subprocess.run([str(python), "-c", "import site; print(site.getsitepackages()[0])"],
                         capture_output=True, text=True, check=True).stdout.strip()
    parents = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (Path(own) / "_running_env.pth").write_text("".join(p + "\n" for p in parents))
    return python


def test_file_map_lists_every_tracked_file():
    """docs/files.md keeps a file map with one line per file: every file git tracks starts a line of it."""
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    listed = {line.split()[0] for line in (ROOT / "docs" / "files.md").read_text(encoding="utf-8").splitlines() if line.strip()}
    missing = [f for f in tracked if f not in listed]
    assert not missing, f"add these to docs/files.md (one line each: path, then what it is): {missing}"


def test_readme_stays_a_short_guide():
    """The README is read by a newcomer in a few minutes: the two commands, a map of the packages, no file list."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text) < 16_000, f"README.md is {len(text)} characters; move reference material to docs/"
    for heading in ("## The two commands", "## Map of the packages", "## Leaderboard"):
        assert heading in text, f"README.md lost its section {heading!r}"
    assert "docs/files.md" in text
