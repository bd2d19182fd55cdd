"""The reproduce script of one revision on one arch: the base, the series as posted (b4), then the build and
boot commands exactly as the bot recorded them. It is a file a reviewer downloads and runs, so everything from
a mail is either a comment stripped to printable text on one line or a shell-quoted word."""

from __future__ import annotations

import shlex
from pathlib import Path

from bot.dashboard.details import one_line
from bot.results import RevisionResult, SeriesSummary


def _short(cmd: str) -> str:
    """Absolute paths (the bot's own files) shortened to their names, as in the reply."""
    return " ".join(Path(t).name if t.startswith("/") else t for t in cmd.strip().split(" "))


def commands(r: RevisionResult, arch: str) -> list[dict[str, str]]:
    """The recorded commands of this arch: what they do and the command line, in order."""
    out = []
    build, boot = r.stages.build.get(arch), r.stages.boot.get(arch)
    if build is not None and build.command:
        out.append({"what": "build", "command": one_line(_short(build.command))})
    if boot is not None and boot.command and boot.status != "skipped":
        out.append({"what": "boot with the reclaim-stress /init", "command": one_line(_short(boot.command))})
    return out


def reproduce(series: SeriesSummary, r: RevisionResult, arch: str, cmds: list[dict[str, str]],
              config: str = "") -> str:
    """The script running cmds (commands(r, arch)); `config` names the kernel config beside it, if any."""
    base = r.base.commit or ""
    lines = [
        "#!/bin/sh",
        f"# mm-review-bot: reproduce v{r.version} on {arch} of",
        f"#   {one_line(series.subject)[:200]}",
        "# Run it at the top of a Linux kernel git tree, with b4 installed. The config fragments and the",
        f"# boot-{arch}.cpio initramfs (stress program, mm selftests runner and binaries) are the bot's",
        "# (bot/build/kconfig/, bot/boot/ in its repository; the initramfs is not kept after the boot).",
    ]
    if config:
        lines.append(f"# The kernel config the build ended with is {config}, beside this script.")
    lines.append("set -eu")
    if base:
        lines.append(f"git checkout --detach {shlex.quote(base)}   # the base (chosen by: "
                     f"{one_line(r.base.source or 'unknown')})")
    lines.append(f"b4 shazam {shlex.quote(r.message_id)}   # the series as posted")
    for c in cmds:
        lines += [f"# {c['what']}", c["command"]]
    return "\n".join(lines) + "\n"
