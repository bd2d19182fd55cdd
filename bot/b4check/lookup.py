"""Finding a message's revision in the bot's results: patchsets/*/series.json (each lists every Message-ID of
its series) and the revision's result.json. Read directly, without the fetch stage (which imports b4)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from bot.config import Config
from bot.results import RevisionResult, SeriesSummary, load_revision, revision_dir


@dataclass
class Found:
    series: SeriesSummary
    revision: RevisionResult
    patch: int | None  # the patch the message is (1-based), None for the cover letter or root

    @property
    def slug(self) -> str:
        return self.series.slug


def find(patchsets: Path, msgid: str) -> Found | None:
    """The revision holding msgid as its root (cover letter, or patch 1 without one) or as one of its patches."""
    needle = json.dumps(msgid)  # as series.json spells it (json.dumps escapes the same way)
    for path in sorted(patchsets.glob("*/series.json")):
        try:
            text = path.read_text()
        except OSError:
            continue
        if needle not in text:  # cheap: most series are not the one
            continue
        try:
            summary = SeriesSummary.from_json(json.loads(text))
        except (ValueError, TypeError, KeyError):
            continue
        if msgid not in summary.message_ids:
            continue
        for ref in summary.revisions:
            result = load_revision(path.parent / f"v{ref.version}" / "result.json")
            if result is None:
                continue
            for p in result.patches:  # first: without a cover letter the root is patch 1, and a patch
                if p.message_id == msgid:
                    return Found(summary, result, p.index)
            if result.message_id == msgid:
                return Found(summary, result, None)
    return None


def reviewed(config: Config, result: RevisionResult) -> bool:
    """Whether the bot is done with this revision: its review was rendered (the report stage ran), or, for a
    daemon that does not report, every stage it runs has a final result. Before that b4 gets nothing, so it
    asks again later instead of caching a half answer."""
    stages = result.stages
    if result.stages.fetch.status != "ok":
        return False
    if stages.report.ran:
        return True
    wanted = [s for s in config.daemon.stages if s != "fetch"]
    if "report" in wanted or not wanted:
        return False
    arches = list(config.daemon.arches)
    names = [n for s in wanted for n in (("boot", "stress") if s == "boot" else (s,))]
    return all(e is not None and e.finished for n in names for e in stages.entries(n, arches))


def review_text(config: Config, found: Found) -> str:
    """The review as the bot would post it: the outbox copy when there is one (no rendering on the fast
    path), else rendered now."""
    outbox = found.revision.stages.report.outbox
    if outbox:
        path = Path(outbox)
        for candidate in (path, path.parent.parent / "cur" / f"{path.name}:2,S"):  # sent: moved new/ -> cur/
            try:
                raw = candidate.read_bytes()
            except OSError:
                continue
            return _body_text(raw)
    from bot import report  # slower (jinja2, the report stage): only when no outbox copy exists

    return str(report.render(found.revision, found.series, report.context(config)))


def _body_text(raw: bytes) -> str:
    import email

    msg = email.message_from_bytes(raw)
    payload = msg.get_payload(decode=True)
    text = payload.decode(msg.get_content_charset() or "utf-8", "replace") if isinstance(payload, bytes) else ""
    return text.replace("\r\n", "\n")


def dashboard_url(config: Config, slug: str) -> str:
    base = config.report.dashboard_url.strip()
    return f"{base.rstrip('/')}/series/{slug}/index.html" if base else ""


def revision_path(config: Config, found: Found) -> Path:
    return revision_dir(config.paths.patchsets, found.slug, found.revision.version)
