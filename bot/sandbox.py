"""Run untrusted code (a patched kernel's make, and QEMU booting it) in a bubblewrap sandbox.

The only module that calls bwrap. What the sandbox gives a command:
- no network (--unshare-net: only a private loopback, so even 127.0.0.1 on the host is unreachable);
- read-only /usr and /etc, a fresh /tmp, a minimal /dev and /proc; only the binds marked writable can be
  written (the source tree, the build dir, the ccache dir);
- its own pid namespace (--unshare-pid) and --die-with-parent: killing bwrap kills every process inside,
  so a timeout really ends a runaway build; --new-session so it cannot push input to our terminal;
- all capabilities dropped (we run as root in a container; --cap-drop ALL keeps root from remounting);
- a memory limit through the first mechanism that works here (see memory_backend()).

Binds take a fixed path inside the sandbox (e.g. the tree at /src): paths inside the build are then the
same whatever directory CI cloned into, which keeps ccache hits and make's dependency files valid.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from bot.errors import OperationalError

log = logging.getLogger(__name__)

KILL_GRACE = 5.0  # seconds between SIGTERM and SIGKILL on timeout


@dataclass(frozen=True)
class Bind:
    host: Path
    inside: str
    writable: bool = False


@dataclass(frozen=True)
class Sandbox:
    binds: list[Bind] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # the whole environment inside (nothing inherited)
    cwd: str = "/"
    memory_max: int = 8 << 30  # bytes; 0 = no limit
    network: bool = False  # True only for tests of the sandbox itself
    devices: list[str] = field(default_factory=list)  # host device nodes passed in (e.g. /dev/kvm)


@dataclass
class Outcome:
    returncode: int
    seconds: float
    timed_out: bool = False
    oom: bool = False  # the memory limit was hit (cgroup OOM kill or failcnt)
    memory_backend: str = "none"


def bwrap_path() -> str:
    path = shutil.which("bwrap")
    if path is None:
        raise OperationalError("bwrap is not installed: apt-get install bubblewrap")
    return path


def bwrap_args(box: Sandbox) -> list[str]:
    """The bwrap command line (without the command) for `box`."""
    args = [bwrap_path(), "--ro-bind", "/usr", "/usr"]
    for link in ("bin", "lib", "lib64", "sbin"):
        target = Path("/") / link
        if target.is_symlink():  # merged-/usr systems: /bin -> usr/bin
            args += ["--symlink", os.readlink(target), f"/{link}"]
        elif target.is_dir():
            args += ["--ro-bind", str(target), f"/{link}"]
    args += ["--ro-bind", "/etc", "/etc", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    for b in box.binds:
        args += ["--bind" if b.writable else "--ro-bind", str(b.host), b.inside]
    for dev in box.devices:
        args += ["--dev-bind", dev, dev]
    if not box.network:
        args.append("--unshare-net")
    args += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent", "--new-session",
             "--cap-drop", "ALL", "--clearenv", "--chdir", box.cwd]
    for k, v in sorted(box.env.items()):
        args += ["--setenv", k, v]
    return args


# ---------------------------------------------------------------- memory limit


def _mount_point(v2: bool) -> Path | None:
    """Where cgroup2 (v2) or the v1 memory controller is mounted (hybrid hosts have both)."""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return None
    for line in mounts:
        parts = line.split()
        if len(parts) < 4:
            continue
        if v2 and parts[2] == "cgroup2":
            return Path(parts[1])
        if not v2 and parts[2] == "cgroup" and "memory" in parts[3].split(","):
            return Path(parts[1])
    return None


def _own_cgroup(v2: bool) -> Path | None:
    """Our cgroup's directory (v2, or v1 memory controller), if mounted and writable."""
    root = _mount_point(v2)
    if root is None:
        return None
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, ctrls, path = line.split(":", 2)
        if (v2 and ctrls == "") or (not v2 and "memory" in ctrls.split(",")):
            d = root / path.lstrip("/")
            if d.is_dir() and os.access(d, os.W_OK):
                return d
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


@cache
def memory_backend() -> str:
    """How to cap memory here: 'cgroup2' (memory.max), 'cgroup1' (memory.limit_in_bytes), else 'rlimit'.

    systemd-run --scope needs systemd as PID 1, which containers rarely have; a cgroup we create ourselves
    works wherever the cgroup fs is writable. RLIMIT_AS is the last resort: it counts address space, not
    memory, so it has to be generous (gcc and ld map much more than they touch).
    """
    v2 = _own_cgroup(True)
    if v2 is not None and "memory" in _read(v2 / "cgroup.controllers").split():
        return "cgroup2"
    v1 = _own_cgroup(False)
    if v1 is not None and (v1 / "memory.limit_in_bytes").exists():
        return "cgroup1"
    return "rlimit"


def _remove_stale(parent: Path) -> None:
    """Empty cgroups left by a bot process that was killed before its cleanup ran."""
    for d in parent.glob("mm-review-bot-*-*"):
        try:
            owner = int(d.name.split("-")[3])
        except (IndexError, ValueError):
            continue
        if owner != os.getpid() and not Path(f"/proc/{owner}").exists():
            try:
                d.rmdir()  # fails (and is left) while processes are still inside
            except OSError:
                pass


class _Cgroup:
    """A child memory cgroup for one run: created, limited, then removed after killing what is left."""

    def __init__(self, backend: str, limit: int) -> None:
        parent = _own_cgroup(backend == "cgroup2")
        assert parent is not None
        self.backend = backend
        _remove_stale(parent)
        self.path = parent / f"mm-review-bot-{os.getpid()}-{time.monotonic_ns()}"
        self.path.mkdir()
        knob = "memory.max" if backend == "cgroup2" else "memory.limit_in_bytes"
        (self.path / knob).write_text(str(limit))
        if backend == "cgroup1" and (self.path / "memory.memsw.limit_in_bytes").exists():
            try:  # swap too, when the kernel accounts it
                (self.path / "memory.memsw.limit_in_bytes").write_text(str(limit))
            except OSError:
                pass

    def oom(self) -> bool:
        try:
            if self.backend == "cgroup2":
                events = (self.path / "memory.events").read_text()
                return any(line.split()[0] == "oom_kill" and line.split()[1] != "0" for line in events.splitlines())
            control = dict(line.split() for line in _read(self.path / "memory.oom_control").splitlines())
            return int(control.get("oom_kill", "0")) > 0 or int(_read(self.path / "memory.failcnt") or 0) > 0
        except (OSError, ValueError, IndexError):
            return False

    def remove(self) -> None:
        for _ in range(50):
            try:
                pids = [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
            except OSError:
                pids = []
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.1)
        log.warning("could not remove cgroup %s", self.path)


# ---------------------------------------------------------------- running


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """bwrap leads its own process group; with --unshare-pid + --die-with-parent its death ends the rest."""
    for sig, wait in ((signal.SIGTERM, KILL_GRACE), (signal.SIGKILL, 30.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run(box: Sandbox, cmd: list[str], *, timeout: float, log_path: Path) -> Outcome:
    """Run `cmd` in `box`, stdout+stderr appended to log_path; never raises for the command's own failure.

    Timeout: the whole sandbox is killed and Outcome.timed_out is set.
    """
    backend = memory_backend() if box.memory_max else "none"
    cgroup = _Cgroup(backend, box.memory_max) if backend in ("cgroup1", "cgroup2") else None
    argv = bwrap_args(box) + ["--", *cmd]
    if cgroup is not None:
        # Join the cgroup before exec so every descendant is in it from the start.
        argv = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(cgroup.path), *argv]
    elif backend == "rlimit":
        argv = ["prlimit", f"--as={box.memory_max * 4}", "--", *argv]  # address space >> RSS for gcc/ld
    log.debug("sandbox: %s", " ".join(argv))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    timed_out = False
    try:
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
            try:
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_group(proc)
                rc = proc.returncode if proc.returncode is not None else -9
            except BaseException:
                _kill_group(proc)
                raise
        oom = cgroup.oom() if cgroup is not None else False
    finally:
        if cgroup is not None:
            cgroup.remove()
    return Outcome(rc, time.monotonic() - t0, timed_out, oom, backend)
