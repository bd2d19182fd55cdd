"""A fetched series on disk: patchsets/<slug>/series.json and v<N>/{series.mbx, thread.mbox, result.json}.

Everything is fetched and checked before save() writes, so a bad series writes nothing; series.json is
written last. A revision whose am-ready mbox is unchanged keeps the stage results of earlier runs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from bot.config import Config
from bot.errors import BadInput
from bot.fetch.archive import Archive
from bot.fetch.assemble import Revision
from bot.results import (
    FetchResult,
    PatchInfo,
    RevisionResult,
    SeriesSummary,
    load_revision,
    revision_dir,
    save_revision,
    write_bytes_atomic,
    write_json_atomic,
)


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60].rstrip("-") or "series"


def revision_result(rev: Revision) -> RevisionResult:
    p = rev.posting
    first = p.first
    result = RevisionResult(
        message_id=p.root,
        version=p.version,
        subject=first.full_subject,
        author=f"{first.fromname} <{first.fromemail}>",
        date=first.date.isoformat(),
        patches=[PatchInfo(i, m.full_subject, m.msgid) for i, m in sorted(p.patches.items())],
        found_by=[p.found_by],
    )
    if rev.problem:
        result.stages.fetch = FetchResult("failed", rev.problem)
    else:
        detail = f"{len(p.patches)} patch{'es' if len(p.patches) != 1 else ''}, found by {p.found_by}"
        result.stages.fetch = FetchResult("ok", detail, base_commit_trailer=rev.base_commit,
                                          cover=p.cover is not None)
    return result


def find_known(patchsets: Path, msgid: str) -> Path | None:
    """The series folder that already holds msgid (as a revision, patch or requested message)."""
    for path in sorted(patchsets.glob("*/series.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if msgid in data.get("message_ids", []):
            return path.parent
    return None


def save(config: Config, archive: Archive, summary: SeriesSummary, revisions: list[Revision]
         ) -> list[RevisionResult]:
    """Write every revision (series.mbx, thread.mbox, result.json), then series.json last."""
    results = []
    message_ids = {summary.requested}
    for rev in revisions:
        rdir = revision_dir(config.paths.patchsets, summary.slug, rev.posting.version)
        result = revision_result(rev)
        message_ids.update(rev.posting.msgids())
        old = load_revision(rdir / "result.json")
        mbx = rdir / "series.mbx"
        if rev.am_mbox is not None:
            if old is not None and mbx.exists() and mbx.read_bytes() == rev.am_mbox:
                old.stages.fetch = result.stages.fetch
                result.stages, result.base = old.stages, old.base
            write_bytes_atomic(mbx, rev.am_mbox)
        write_bytes_atomic(rdir / "thread.mbox", archive.thread_mbox(rev.posting.root))
        save_revision(rdir / "result.json", result)
        results.append(result)
    summary.message_ids = sorted(message_ids)
    write_json_atomic(config.paths.patchsets / summary.slug / "series.json", summary.to_json())
    return results


def load(series_dir: Path) -> tuple[SeriesSummary, list[RevisionResult]]:
    """A series fetched before: its series.json and each revision's result.json, oldest first."""
    summary = SeriesSummary.from_json(json.loads((series_dir / "series.json").read_text()))
    results = []
    for rev in summary.revisions:
        result = load_revision(series_dir / f"v{rev.version}" / "result.json")
        if result is None:
            raise BadInput(f"{series_dir}: v{rev.version}/result.json is missing; rerun with --refetch")
        results.append(result)
    return summary, results
