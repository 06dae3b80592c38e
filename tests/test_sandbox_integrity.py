"""What a sandbox verdict can be trusted for: a pass means the tests ran to the end, runs on one machine do
not share uids, and a setup problem names its real cause.

- A wrong program that exits 0 before the tests run (``unittest.main()``, ``sys.exit(main())``,
  ``os._exit(0)``) fails, through the code task's own judging hook.
- Two processes sandboxing at once get different uids: one's fork bomb does not starve the other's
  correct program (needs root, as the uid drop does).
- A ``TMPDIR`` the sandbox uid cannot enter says so, and how to fix it (needs root).
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from inftythink_eval.scoring import SandboxError, SandboxLimits, hooks, run_python, sandbox

BASE_UID, UID_COUNT = sandbox.BASE_UID, getattr(sandbox, "UID_COUNT", 64)

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="the uid drop needs root (CI runs as root)")
LIMITS = SandboxLimits(wall_s=10, cpu_s=10, memory_mb=1024)

EARLY_EXITS = {
    "unittest_main": "import unittest\nunittest.main()\n",
    "sys_exit_main": "import sys\ndef main():\n    return 0\nsys.exit(main())\n",
    "os_exit": "import os\nos._exit(0)\n",
}


@pytest.fixture(scope="module")
def mbpp_doc():
    return hooks.load_benchmark("mbpp")["test"][0]


@pytest.mark.parametrize("escape", list(EARLY_EXITS))
def test_a_wrong_program_that_exits_0_before_the_tests_fails(escape, mbpp_doc, monkeypatch):
    monkeypatch.setenv("HF_ALLOW_CODE_EVAL", "1")
    response = "```python\ndef solution(*args):\n    return None\n\n" + EARLY_EXITS[escape] + "```"
    (judged,) = hooks.judge_code([[response]], [mbpp_doc])[0]
    assert not judged.correct, f"{escape}: {judged.note}"
    assert "before its last line" in judged.note, judged.note


def test_the_right_program_still_passes(mbpp_doc, monkeypatch):
    monkeypatch.setenv("HF_ALLOW_CODE_EVAL", "1")
    (judged,) = hooks.judge_code([[f"```python\n{mbpp_doc['reference']}\n```"]], [mbpp_doc])[0]
    assert judged.correct, judged.note


def test_only_a_program_that_ran_to_its_last_line_passes():
    early = run_python("import sys\nprint('done')\nsys.exit(0)\n", LIMITS)
    assert not early.passed and early.stdout.strip() == "done" and "before its last line" in early.reason
    assert run_python("print('done')\n", LIMITS).passed
    late = run_python("import atexit, os\natexit.register(lambda: os._exit(0))\nprint('x')\n", LIMITS)
    assert late.passed  # ran to its last line; exiting 0 afterwards is still a clean exit


def _uid_processes() -> dict[int, int]:
    """Live process count per sandbox uid."""
    counts: dict[int, int] = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(l.split(":", 1) for l in status.read_text().splitlines() if ":" in l)
        except OSError:
            continue
        uid = int(fields["Uid"].split()[1])
        if BASE_UID <= uid < BASE_UID + UID_COUNT and not fields["State"].strip().startswith("Z"):
            counts[uid] = counts.get(uid, 0) + 1
    return counts


@needs_root
def test_two_processes_do_not_share_uids_a_fork_bomb_does_not_fail_the_other():
    bomb = ("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n")
    other = subprocess.Popen(
        [sys.executable, "-c", "from inftythink_eval.scoring import run_python, SandboxLimits\n"
                               f"r = run_python({bomb!r}, SandboxLimits(wall_s=8, cpu_s=8, nproc=16))\n"
                               "print(r.reason)\n"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and max(_uid_processes().values(), default=0) < 16:
            time.sleep(0.1)
        busy = [uid for uid, n in _uid_processes().items() if n >= 16]
        assert busy, "the other process's fork bomb never filled its uid"
        threads = "import threading\nt = threading.Thread(target=print, args=('ok',))\nt.start()\nt.join()\n"
        mine = run_python(threads, SandboxLimits(wall_s=8, cpu_s=8, nproc=16))  # a thread counts toward nproc
        assert mine.passed and mine.stdout.strip() == "ok", mine.reason
        assert mine.uid not in busy
    finally:
        out, err = other.communicate(timeout=60)
    assert "timeout" in out, (out, err)


@needs_root
def test_a_private_tmpdir_names_the_real_cause(tmp_path, monkeypatch):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    with pytest.raises(SandboxError) as error:
        run_python("print(1)\n", LIMITS)
    message = str(error.value)
    assert "TMPDIR" in message and str(private) in message and "run as root" not in message, message
    assert not list(private.iterdir()), "the sandbox folder was left behind"
