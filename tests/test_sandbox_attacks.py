"""The code sandbox under attack: each attack is contained, the sample fails with a reason, the run goes on.

All attacks run at once, each in its own sandbox.  The ones that never end on their own (fork bomb,
busy loop) get a 3 s wall limit and a CPU limit far above it, so the wall limit is the one that ends
them; every other attack ends by itself (an error, an exit) and gets limits that only bound a hang, so
none of them races a limit on a loaded machine while the fork bomb spins beside it.  The isolation that
needs root (network namespace, read-only file system, PID namespace, uid drop) is tested when running as
root, as CI does; without root those tests are reported as skipped with the reason.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import HANG_S, wait_until
from inftythink_eval.scoring import SandboxLimits, run_python

REPO = Path(__file__).resolve().parents[1]
LIMITS = SandboxLimits(wall_s=HANG_S, cpu_s=HANG_S, memory_mb=1024)   # for programs that end by themselves
STOPPED = SandboxLimits(wall_s=3, cpu_s=HANG_S, memory_mb=1024)       # for programs only the wall limit ends
ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="namespaces and the uid drop need root (CI runs as root)")


def _run_each(jobs: dict[str, tuple[str, SandboxLimits]]) -> dict:
    """Every (program, limits) at the same time, each in its own sandbox; results by name."""
    with ThreadPoolExecutor(len(jobs)) as threads:
        futures = {name: threads.submit(run_python, code, limits) for name, (code, limits) in jobs.items()}
        return {name: future.result() for name, future in futures.items()}


@pytest.fixture(scope="module")
def sandbox_tmp():
    """A private TMPDIR for this module's sandboxes: their folders and processes are told apart from those
    of any other sandbox on the machine (other test runs, other evaluations)."""
    folder = Path(tempfile.mkdtemp(prefix="itt-attacks-"))
    folder.chmod(0o711)  # the sandbox uid must pass through it to its own folder
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tempfile, "tempdir", str(folder))
        yield folder
    shutil.rmtree(folder, ignore_errors=True)


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
def attacks(outside, sandbox_tmp):
    os.environ["INFTYTHINK_TEST_SECRET"] = "hunter2"
    stopped = {
        "fork_bomb": "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
        "infinite_loop": "while True:\n    pass\n",
    }
    ending = {
        "allocate_10gb": "block = bytearray(10 * 1024 ** 3)\n",
        "write_outside": f"open({str(outside / 'pwned.txt')!r}, 'w').write('x')\n",
        "overwrite_outside": f"open({str(outside / 'keep.txt')!r}, 'w').write('gone')\n",
        "write_tmp": "open('/tmp/inftythink-sandbox-pwned', 'w').write('x')\n",
        "read_secret": "import os\nassert 'INFTYTHINK_TEST_SECRET' not in os.environ\nraise SystemExit(7)\n",
        "open_socket": "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=2)\n",
        "delete_tree": f"import shutil\nshutil.rmtree({str(REPO / 'tasks')!r})\n",
        "big_file": "open('big.bin', 'wb').write(b'x' * (64 << 20))\n",
        "writes_locally": "open('scratch.txt', 'w').write('ok')\nassert open('scratch.txt').read() == 'ok'\n",
    }
    if ROOT:  # a child in its own session outlives its run unless the PID namespace (root only) takes it down
        ending["escape_group"] = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(600)\n"
    try:
        return _run_each({**{name: (code, STOPPED) for name, code in stopped.items()},
                          **{name: (code, LIMITS) for name, code in ending.items()}})
    finally:
        del os.environ["INFTYTHINK_TEST_SECRET"]


def test_fork_bomb_is_contained(attacks):
    result = attacks["fork_bomb"]
    assert not result.passed and result.reason == "timeout: over the 3 s wall-clock limit", result.reason


def test_infinite_loop_is_killed(attacks):
    result = attacks["infinite_loop"]
    assert not result.passed and result.reason == "timeout: over the 3 s wall-clock limit", result.reason
    assert result.wall_s >= STOPPED.wall_s  # it ran until the limit, not into some early error


def test_10gb_allocation_fails(attacks):
    assert not attacks["allocate_10gb"].passed and "memory" in attacks["allocate_10gb"].reason


def test_environment_is_stripped(attacks):
    result = attacks["read_secret"]
    assert result.returncode == 7 and "AssertionError" not in result.stderr


def test_file_size_limit(attacks):
    assert not attacks["big_file"].passed and "File too large" in attacks["big_file"].reason


def test_own_folder_is_writable(attacks):
    assert attacks["writes_locally"].passed


def _processes() -> dict[int, tuple[str, str]]:
    """Every readable live process: pid -> (state, environment block)."""
    found = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(l.split(":", 1) for l in status.read_text().splitlines() if ":" in l)
            environ = (status.parent / "environ").read_bytes().decode("utf-8", "replace")
        except OSError:
            continue  # it ended between the listing and the read
        found[int(status.parent.name)] = (fields["State"].strip(), environ)
    assert os.getpid() in found, "the scan of /proc read nothing"  # so an empty answer below means something
    return found


def _sandboxed_under(folder: Path) -> list[str]:
    """Live (non-zombie) processes started by a sandbox whose folder is under ``folder``: its TMPDIR says so."""
    mark = f"TMPDIR={folder}{os.sep}"
    return [f"{pid} {state}" for pid, (state, environ) in _processes().items()
            if mark in environ and not state.startswith("Z")]


def test_temporary_folders_are_removed(attacks, sandbox_tmp):
    assert not list(sandbox_tmp.glob("inftythink-sandbox-*")), "temporary folders were not removed"


def test_nothing_is_left_running(attacks, sandbox_tmp):
    """No process of any attack survives its run (the fork bomb's children; as root also escape_group's
    setsid child, which sleeps 600 s if it does).

    The scan is shown to see a live sandbox process first, so finding none afterwards is evidence."""
    release = sandbox_tmp / "release"
    waiter = f"import os, time\nwhile not os.path.exists({str(release)!r}):\n    time.sleep(0.05)\n"
    with ThreadPoolExecutor(1) as thread:
        running = thread.submit(run_python, waiter, LIMITS)
        try:
            wait_until(lambda: _sandboxed_under(sandbox_tmp) or running.done(), "the waiter to start")
            assert _sandboxed_under(sandbox_tmp), running.result()
        finally:
            release.touch()
        assert running.result().passed
    release.unlink()
    # the kernel reaps a dead PID namespace asynchronously: wait for it, a hang only is a failure
    wait_until(lambda: not _sandboxed_under(sandbox_tmp), f"sandbox processes survived: {_sandboxed_under(sandbox_tmp)}")
    assert not list(sandbox_tmp.glob("inftythink-sandbox-*")), "temporary folders were not removed"


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
               f"result = run_python(attack, SandboxLimits(wall_s={HANG_S}))\n"
               "print('harness alive:', result.passed, result.reason)\n")
    done = subprocess.run([sys.executable, "-c", harness], capture_output=True, text=True, timeout=HANG_S)
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
    cpu_bound = SandboxLimits(wall_s=HANG_S, cpu_s=1, memory_mb=1024, isolate=False)  # the CPU limit fires first
    wall_bound = SandboxLimits(wall_s=2, cpu_s=HANG_S, memory_mb=1024, isolate=False)  # a sleeper uses no CPU
    roomy = SandboxLimits(wall_s=HANG_S, cpu_s=HANG_S, memory_mb=1024, isolate=False)  # only memory can fire
    got = _run_each({"loop": ("while True:\n    pass\n", cpu_bound),
                     "sleeper": ("import time\ntime.sleep(600)\n", wall_bound),
                     "memory": ("b = bytearray(10 * 1024 ** 3)\n", roomy),
                     "ok": ("print('x')\n", roomy)})
    loop, sleeper, memory, ok = got["loop"], got["sleeper"], got["memory"], got["ok"]
    assert not loop.passed and "(CPU 1 s or memory limit)" in loop.reason, loop
    assert not sleeper.passed and sleeper.reason == "timeout: over the 2 s wall-clock limit", sleeper
    assert sleeper.wall_s >= 2, sleeper
    assert not memory.passed and memory.reason.startswith("memory:"), memory
    assert ok.passed and ok.stdout == "x\n" and ok.uid is None, ok
