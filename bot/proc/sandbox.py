"""The bubblewrap sandbox for untrusted code (a patched kernel's make, QEMU booting it); bot.proc runs it.

The only module that builds bwrap command lines. What the sandbox gives a command:
- no network (--unshare-net: only a private loopback, so even 127.0.0.1 on the host is unreachable);
- read-only /usr and /etc, a fresh /tmp, a minimal /dev and /proc; only the binds marked writable can be
  written (the source tree, the build dir, the ccache dir);
- its own pid namespace (--unshare-pid) and --die-with-parent: killing bwrap kills every process inside,
  so a timeout really ends a runaway build; --new-session so it cannot push input to our terminal;
- all capabilities dropped (we run as root in a container; --cap-drop ALL keeps root from remounting);
- a memory limit through the first mechanism that works here (bot.proc.cgroup.memory_backend()).

Binds take a fixed path inside the sandbox (e.g. the tree at /src): paths inside the build are then the
same whatever directory CI cloned into, which keeps ccache hits and make's dependency files valid.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from bot.errors import OperationalError
from bot.proc import cgroup

log = logging.getLogger(__name__)


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


def wrap(box: Sandbox, cmd: list[str]) -> tuple[list[str], cgroup.Cgroup | None, str]:
    """(argv, the run's memory cgroup to remove afterwards or None, memory backend) for `cmd` in `box`."""
    backend = cgroup.memory_backend() if box.memory_max else "none"
    group = cgroup.Cgroup(backend, box.memory_max) if backend in ("cgroup1", "cgroup2") else None
    argv = bwrap_args(box) + ["--", *cmd]
    if group is not None:
        # Join the cgroup before exec so every descendant is in it from the start.
        argv = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(group.path), *argv]
    elif backend == "rlimit":
        argv = ["prlimit", f"--as={box.memory_max * 4}", "--", *argv]  # address space >> RSS for gcc/ld
    return argv, group, backend
