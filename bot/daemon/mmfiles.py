"""Which files are memory management: the MAINTAINERS "MEMORY MANAGEMENT*" sections of the kernel tree.

MAINTAINERS is read from the tree's base branch through git objects (no checkout: others build from
the work tree). Pattern syntax as in MAINTAINERS: `F:` a path, a directory ending in `/` (everything
below it), or a glob (`*` and `?` stay within one path component); `N:` a regex on the path; `X:` excludes.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

import pygit2

from bot.config import Config
from bot.repo import base_branches, read_files

log = logging.getLogger(__name__)


def _glob_re(pattern: str) -> re.Pattern[str]:
    """A MAINTAINERS F:/X: pattern as a regex on a repo-relative path."""
    if pattern.endswith("/"):
        return re.compile(re.escape(pattern) + ".*")
    out = ""
    for ch in pattern:
        out += {"*": "[^/]*", "?": "[^/]"}.get(ch, re.escape(ch))
    # A glob or path naming a directory (no trailing slash) also covers what is below it, as get_maintainer does.
    return re.compile(out + "(?:/.*)?")


@dataclass
class Section:
    name: str
    files: list[re.Pattern[str]] = field(default_factory=list)
    regexes: list[re.Pattern[str]] = field(default_factory=list)
    excludes: list[re.Pattern[str]] = field(default_factory=list)

    def matches(self, path: str) -> bool:
        if any(x.fullmatch(path) for x in self.excludes):
            return False
        return any(f.fullmatch(path) for f in self.files) or any(r.search(path) for r in self.regexes)


@dataclass
class MMFiles:
    sections: list[Section]
    source: str  # where the patterns came from, for the log and status

    def match(self, paths: list[str]) -> list[str]:
        return [p for p in paths if any(s.matches(p) for s in self.sections)]


def parse_maintainers(text: str, prefix: str = "MEMORY MANAGEMENT") -> list[Section]:
    """The sections whose title starts with prefix, with their F:, N: and X: patterns."""
    sections: list[Section] = []
    current: Section | None = None
    title = ""
    for line in text.splitlines():
        if not line.strip():
            current, title = None, ""
            continue
        m = re.match(r"^([A-Z]):\s*(.*?)\s*$", line)
        if m is None:
            if current is None and not title:
                title = line.strip()
                if title.startswith(prefix):
                    current = Section(title)
                    sections.append(current)
            continue
        if current is None:
            continue
        kind, value = m.groups()
        if kind == "F":
            current.files.append(_glob_re(value))
        elif kind == "X":
            current.excludes.append(_glob_re(value))
        elif kind == "N":
            try:
                current.regexes.append(re.compile(value))
            except re.error:
                log.warning("MAINTAINERS %s: bad N: regex %r ignored", current.name, value)
    return sections


def extra_section(patterns: list[str]) -> Section:
    return Section("[daemon] patterns", files=[_glob_re(p) for p in patterns])


def load(config: Config) -> MMFiles:
    """MM patterns from the kernel tree's MAINTAINERS plus [daemon] patterns; the config alone without a tree."""
    extra = extra_section(config.daemon.patterns)
    try:
        repo = pygit2.Repository(str(config.paths.kernel_tree))
        branches = base_branches(config, repo)
        if not branches:
            raise LookupError("no base branch")
        name, commit = branches[0]
        text = read_files(config, commit, ["MAINTAINERS"]).get("MAINTAINERS")
        if text is None:
            raise LookupError(f"no MAINTAINERS on {name}")
    except (pygit2.GitError, LookupError, KeyError, OSError) as e:
        log.warning("kernel tree %s not usable (%s): using [daemon] patterns only (%d)",
                    config.paths.kernel_tree, e, len(config.daemon.patterns))
        return MMFiles([extra], f"[daemon] patterns only ({e})")
    sections = parse_maintainers(text, config.daemon.maintainers_sections)
    log.info("mm files: %d MAINTAINERS sections from %s + %d configured patterns",
             len(sections), name, len(config.daemon.patterns))
    return MMFiles([*sections, extra], f"MAINTAINERS at {name} ({len(sections)} sections)")
