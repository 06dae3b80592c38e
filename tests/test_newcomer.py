"""The README's test command as a newcomer runs it: a relative INFTYTHINK_DATA_DIR, a venv that is not on PATH.

Tests start ``lm_eval`` and ``inftythink`` in temporary folders; the data folder must still be found there
(``conftest`` resolves it once, before any test changes directory), and the console scripts are those of the
Python running the tests, not whatever PATH offers.
"""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import DATA_DIR, INFTYTHINK_BIN, ROOT


def test_subprocess_in_another_folder_finds_the_data_and_our_scripts(tmp_path):
    code = "import os, pathlib; print(pathlib.Path(os.environ['INFTYTHINK_DATA_DIR'], 'math500', 'test.jsonl').is_file())"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "True", os.environ["INFTYTHINK_DATA_DIR"]
    done = subprocess.run([INFTYTHINK_BIN, "--help"], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0 and "eval" in done.stdout, done.stderr[-2000:]


def test_readme_command_with_a_relative_data_dir():
    """``INFTYTHINK_DATA_DIR=../shared/data python -m pytest`` from the checkout, the venv not activated."""
    relative = os.path.relpath(DATA_DIR, ROOT)
    env = {**os.environ, "INFTYTHINK_DATA_DIR": relative, "PATH": "/usr/bin:/bin"}
    test = "tests/test_newcomer.py::test_subprocess_in_another_folder_finds_the_data_and_our_scripts"
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
