"""Packaging: the wheel carries the start-up hook, tasks and zoo; the hook is cheap and registers lazily."""

from __future__ import annotations

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
    venv.create(env, system_site_packages=True, with_pip=True)
    python = env / "bin" / "python"
    run_cli([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], timeout=900)
    code = ("import inftythink_eval, lm_eval.tasks as t; tm = t.TaskManager();"
            "print(inftythink_eval.__file__); print('inftythink_math500' in tm.all_tasks, 'inftythink_paper' in tm.all_tasks);"
            "from inftythink_eval.zoo import zoo_dir; print(zoo_dir())")
    out = run_cli([str(python), "-c", code], cwd=tmp_path).stdout.splitlines()
    assert str(env) in out[0], "the wheel's package should shadow the checkout"
    assert out[1] == "True True"
    assert str(env) in out[2]


def test_readme_file_tree_lists_every_tracked_file():
    """README.md keeps a file tree with one line per file: every file git tracks starts a line of it."""
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    listed = {line.split()[0] for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines() if line.strip()}
    missing = [f for f in tracked if f not in listed]
    assert not missing, f"add these to README.md's file tree (one line each): {missing}"
