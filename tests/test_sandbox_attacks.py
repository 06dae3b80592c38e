"""The code sandbox under attack: each attack is contained, the sample fails with a reason, the run goes on.

Attacks run in parallel (``run_many``) with a 3 s wall limit.  The isolation
that needs root (network namespace, read-only file system, uid drop) is
tested when running as root, as CI does; without root those tests are
reported as skipped with the reason.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from inftythink_eval.scoring import SandboxLimits, run_many, run_python
from inftythink_eval.scoring.sandbox import BASE_UID, UID_COUNT

REPO = Path(__file__).resolve().parents[1]
LIMITS = SandboxLimits(wall_s=3, cpu_s=3, memory_mb=1024)
ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="namespaces and the uid drop need root (CI runs as root)")


@pytest.fixture(scope="module")
def outside():
    """A world-writable folder any user can reach: only the read-only mount protects it."""
    folder = Path(tempfile.mkdtemp(prefix="itt-outside-"))
    (folder / "keep.txt").write_text("precious")
    folder.chmod(0o777)
    (folder / "keep.txt").chmod(0o666)
    yield folder
    shutil.rmtree(folder)


@pytest.fixture(scope="module")
def attacks(outside):
    os.environ["INFTYTHINK_TEST_SECRET"] = "hunter2"
    programs = {
        "fork_bomb": "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
        "infinite_loop": "while True:\n    pass\n",
        "allocate_10gb": "block = bytearray(10 * 1024 ** 3)\n",
        "write_outside": f"open({str(outside / 'pwned.txt')!r}, 'w').write('x')\n",
        "overwrite_outside": f"open({str(outside / 'keep.txt')!r}, 'w').write('gone')\n",
        "write_tmp": "open('/tmp/inftythink-sandbox-pwned', 'w').write('x')\n",
        "read_secret": "import os\nassert 'INFTYTHINK_TEST_SECRET' not in os.environ\nraise SystemExit(7)\n",
        "open_socket": "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=2)\n",
        "delete_tree": f"import shutil\nshutil.rmtree({str(REPO / 'tasks')!r})\n",
        "big_file": "open('big.bin', 'wb').write(b'x' * (64 << 20))\n",
        "escape_group": "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\n",
        "writes_locally": "open('scratch.txt', 'w').write('ok')\nassert open('scratch.txt').read() == 'ok'\n",
    }
    results = run_many(list(programs.values()), LIMITS)
    return dict(zip(programs, results))


def test_fork_bomb_is_contained(attacks):
    assert not attacks["fork_bomb"].passed and "timeout" in attacks["fork_bomb"].reason


def test_infinite_loop_is_killed(attacks):
    assert not attacks["infinite_loop"].passed and attacks["infinite_loop"].wall_s < 10


def test_10gb_allocation_fails(attacks):
    assert not attacks["allocate_10gb"].passed and "memory" in attacks["allocate_10gb"].reason


def test_environment_is_stripped(attacks):
    result = attacks["read_secret"]
    assert result.returncode == 7 and "AssertionError" not in result.stderr


def test_file_size_limit(attacks):
    assert not attacks["big_file"].passed and "File too large" in attacks["big_file"].reason


def test_own_folder_is_writable(attacks):
    assert attacks["writes_locally"].passed


def _sandbox_processes() -> list[str]:
    """Live (non-zombie) processes owned by a sandbox uid."""
    uids, live = set(range(BASE_UID, BASE_UID + UID_COUNT)), []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(l.split(":", 1) for l in status.read_text().splitlines() if ":" in l)
        except OSError:
            continue
        if int(fields["Uid"].split()[1]) in uids and not fields["State"].strip().startswith("Z"):
            live.append(f"{status.parent.name} {fields['State'].strip()} {fields['Name'].strip()}")
    return live


def test_nothing_is_left_running(attacks):
    deadline = time.monotonic() + 5
    while _sandbox_processes() and time.monotonic() < deadline:  # the kernel reaps a PID namespace asynchronously
        time.sleep(0.1)
    assert not _sandbox_processes(), "sandbox processes survived"
    assert not list(Path(tempfile.gettempdir()).glob("inftythink-sandbox-*")), "temporary folders were not removed"


@needs_root
def test_writes_outside_the_folder_fail(attacks, outside):
    for name in ("write_outside", "overwrite_outside", "write_tmp"):
        assert not attacks[name].passed, name
        assert "Read-only file system" in attacks[name].reason or "Permission denied" in attacks[name].reason, name
    for name in ("write_outside", "overwrite_outside"):  # world-writable: only the read-only mount stops these
        assert "Read-only file system" in attacks[name].reason, name
    assert not (outside / "pwned.txt").exists() and (outside / "keep.txt").read_text() == "precious"
    assert not Path("/tmp/inftythink-sandbox-pwned").exists()


@needs_root
def test_working_tree_survives_deletion(attacks):
    assert not attacks["delete_tree"].passed and (REPO / "tasks" / "_base" / "utils.py").is_file()


@needs_root
def test_no_network(attacks):
    assert not attacks["open_socket"].passed and "unreachable" in attacks["open_socket"].reason


@needs_root
def test_killing_the_parent_fails_and_the_harness_goes_on():
    harness = ("import os, sys\n"
               "from inftythink_eval.scoring import run_python, SandboxLimits\n"
               "attack = f'import os, signal\\nos.kill({os.getpid()}, signal.SIGKILL)\\n'\n"
               "result = run_python(attack, SandboxLimits(wall_s=5))\n"
               "print('harness alive:', result.passed, result.reason)\n")
    done = subprocess.run([sys.executable, "-c", harness], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    # the harness's pid does not even exist inside the sample's PID namespace
    assert "harness alive: False" in done.stdout
    assert "ProcessLookupError" in done.stdout or "PermissionError" in done.stdout


def test_limits_are_validated():
    with pytest.raises(ValueError, match="wall_s must be > 0"):
        SandboxLimits(wall_s=0)


def test_passing_program_reports_passed():
    result = run_python("print(sum(range(10)))\n", LIMITS)
    assert result.passed and result.reason == "passed" and result.stdout.strip() == "45"


def test_limits_only_mode_still_contains_loops_and_memory():
    """What a non-root user gets (isolate=False): resource limits, own session, stripped env, temp folder.

    Each limit is tested where only it can fire, so the verdicts do not depend on the machine's load
    (a busy loop under equal CPU and wall limits ends by either, whichever the scheduler lets fire first).
    """
    cpu_bound = SandboxLimits(wall_s=120, cpu_s=1, memory_mb=1024, isolate=False)  # the CPU limit fires first
    wall_bound = SandboxLimits(wall_s=2, cpu_s=60, memory_mb=1024, isolate=False)  # a sleeper uses no CPU
    loop, memory, ok = run_many(["while True:\n    pass\n", "b = bytearray(10 * 1024 ** 3)\n", "print('x')\n"],
                                cpu_bound)
    (sleeper,) = run_many(["import time\ntime.sleep(60)\n"], wall_bound)
    assert not loop.passed and "(CPU 1 s or memory limit)" in loop.reason and loop.wall_s < 120, loop
    assert not sleeper.passed and "timeout" in sleeper.reason and sleeper.wall_s < 30, sleeper
    assert "memory" in memory.reason and ok.passed
