"""Sandbox launcher, run as ``python -I -S _jail.py CONFIG_JSON``: confine, then exec the program.

Owns: the steps between "a fresh process" and "untrusted code runs":
as root, new mount/network/PID/IPC namespaces (no network at all, every
mount read-only except the sandbox folder, and every process of the
sample dies with the namespace's first process), resource limits (CPU
seconds, address space, file size, process count, open files, no core
dumps), dropping to the unprivileged uid the caller leased, parent-death signal,
then ``execve`` of the program with the stripped environment.  Not root:
limits only.  Exit status 125 with a "jail:" line on stderr means the
confinement itself failed (the caller must not score that as a sample).

Stdlib only, no package imports: it runs with ``-I -S``.
Does not know: tests, scoring, what the program is.
"""

import ctypes
import json
import os
import resource
import signal
import sys

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWPID = 0x00020000, 0x08000000, 0x40000000, 0x20000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG = 1
_KEEP_WRITABLE_PREFIXES = ("/proc", "/sys", "/dev/pts")
_MUST_BE_READONLY = ("/", "/tmp", "/dev/shm", "/var/tmp", "/work", "/root", "/home")

_libc = ctypes.CDLL(None, use_errno=True)


def fail(message: str) -> None:
    os.write(2, f"jail: {message}\n".encode())
    os._exit(125)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        fail(f"{what} failed: {os.strerror(ctypes.get_errno())}")


def _mount_points() -> list:
    points = []
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            raw = line.split()[4]
            points.append(raw.encode().decode("unicode_escape"))  # \040 -> space
    return points


def isolate(workdir: str, binds: list) -> None:
    """New namespaces; everything read-only except ``workdir``; ``binds``: [source, target] read-only views."""
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC), "unshare")
    _check(_libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "make / private")
    _check(_libc.mount(workdir.encode(), workdir.encode(), None, MS_BIND, None), "bind sandbox folder")
    for source, target in binds:  # e.g. the interpreter when it lives under a folder the uid cannot enter
        _check(_libc.mount(source.encode(), target.encode(), None, MS_BIND | MS_REC, None), f"bind {source}")
    for point in reversed(_mount_points()):
        if point == workdir or point == "/dev" or point.startswith(_KEEP_WRITABLE_PREFIXES):
            continue
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV
        if _libc.mount(None, point.encode(), None, flags, None) != 0 and point in _MUST_BE_READONLY:
            _check(-1, f"read-only remount of {point}")


def apply_limits(limits: dict) -> None:
    table = {"cpu_s": resource.RLIMIT_CPU, "as_bytes": resource.RLIMIT_AS, "fsize_bytes": resource.RLIMIT_FSIZE,
             "nproc": resource.RLIMIT_NPROC, "nofile": resource.RLIMIT_NOFILE}
    for key, which in table.items():
        if limits.get(key) is not None:
            resource.setrlimit(which, (int(limits[key]), int(limits[key])))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def become(uid: int) -> None:
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PDEATHSIG)")


def run_child(config: dict) -> None:
    apply_limits(config["limits"])
    if config.get("uid") is not None:
        become(config["uid"])
    os.chdir(config["workdir"])
    os.execve(config["argv"][0], config["argv"], config["env"])


def main() -> None:
    config = json.loads(sys.argv[1])
    if not config.get("isolate"):
        try:
            run_child(config)
        except OSError as exc:
            fail(f"exec failed: {exc}")
    isolate(config["workdir"], config.get("binds", []))
    pid = os.fork()  # the child is PID 1 of the new namespace: when it dies, all the sample's processes die
    if pid == 0:
        try:
            run_child(config)
        except OSError as exc:
            fail(f"exec failed: {exc}")
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        os._exit(128 + os.WTERMSIG(status))
    os._exit(os.WEXITSTATUS(status))


if __name__ == "__main__":
    main()
