"""A fix against the patch it fixes: for each `Fixes: <sha> ("<subject>")` line, the walk exits as the fixed
patch left them vs as this revision leaves them (stages.walkdiff.fixes, `against: "fixes:<sha12>"`).

Where the fixed patch comes from:
- the kernel tree's history, when the sha is a commit there (an ancestor of this revision's base; with
  `[tree] source = "git"` it usually is): tree mode when this revision applied, the files as the fixed
  commit left them against this revision's;
- else the archive, by its subject: the pipeline's lookup (a FindFixed handed to the runner, since a stage
  package does not import bot.fetch) finds the patch mail of that subject in the latest revision of the
  series that carried it; hunks mode, each side's hunks as posted.
Only functions that both the fixed patch and this revision change are compared: other commits in between
changed the rest.
"""

from __future__ import annotations

from bot import repo
from bot.config import Config
from bot.errors import OperationalError
from bot.patches import FixesTag, Series, fixes_tags, parse_diff
from bot.results import FindFixed, FixesWalkdiff, RevisionResult, WalkdiffResult
from bot.walkdiff.modes import C_SUFFIXES, changed_functions, walkdiff_hunks, walkdiff_tree


def fixes_walkdiffs(config: Config, series: Series, result: RevisionResult, find: FindFixed
                    ) -> list[FixesWalkdiff]:
    """One entry per Fixes: line in the revision's patches (each line once, in patch order)."""
    out: list[FixesWalkdiff] = []
    seen: set[str] = set()
    for patch in series.patches:
        for tag in fixes_tags(patch.body):
            if tag.line not in seen:
                seen.add(tag.line)
                out.append(_against_fixed(config, tag, patch.index, series, result, find))
    return out


def _against_fixed(config: Config, tag: FixesTag, index: int, series: Series, result: RevisionResult,
                   find: FindFixed) -> FixesWalkdiff:
    res = FixesWalkdiff("skipped", "", line=tag.line, patch=index, sha=tag.sha, subject=tag.subject,
                        revision=f"v{result.version}")
    if tag.problem or tag.sha is None or tag.subject is None:
        res.status, res.detail = "failed", f"patch {index}: {tag.problem}"
        return res
    res.against = f"fixes:{tag.sha[:12]}"
    base = result.base.commit
    commit = repo.ancestor(config, tag.sha, base) if base else None
    if commit is not None:
        res.source, res.found = "git", commit
        diff = _from_git(config, commit, series, result)
    else:
        try:
            fixed = find(tag.subject)
        except OperationalError as e:  # the archive did not answer: retried on the next run (not finished)
            res.status, res.detail = "error", f"looking up the patch it fixes on the archive: {e}"
            return res
        if fixed is None:
            res.detail = (f"the patch it fixes ({tag.sha[:12]} \"{tag.subject}\") was not found: not in the kernel "
                          "tree's history, and no patch with that subject on the archive")
            return res
        res.source, res.found, res.version = "archive", fixed.message_id, fixed.version
        diff = walkdiff_hunks(series.bodies(), [fixed.body], config.walkdiff, revision=res.revision or "",
                              against=res.against, fixes=True)
    for name in ("status", "detail", "mode", "partial", "functions", "notes"):
        setattr(res, name, getattr(diff, name))
    if diff.status == "skipped" and diff.functions == []:
        res.detail = "this revision changes no walk function that the patch it fixes changed"
    return res


def _from_git(config: Config, commit: str, series: Series, result: RevisionResult) -> WalkdiffResult:
    """The fixed commit from the tree: whole files when this revision applied, else both as hunks."""
    fixed_body = repo.commit_patch(config, commit)
    branch = result.stages.apply.branch
    if result.stages.apply.status != "ok" or not branch or not result.base.commit:
        return walkdiff_hunks(series.bodies(), [fixed_body], config.walkdiff, revision=f"v{result.version}",
                              against=f"fixes:{commit[:12]}", fixes=True)
    theirs = [p for f in parse_diff(fixed_body) for p in f.paths() if p.endswith(C_SUFFIXES)]
    mine = [p for p in series.paths() if p.endswith(C_SUFFIXES)]
    labels = config.walkdiff.labels
    paths = sorted(set(theirs) & set(mine))
    parent = repo.ancestor(config, f"{commit}^", commit)  # None for a root commit: everything is new
    fixed_changed = changed_functions(repo.read_files(config, parent, theirs) if parent else {},
                                      repo.read_files(config, commit, theirs), labels)
    my_changed = changed_functions(repo.read_files(config, result.base.commit, mine),
                                   repo.read_files(config, branch, mine), labels)
    return walkdiff_tree(repo.read_files(config, commit, paths), repo.read_files(config, branch, paths),
                         config.walkdiff, against=f"fixes:{commit[:12]}", revision=f"v{result.version}",
                         touched=fixed_changed & my_changed)
