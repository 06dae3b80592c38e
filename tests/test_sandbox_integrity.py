"""What a sandbox verdict can be trusted for: a pass means the tests ran to the end, runs on one machine do
not share uids, and a setup problem names its real cause.

- A wrong program that exits 0 before the tests run (``unittest.main()``, ``sys.exit(main())``,
  ``os._exit(0)``) fails, through the code task's own judging hook.
- Two processes sandboxing at once get different uids: one's fork bomb does not starve the other's
  correct program (needs root, as the uid drop does).
- A ``TMPDIR`` the sandbox uid cannot enter says so, and how to fix it (needs root).
"""

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import HANG_S, wait_until
from inftythink_eval.scoring import SandboxError, SandboxLimits, hooks, run_python, sandbox
from inftythink_eval.scoring.codecheck import check_code_many
from inftythink_eval.scoring.families import code as code_family

BASE_UID, UID_COUNT = sandbox.BASE_UID, sandbox.UID_COUNT

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="the uid drop needs root (CI runs as root)")
LIMITS = SandboxLimits(wall_s=HANG_S, cpu_s=HANG_S, memory_mb=1024)   # every program here ends by itself

EARLY_EXITS = {
    "unittest_main": "import unittest\nunittest.main()\n",
    "sys_exit_main": "import sys\ndef main():\n    return 0\nsys.exit(main())\n",
    "os_exit": "import os\nos._exit(0)\n",
}


@pytest.fixture(scope="module")
def mbpp_doc():
    return hooks.load_benchmark("mbpp")["test"][0]


@pytest.fixture
def code_hooks(monkeypatch):
    """The code task's real judging hook, consented, with sandbox limits that only bound a hang."""
    monkeypatch.setenv("HF_ALLOW_CODE_EVAL", "1")
    monkeypatch.setattr(code_family, "check_code_many", functools.partial(check_code_many, limits=LIMITS))


@pytest.mark.parametrize("escape", list(EARLY_EXITS))
def test_a_wrong_program_that_exits_0_before_the_tests_fails(escape, mbpp_doc, code_hooks):
    response = "```python\ndef solution(*args):\n    return None\n\n" + EARLY_EXITS[escape] + "```"
    (judged,) = hooks.judge_code([[response]], [mbpp_doc])[0]
    assert not judged.correct, f"{escape}: {judged.note}"
    assert "before its last line" in judged.note, judged.note


def test_the_right_program_still_passes(mbpp_doc, code_hooks):
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
    scanned = set()
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(l.split(":", 1) for l in status.read_text().splitlines() if ":" in l)
        except OSError:
            continue  # it ended between the listing and the read
        scanned.add(int(status.parent.name))
        uid = int(fields["Uid"].split()[1])
        if BASE_UID <= uid < BASE_UID + UID_COUNT and not fields["State"].strip().startswith("Z"):
            counts[uid] = counts.get(uid, 0) + 1
    assert os.getpid() in scanned, "the scan of /proc read nothing"  # so an empty count means something
    return counts


@needs_root
def test_two_processes_do_not_share_uids_a_fork_bomb_does_not_fail_the_other():
    """Another process's fork bomb fills its uid's 16 processes and keeps them, spinning, until this test has
    run its own program (which needs 2 of 16) and let it go: no limit decides when the bomb stops."""
    folder = Path(tempfile.mkdtemp(prefix="itt-bomb-"))
    folder.chmod(0o755)  # the bomb's uid reads the release file from here
    release = folder / "release"
    bomb = (f"import os\ntop = os.getpid()\nwhile not os.path.exists({str(release)!r}):\n"
            "    try:\n        os.fork()\n    except OSError:\n        pass\n"
            "if os.getpid() != top:\n    os._exit(0)  # only the first process goes on to the last line\n")
    other = subprocess.Popen(
        [sys.executable, "-c", "from inftythink_eval.scoring import run_python, SandboxLimits\n"
                               f"r = run_python({bomb!r}, SandboxLimits(wall_s={HANG_S}, cpu_s={HANG_S}, nproc=16))\n"
                               "print(r.uid, r.reason)\n"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: max(_uid_processes().values(), default=0) >= 16 or other.poll() is not None,
                   "the other process's fork bomb to fill its uid")
        busy = [uid for uid, n in _uid_processes().items() if n >= 16]
        assert busy, "the other process's fork bomb never filled its uid"
        threads = "import threading\nt = threading.Thread(target=print, args=('ok',))\nt.start()\nt.join()\n"
        mine = run_python(threads, SandboxLimits(wall_s=HANG_S, cpu_s=HANG_S, nproc=16))  # a thread counts toward nproc
        still_full = [uid for uid in busy if _uid_processes().get(uid, 0) >= 16]
    finally:
        release.touch()
        try:
            out, err = other.communicate(timeout=HANG_S)
        finally:
            other.kill()
            shutil.rmtree(folder)
    bomb_uid, bomb_reason = out.split(maxsplit=1)
    assert mine.passed and mine.stdout.strip() == "ok", mine.reason
    assert int(bomb_uid) in busy and mine.uid != int(bomb_uid), (busy, mine.uid, out)
    assert int(bomb_uid) in still_full, "the bomb was not running beside my program"  # mine ran beside it
    assert bomb_reason.strip() == "passed", (out, err)  # it ran until released, not into a limit


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


def test_a_program_whose_forked_copies_also_reach_the_end_passes():
    """Four processes (two forks) each wait for their children and then run the last line: every one of them
    leaves the end-of-program token, and that is a pass, not an early exit."""
    code = ("import os\n[os.fork() for _ in range(2)]\nwhile True:\n    try:\n        os.wait()\n"
            "    except ChildProcessError:\n        break\n")
    result = run_python(code, SandboxLimits(wall_s=HANG_S, cpu_s=HANG_S, memory_mb=1024, isolate=False))
    assert result.passed and result.reason == "passed", result
