"""A range of commits in a git tree as an am-ready mbox, and, when it is a `b4 prep` branch, what b4's tracking
data says about it: its revision, change-id, and the earlier revisions it sent (their sent/ tags).

b4 keeps the cover letter and the tracking JSON (after `--- b4-submit-tracking ---`) in an empty commit at the
start of the series (cover strategy "commit", the default) or at its tip ("tip-commit"), or in the branch's
config ("branch-description"). Read here with git alone: b4's own prep code wants to run in the tree, as the
user, and exits on surprises. Sending a revision tags its commits sent/<change-id>-v<N> (older b4:
sent/<branch name without b4/>-v<N>) with the cover letter, `base-commit:` in it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot import repo as git
from bot.errors import BadInput, UsageError

MARKER = "--- b4-submit-tracking ---"
SENT = "sent/"
GIT_TIMEOUT = 300.0


@dataclass
class Earlier:
    """A revision b4 says was sent: its patches from its sent/ tag, else only its Message-IDs."""

    how: str
    msgids: list[str] = field(default_factory=list)
    mbox: bytes | None = None
    base: str | None = None


@dataclass
class Branch:
    base: str
    start: str  # format-patch start..end (the cover commit left out)
    end: str
    mbox: bytes
    revision: int = 1
    change_id: str | None = None
    tracking: dict[str, Any] = field(default_factory=dict)
    earlier: dict[int, Earlier] = field(default_factory=dict)


def _git(repo: Path, *args: str, check: bool = True) -> str:
    return git.git(repo, *args, timeout=GIT_TIMEOUT, check=check).stdout


def rev_parse(repo: Path, rev: str) -> str | None:
    out = git.git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False, timeout=60)
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def _tracking(text: str) -> dict[str, Any]:
    if MARKER not in text:
        return {}
    _, _, data = text.partition(MARKER)
    try:
        found = json.loads("{" + data.split("{", 1)[1])
    except (IndexError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def format_patch(repo: Path, start: str, end: str, revision: int) -> bytes:
    """start..end as `git format-patch --stdout` writes it, numbered, [PATCH vN n/m] from v2 on."""
    prefix = "PATCH" if revision <= 1 else f"PATCH v{revision}"
    out = git.git(repo, "format-patch", "--stdout", "-n", "--no-signature", f"--subject-prefix={prefix}",
                  f"{start}..{end}", timeout=GIT_TIMEOUT, check=True)
    return out.stdout.encode()


def _cover(repo: Path, base: str, tip: str, commits: list[str]) -> tuple[str, str, dict[str, Any], str]:
    """(start, end, tracking, cover commit): the range without b4's cover letter commit, its tracking data."""
    found = _git(repo, "log", "-z", "--format=%H%n%B", "--fixed-strings", f"--grep={MARKER}", f"{base}..{tip}")
    for entry in filter(None, found.split("\0")):
        sha, _, body = entry.partition("\n")
        tracking = _tracking(body)
        if not tracking:
            continue
        if sha == commits[0]:
            return sha, tip, tracking, sha
        if sha == commits[-1]:
            return base, f"{sha}~1", tracking, sha
        raise BadInput(f"b4's cover letter commit {sha[:12]} is in the middle of the range")
    return base, tip, {}, ""


def cover_mail(repo: Path, sha: str, branch: Branch, count: int) -> bytes:
    """The cover letter `b4 send` would make of the cover commit: [PATCH vN 0/M] title, its text (b4's `#`
    comment lines left out), base-commit: and change-id: under the ---."""
    head = _git(repo, "log", "-1", "--format=%an <%ae>%n%aD%n%B", sha)
    author, date, message = (head.split("\n", 2) + ["", ""])[:3]
    text = message.split(MARKER, 1)[0]
    text = re.sub(r"^#.*\n?", "", text, flags=re.M)
    text = re.sub(r"^>(#.*)$", r"\1", text, flags=re.M).strip()
    title, _, body = text.partition("\n")
    prefix = "PATCH" if branch.revision <= 1 else f"PATCH v{branch.revision}"
    tail = f"base-commit: {branch.base}\n" + (f"change-id: {branch.change_id}\n" if branch.change_id else "")
    mail = (f"From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\nFrom: {author}\nDate: {date}\n"
            f"Subject: [{prefix} 0/{count}] {title.strip()}\n\n{body.strip()}\n\n---\n{tail}\n")
    return mail.encode()


def read_range(repo: Path, spec: str) -> Branch:
    """BASE..TIP of the tree at `repo` (TIP defaults to HEAD) as patches, with b4's tracking data if any."""
    if ".." not in spec or "..." in spec:
        raise UsageError(f"--range wants BASE..TIP, not {spec!r}")
    base_rev, tip_rev = spec.split("..", 1)
    if not (repo / ".git").exists() and rev_parse(repo, "HEAD") is None:
        raise UsageError(f"--repo {repo} is not a git tree")
    base, tip = rev_parse(repo, base_rev or "HEAD"), rev_parse(repo, tip_rev or "HEAD")
    for name, value in ((base_rev, base), (tip_rev or "HEAD", tip)):
        if value is None:
            raise BadInput(f"--range: no commit {name!r} in {repo}")
    assert base is not None and tip is not None
    commits = _git(repo, "rev-list", "--reverse", f"{base}..{tip}").split()
    if not commits:
        raise BadInput(f"--range {spec}: no commits between {base[:12]} and {tip[:12]}")
    start, end, tracking, cover = _cover(repo, base, tip, commits)
    branch_name = tip_rev if tip_rev and tip_rev != "HEAD" else _git(repo, "branch", "--show-current").strip()
    if not tracking and branch_name:  # cover strategy "branch-description"
        out = git.git(repo, "config", f"branch.{branch_name}.b4-tracking", check=False, timeout=60).stdout
        tracking = _tracking(MARKER + out) if out.strip() else {}
    series = tracking.get("series", {}) if isinstance(tracking.get("series"), dict) else {}
    found = series.get("revision")
    revision = found if isinstance(found, int) and 0 < found <= 999 else 1
    if start == end or not _git(repo, "rev-list", f"{start}..{end}").split():
        raise BadInput(f"--range {spec}: only b4's cover letter, no patches")
    mbox = format_patch(repo, start, end, revision)
    branch = Branch(base, start, end, mbox, revision, series.get("change-id"), tracking)
    if cover:
        count = len(_git(repo, "rev-list", f"{start}..{end}").split())
        branch.mbox = cover_mail(repo, cover, branch, count) + mbox
    branch.earlier = earlier_revisions(repo, branch, branch_name)
    return branch


def earlier_revisions(repo: Path, branch: Branch, branch_name: str) -> dict[int, Earlier]:
    """Each revision before this one that the tracking history lists, from its sent/ tag when there is one."""
    history = branch.tracking.get("series", {}).get("history", {})
    out: dict[int, Earlier] = {}
    for key, msgids in history.items() if isinstance(history, dict) else []:
        m = re.fullmatch(r"v(\d+)", str(key))
        if m is None or not 0 < int(m.group(1)) < branch.revision:
            continue
        version = int(m.group(1))
        ids = [str(x).strip().strip("<>") for x in msgids] if isinstance(msgids, list) else []
        earlier = Earlier(f"v{version} (sent; no sent/ tag)", ids)
        names = [branch.change_id or "", branch_name.removeprefix("b4/")]
        for tag in [f"{SENT}{n}-v{version}" for n in names if n]:
            end = rev_parse(repo, tag)
            if end is None:
                continue
            message = _git(repo, "cat-file", "-p", tag, check=False)
            found = re.search(r"^base-commit:\s*([0-9a-f]{7,40})\s*$", message, re.M)
            base = rev_parse(repo, found.group(1)) if found else None
            if base is not None:
                earlier = Earlier(f"tag {tag}", ids, format_patch(repo, base, end, version), base)
                break
        out[version] = earlier
    return dict(sorted(out.items()))


def prep_branch(repo: Path) -> Branch | None:
    """The b4 prep branch checked out in `repo` (what `b4 prep --check` runs its commands in), or None when
    HEAD is not one: its cover letter commit (strategy "commit": the series starts after it; "tip-commit":
    it is HEAD, the series starts at the fork point from its base branch)."""
    found = git.git(repo, "log", "-1", "--format=%H", "--fixed-strings", f"--grep={MARKER}", "HEAD",
                    check=False, timeout=60).stdout.strip()
    if not found:
        return None
    head = rev_parse(repo, "HEAD")
    if found != head:
        return read_range(repo, f"{found}~1..HEAD")
    tracking = _tracking(_git(repo, "log", "-1", "--format=%B", found))
    base_branch = tracking.get("series", {}).get("base-branch")
    if not isinstance(base_branch, str) or rev_parse(repo, base_branch) is None:
        return None
    fork = _git(repo, "merge-base", base_branch, "HEAD", check=False).strip()
    return read_range(repo, f"{fork}..HEAD") if fork else None
