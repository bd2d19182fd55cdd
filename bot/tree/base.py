"""Which commit a revision is applied to: the first rule that finds one wins (Base.source records which).

  1. base-commit: given by the caller (the cover letter's trailer), else a `base-commit:` line in the mbox,
     if that commit is in the tree;
  2. blobs: a commit on the candidate branches whose files have the patches' preimage blob ids
     (`index abc..def`), branch heads first, then their history;
  3. branch:<name>: each candidate branch head in order (the caller takes the first where the series applies).
Rules 1 and 2 name the base the author used, so a series that does not apply there fails there.
"""

from __future__ import annotations

import pygit2

from bot.config import Config
from bot.patches import Series
from bot.repo import base_branches
from bot.results import Base

MAX_WALK = 2000  # commits per branch searched by the blobs rule



def _has_blobs(commit: pygit2.Commit, want: dict[str, str]) -> bool:
    tree = commit.tree
    for path, abbrev in want.items():
        try:
            entry = tree[path]
        except KeyError:
            return False
        if not str(entry.id).startswith(abbrev):
            return False
    return True


def preimages(series: Series) -> dict[str, str]:
    """path -> preimage blob of the first patch that touches it (later patches see our own changes)."""
    want: dict[str, str] = {}
    seen: set[str] = set()
    for p in series.patches:
        for f in p.files:
            if f.old and f.old not in seen and f.preimage:
                want[f.old] = f.preimage
            seen.update(x for x in (f.old, f.new) if x)
    return want


def find_by_blobs(repo: pygit2.Repository, branches: list[tuple[str, str]], want: dict[str, str]) -> str | None:
    if not want:
        return None
    # Cheap check first: one of the heads.
    for _name, head in branches:
        if _has_blobs(repo[head].peel(pygit2.Commit), want):
            return head
    for _name, head in branches:
        try:
            for i, commit in enumerate(repo.walk(head, pygit2.enums.SortMode.TOPOLOGICAL)):
                if i >= MAX_WALK:
                    break
                if _has_blobs(commit, want):
                    return str(commit.id)
        except (KeyError, pygit2.GitError):  # shallow history ends
            continue
    return None


def resolve_commit(repo: pygit2.Repository, rev: str) -> str | None:
    try:
        return str(repo.revparse_single(rev).peel(pygit2.Commit).id)
    except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError):
        return None


def select_base(
    config: Config, repo: pygit2.Repository, series: Series, base_commit: str | None, notes: list[str]
) -> list[Base]:
    """Bases to try, in rule order. Rules 1 and 2 return one definite base; rule 3 all branch heads."""
    branches = base_branches(config, repo)
    for given, origin in ((base_commit, "caller"), (series.base_commit, "mbox")):
        if not given:
            continue
        commit = resolve_commit(repo, given)
        if commit:
            return [Base(commit, "base-commit")]
        notes.append(f"base-commit {given} ({origin}) is not in the tree")
    want = preimages(series)
    if commit := find_by_blobs(repo, branches, want):
        return [Base(commit, "blobs")]
    notes.append(
        f"no commit has the preimage blobs of {len(want)} file(s)" if want else "the patches carry no preimage blob ids"
    )
    return [Base(c, f"branch:{name}") for name, c in branches]
