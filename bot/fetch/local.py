"""A series that is not on an archive yet: an am-ready mbox (`git format-patch --stdout`, `b4 send -o`) or a
range of commits in a git tree (a `b4 prep` branch), made into what fetch_series returns and saved under
patchsets/local-<subject>-<hash>/ (a b4 prep branch: local-<change-id>/), apart from the archive's series:
its series.json lists no Message-IDs, so `bot check <msgid>` and `bot b4-check` never take a local check for
a posting.

Previous revisions: of a b4 prep branch, each revision its tracking data says was sent, from its sent/ tag
(the commits b4 tagged when sending), else from the bot's own review of that posting (its Message-ID in the
tracking history); of anything else, what earlier local checks of the same series (same subject and author,
or same change-id) left in the folder.
"""

from __future__ import annotations

import datetime
import email
import email.policy
import email.utils
import hashlib
import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from bot.config import Config
from bot.errors import BadInput, UsageError
from bot.fetch import prep
from bot.fetch.saved import find_known, slugify
from bot.patches import Series, clean_subject, parse_mbox, parse_subject
from bot.results import (
    FetchResult,
    PatchInfo,
    RevisionRef,
    RevisionResult,
    SeriesSummary,
    load_revision,
    revision_dir,
    save_revision,
    write_bytes_atomic,
    write_json_atomic,
)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class LocalSource:
    """Where local patches come from: an mbox file, or BASE..TIP of the git tree at `repo`."""

    mbox: Path | None = None
    range: str | None = None
    repo: Path = Path(".")

    def describe(self) -> str:
        """The `bot check` options that read it again (SeriesSummary.local; the review's reproduce line)."""
        if self.mbox is not None:
            return shlex.join(["--mbox", str(self.mbox)])
        return shlex.join(["--range", str(self.range), "--repo", str(self.repo)])


@dataclass
class LocalRevision:
    version: int
    mbox: bytes
    found_by: str
    base: str | None  # the base commit the range or the mbox names


def _first(series: Series) -> tuple[str, str, str]:
    """(subject, author, date) of the cover letter, else of patch 1."""
    msg = series.cover
    if msg is None:
        first = email.message_from_bytes(series.patches[0].raw, policy=email.policy.default)
        assert isinstance(first, EmailMessage)
        msg = first
    author = " ".join(str(msg.get("From", "")).split())
    try:
        when = email.utils.parsedate_to_datetime(str(msg.get("Date", "")))
    except (TypeError, ValueError):
        when = datetime.datetime.now(datetime.UTC)
    return " ".join(str(msg.get("Subject", "")).split()), author, when.isoformat()


def _subject(raw: bytes) -> str:
    """The Subject: as mailed ([PATCH v2 1/3] and all), as a fetched revision lists its patches."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    return " ".join(str(msg.get("Subject", "")).split())


def _version(subject: str) -> int:
    v = parse_subject(subject).revision
    return v if isinstance(v, int) and 0 < v <= 999 else 1


def _identity(key: str, subject: str) -> str:
    """patchsets/<slug>: a b4 prep branch by its change-id (its title may still say EDITME), anything else by
    subject and a hash of author + subject; no date, each revision has its own: the same series checked again,
    v1 last week and v2 now, lands in the same folder."""
    if key.startswith("change-id "):
        return f"local-{slugify(key.removeprefix('change-id '))[:60]}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    return f"local-{slugify(clean_subject(subject))[:48].rstrip('-')}-{digest}"


def _result(rev: LocalRevision, series: Series, key: str) -> RevisionResult:
    subject, author, date = _first(series)
    made = f"local.{hashlib.sha256(key.encode()).hexdigest()[:12]}.v{rev.version}"  # format-patch sets none
    cover = series.cover.get("Message-ID") if series.cover is not None else None
    root = str(cover or "").strip().strip("<>") or series.patches[0].message_id or f"{made}@mm-review-bot.invalid"
    patches = [PatchInfo(p.index, _subject(p.raw) or p.subject,
                         p.message_id or f"{made}.{p.index}@mm-review-bot.invalid") for p in series.patches]
    result = RevisionResult(root, rev.version, subject, author, date, patches, [rev.found_by])
    n = len(series.patches)
    result.stages.fetch = FetchResult("ok", f"{n} patch{'es' if n != 1 else ''}, {rev.found_by}",
                                      base_commit_trailer=rev.base or series.base_commit,
                                      cover=series.cover is not None)
    return result


def _from_mbox(source: LocalSource) -> tuple[list[LocalRevision], str]:
    assert source.mbox is not None
    try:
        raw = source.mbox.read_bytes()
    except OSError as e:
        raise BadInput(f"cannot read {source.mbox}: {e.strerror or e}") from e
    series = parse_mbox(source.mbox)  # by its path: a bad mbox is named in the message
    subject, author, _ = _first(series)
    key = f"{email.utils.parseaddr(author)[1].lower()} {clean_subject(subject)}"
    return [LocalRevision(_version(subject), raw, f"local mbox {source.mbox}", series.base_commit)], key


def _from_range(config: Config, source: LocalSource, progress: Progress) -> tuple[list[LocalRevision], str]:
    assert source.range is not None
    branch = prep.read_range(source.repo, source.range)
    revs = [LocalRevision(branch.revision, branch.mbox, f"local range {source.range}", branch.base)]
    for version, ref in branch.earlier.items():
        if ref.mbox is not None:
            revs.append(LocalRevision(version, ref.mbox, f"local {ref.how}", ref.base))
            continue
        known = next((d for m in ref.msgids if (d := find_known(config.paths.patchsets, m)) is not None), None)
        if known is not None and (known / f"v{version}" / "series.mbx").exists():
            mbx = (known / f"v{version}" / "series.mbx").read_bytes()
            revs.append(LocalRevision(version, mbx, f"posted v{version}, reviewed in {known.name}", None))
        else:
            progress(f"  v{version}: sent, but neither its sent/ tag nor a review of it is here; not compared")
    if branch.change_id:
        return revs, f"change-id {branch.change_id}"
    series = parse_mbox(branch.mbox)
    subject, author, _ = _first(series)
    return revs, f"{email.utils.parseaddr(author)[1].lower()} {clean_subject(subject)}"


def fetch_local(config: Config, source: LocalSource, progress: Progress = lambda _: None
                ) -> tuple[SeriesSummary, list[RevisionResult]]:
    """The local series of `source`, saved like a fetched one; SeriesSummary.requested is the checked revision."""
    if (source.mbox is None) == (source.range is None):
        raise UsageError("a local check takes an mbox or a range")
    revs, key = _from_mbox(source) if source.mbox is not None else _from_range(config, source, progress)
    mine = revs[0]
    parsed = {r.version: parse_mbox(r.mbox) for r in revs}
    subject, author, _ = _first(parsed[mine.version])
    slug = _identity(key, subject)
    sdir = config.paths.patchsets / slug
    old = _load_summary(sdir)
    results = {r.version: r for r in _previous(sdir, old)}
    for rev in sorted(revs, key=lambda r: r.version):
        results[rev.version] = _save(config, slug, rev, parsed[rev.version], key)
        progress(f"  v{rev.version}: {results[rev.version].stages.fetch.detail}")
    ordered = [results[v] for v in sorted(results) if v <= mine.version]
    summary = SeriesSummary(slug, subject, author, results[mine.version].message_id,
                            [RevisionRef(r.version, r.message_id, r.found_by[0]) for r in ordered],
                            local=source.describe())
    write_json_atomic(sdir / "series.json", summary.to_json())
    return summary, ordered


def _load_summary(sdir: Path) -> SeriesSummary | None:
    try:
        return SeriesSummary.from_json(json.loads((sdir / "series.json").read_text()))
    except (OSError, ValueError):
        return None


def _previous(sdir: Path, old: SeriesSummary | None) -> list[RevisionResult]:
    """Revisions earlier local checks of this series saved (the mbox path: v1 checked last week)."""
    out = []
    for ref in old.revisions if old is not None else []:
        r = load_revision(sdir / f"v{ref.version}" / "result.json")
        if r is not None and (sdir / f"v{ref.version}" / "series.mbx").exists():
            out.append(r)
    return out


def _save(config: Config, slug: str, rev: LocalRevision, series: Series, key: str) -> RevisionResult:
    """series.mbx and result.json of one revision; results of an unchanged mbox are kept (as saved.save)."""
    rdir = revision_dir(config.paths.patchsets, slug, rev.version)
    result = _result(rev, series, key)
    old = load_revision(rdir / "result.json")
    mbx = rdir / "series.mbx"
    if old is not None and mbx.exists() and mbx.read_bytes() == rev.mbox:
        old.stages.fetch = result.stages.fetch
        result.stages, result.base = old.stages, old.base
    write_bytes_atomic(mbx, rev.mbox)
    write_bytes_atomic(rdir / "thread.mbox", _thread(result))
    save_revision(rdir / "result.json", result)
    return result


def _thread(result: RevisionResult) -> bytes:
    """The thread the revision would make once posted (headers only), so its review is threaded as a reply
    would be: the root, and each patch in reply to it."""
    out = []
    for msgid, subject, parent in [(result.message_id, result.subject, None),
                                   *((p.message_id, p.subject, result.message_id) for p in result.patches
                                     if p.message_id != result.message_id)]:
        msg = EmailMessage()
        msg["Message-ID"], msg["Subject"] = f"<{msgid}>", subject
        if parent:
            msg["In-Reply-To"] = msg["References"] = f"<{parent}>"
        msg.set_content("(a local check: not posted)\n")
        out.append(b"From mboxrd@z Thu Jan  1 00:00:00 1970\n" + msg.as_bytes(policy=email.policy.SMTP)
                   .replace(b"\r\n", b"\n") + b"\n")
    return b"".join(out)

