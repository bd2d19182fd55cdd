"""`bot b4-check --prep`: b4.prep-perpatch-check-cmd, the fast checks of one patch of a `b4 prep` branch.

b4 runs the command once per patch, the patch on stdin, in the branch's tree; every stdout line is a finding
(`ERROR:` in it: a failure, else a warning), any stderr line a failure, no output "passed all checks". So the
findings are the only output: patch k does not apply (patches 1..k on the bot's base, as `bot check` would
choose it), the walk exits patch k changes (its parent against it, in the applied tree), and, when the build
dir of the base is warm, the compiler warnings patch k adds. Patches 1..k come from the branch (fetch's
prep_branch); outside a prep branch the patch is checked alone. Results are kept under the cache by the
patches' content, so asking again about an unchanged patch is instant.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from bot import build, fetch, pipeline, repo, walkdiff
from bot.b4check import message
from bot.b4check.entries import describe
from bot.config import Config
from bot.errors import BadInput, OperationalError
from bot.patches import Series, clean_subject, parse_mbox, parse_subject
from bot.results import FetchResult, PatchInfo, RevisionResult, SeriesSummary, load_revision, write_bytes_atomic

C_FILES = (".c", ".h")


def _mbox(series: Series, upto: int) -> bytes:
    return b"".join(b"From mboxrd@z Thu Jan  1 00:00:00 1970\n" + p.raw.rstrip(b"\n") + b"\n\n"
                    for p in series.patches[:upto])


def patches_upto(raw: bytes, cwd: Path) -> tuple[bytes, int, str | None]:
    """(mbox of patches 1..k, k, the branch's base) for the patch on stdin: from the prep branch in cwd when
    it holds this patch, else the patch alone."""
    subject = parse_subject(message.read(raw, need_id=False).subject)
    branch = fetch.prep_branch(cwd)
    if branch is not None:
        series = parse_mbox(branch.mbox)
        want = clean_subject(subject.subject)
        k = subject.counter if 0 < subject.counter <= len(series.patches) else 0
        if not k or series.patches[k - 1].subject != want:  # renumbered since: find it by subject
            k = next((p.index for p in series.patches if p.subject == want), 0)
        if k:
            return _mbox(series, k), k, branch.base
    alone = parse_mbox(raw)
    return _mbox(alone, 1), 1, alone.base_commit


def fast_checks(config: Config, mbox: bytes, k: int, base: str | None) -> RevisionResult:
    """apply (and, on each warm build dir, build) patches 1..k; kept under <cache>/prep/<hash>/, so only what
    is new runs again (a build dir warmed since)."""
    key = hashlib.sha256(f"{base}\n".encode() + mbox).hexdigest()[:16]
    rdir = config.cache / "prep" / key
    slug = f"prep-{key}"
    result = load_revision(rdir / "result.json")
    if result is None or not result.stages.apply.finished:
        series = parse_mbox(mbox)
        result = RevisionResult(f"{slug}@mm-review-bot.invalid", 1, series.patches[-1].subject, "", "",
                                [PatchInfo(p.index, p.subject, p.message_id) for p in series.patches], ["b4 prep"])
        result.stages.fetch = FetchResult("ok", f"{k} patch(es) from b4 prep", base_commit_trailer=base)
        write_bytes_atomic(rdir / "series.mbx", mbox)
    summary = SeriesSummary(slug, result.subject, "", result.message_id, local="b4 prep --check")
    if not result.stages.apply.finished:
        pipeline.check_revision(config, summary, result, rdir, ["apply"], [])
    chosen = result.base.commit
    arches = [a for a in config.daemon.arches if chosen and a not in result.stages.build and
              build.warm(config, a, chosen)]
    if result.stages.apply.status == "ok" and arches:
        pipeline.check_revision(config, summary, result, rdir, ["build"], arches)
    return result


def walk_lines(config: Config, result: RevisionResult, k: int) -> list[str]:
    """The walk exits patch k changes: its parent against it, whole files of the applied branch."""
    commits = result.stages.apply.commits or []
    if len(commits) < k:
        return []
    mine = commits[k - 1].commit
    paths = [p for p in repo.changed_files(Path(config.paths.kernel_tree), f"{mine}~1", mine) if p.endswith(C_FILES)]
    if not paths:
        return []
    w = walkdiff.walkdiff_tree(repo.read_files(config, f"{mine}~1", paths), repo.read_files(config, mine, paths),
                               config.walkdiff, against="its parent", revision=f"patch {k}")
    if w.status == "error":
        return [f"walk exits not compared: {w.detail}"]
    return [f"walk exit changed: {describe(f['name'], e)}" for f in w.functions or [] for e in f.get("exits", [])
            if e.get("change") != "unchanged"]


def lines_for(config: Config, result: RevisionResult, k: int) -> list[str]:
    a = result.stages.apply
    failed = a.patch.index if a.patch and a.patch.index else None
    if a.status != "ok":
        if failed is not None and failed < k:
            return [f"not checked: patch {failed} before it does not apply"]
        return [f"ERROR: does not apply: {a.detail}"]
    out = walk_lines(config, result, k)
    for arch, b in sorted(result.stages.build.items()):
        if b.status == "failed":
            err = f"{b.error.file}:{b.error.line}: {b.error.message}" if b.error else b.detail
            out.append(f"ERROR: build {arch} failed: {err}")
        for w in b.new_warnings or []:
            if w.patch is None or w.patch.index == k:
                out.append(f"new warning ({arch}{', W=1' if w.w1 else ''}): {w.file}:{w.line}: {w.message}")
    return out


def check(config: Config, raw: bytes, cwd: Path) -> tuple[list[str], int]:
    """(lines for stdout, exit code) for the patch on stdin."""
    try:
        mbox, k, base = patches_upto(raw, cwd)
        return lines_for(config, fast_checks(config, mbox, k, base), k), 0
    except message.BadMessage as e:
        return [f"ERROR: bad input: {e}"], 1
    except BadInput as e:
        return [f"ERROR: bad input: {e}"], 1
    except OperationalError as e:
        return [f"ERROR: bot: {e}"], 3
