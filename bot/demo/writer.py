"""The one patch series writer: commits a revision's patches onto a base, then posts them the way authors do.

Used by the demo (series.py, on the real kernel tree) and by the tests (toy trees). Commits are made with
pygit2 in a scratch bare repository that either borrows an existing tree's objects (alternates: the tree
gets no new objects, refs or work tree changes) or starts from a root commit of given files. `git
format-patch` writes the mails; their headers (From, Date, Message-ID, threading) are then fixed so the
output is byte-for-byte reproducible. Each Revision says how it is posted: subject prefix, cover letter or
not, threaded onto an earlier posting or not, a changelog with links to earlier revisions (`vN -> vM:`
lines or plain lore URLs), a change-id, a missing or a truncated patch.
"""

from __future__ import annotations

import datetime as dt
import email
import email.base64mime
import email.policy
import email.utils
import re
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import pygit2

from bot.errors import OperationalError

AUTHOR = "Ada Lovelace <ada@example.org>"
TO = "linux-mm@kvack.org"
LORE = "https://lore.kernel.org/linux-mm"
SIGNATURE = "2.47.2"  # what format-patch puts under "-- " (a fixed git version keeps output reproducible)
START = dt.datetime(2026, 1, 5, 10, 0, tzinfo=dt.UTC)  # a Monday; the first posting's date by default
WEEK = dt.timedelta(days=7)
GIT_TIMEOUT = 120.0
ZERO_FROM = "From 0000000000000000000000000000000000000000 "


@dataclass(frozen=True)
class Edit:
    """A search/replace in one file: patches stay valid when the surrounding (real kernel) code moves."""

    path: str
    old: str
    new: str
    after: str = ""  # search for `old` only after this anchor (e.g. a function's signature)


@dataclass(frozen=True)
class Patch:
    """One commit: its message, and its change as edits and/or whole-file contents."""

    subject: str
    body: str = "Explain the change.\n"
    edits: Sequence[Edit] = ()
    files: Mapping[str, str | bytes] = field(default_factory=dict)  # path -> new content (new files too)
    author: str | None = None  # "Name <addr>" when not the writer's author (From: follows it, as git am does)


@dataclass(frozen=True)
class Revision:
    """One posting of a series and its shape: what real authors vary from one posting to the next."""

    version: int
    title: str  # the cover letter's subject, without the [PATCH ...] prefix
    patches: Sequence[Patch]
    blurb: str = "Explain the series.\n"
    changes: str = ""  # what changed since the writer's previous posting: the changelog entry
    fake_base: Sequence[Edit] = ()  # patches are made on base + these edits (work the reader's tree lacks)
    prefix: str | None = None  # "PATCH v{v}", "PATCHv{v}", "RFC PATCH v{v}", "PATCH"; default: vN from v2 on
    cover: bool = True
    numbered: bool = True  # "[PATCH 1/1]" for a lone patch; False: "[PATCH]"
    base_commit: bool = True  # a base-commit: line
    reply_to: str | None = None  # Message-ID of an earlier posting: a threaded reroll
    change_id: str | None = None  # b4's change-id: line, next to base-commit:
    changelog: str = ""  # "arrow": "vN -> vM: changes" + lore link, per earlier posting; "plain": lore URL only
    omit: Sequence[int] = ()  # message numbers not sent (0 is the cover letter)
    truncate: int | None = None  # message number whose diff is cut in the middle


@dataclass
class Posting:
    """What write() sent: the messages, as text, and their Message-IDs."""

    version: int
    base: str  # what base-commit: says (or would say)
    mails: list[str] = field(default_factory=list)
    msgids: list[str] = field(default_factory=list)

    def mbox(self) -> str:
        """The messages as one mbox, as `git format-patch -o` files concatenated."""
        return "".join(m if m.endswith("\n\n") else m + "\n" for m in self.mails)

    def messages(self) -> list[EmailMessage]:
        """The messages as a list server would get them (bytes parsing keeps 8-bit bodies as they are)."""
        msgs = [email.message_from_bytes(m.encode(), policy=email.policy.default) for m in self.mails]
        return [m for m in msgs if isinstance(m, EmailMessage)]


def tagged(tag: str) -> Callable[[int, int], str]:
    """Readable Message-IDs, unique per tag: <tag>.v<N>.<i>@example.org (i = 0 for the cover letter)."""
    return lambda version, index: f"{tag}.v{version}.{index}@example.org"


def handmade_mail(subject: str, body: str, author: str = AUTHOR, when: dt.datetime = START) -> str:
    """A mail that no git wrote (a patch edited by hand, a diff git would not make), with write()'s envelope."""
    return (
        f"{ZERO_FROM}Mon Sep 17 00:00:00 2001\nFrom: {_address(author)}\n"
        f"Date: {email.utils.format_datetime(when)}\nSubject: {subject}\n\n{body}\n"
    )


# ---------------------------------------------------------------- commits


def _split(person: str) -> tuple[str, str]:
    name, addr = email.utils.parseaddr(person)
    return name, addr


def _address(person: str) -> str:
    """A From: value; RFC 2047 for a non-ASCII name, as git send-email writes it.

    Encoded by hand: b4, once imported, turns off header encoding for utf-8 in the email package's registry.
    """
    name, addr = _split(person)
    if name.isascii():
        return email.utils.formataddr((name, addr))
    return f"{email.base64mime.header_encode(name.encode(), 'utf-8')} <{addr}>"


def _put(repo: pygit2.Repository, tree: pygit2.Tree | None, path: str, data: bytes) -> pygit2.Oid:
    """A new tree like `tree` with `data` at `path`; only the directories on the path change."""
    head, _, rest = path.partition("/")
    builder = repo.TreeBuilder(tree) if tree is not None else repo.TreeBuilder()
    entry = tree[head] if tree is not None and head in tree else None
    if rest:
        sub = repo[entry.id].peel(pygit2.Tree) if entry is not None else None
        builder.insert(head, _put(repo, sub, rest, data), pygit2.enums.FileMode.TREE)
    else:
        mode = entry.filemode if entry is not None else pygit2.enums.FileMode.BLOB
        builder.insert(head, repo.create_blob(data), mode)
    return builder.write()


def _apply(repo: pygit2.Repository, tree: pygit2.Tree, edits: Sequence[Edit], files: Mapping[str, str | bytes]
           ) -> pygit2.Tree:
    for e in edits:
        text = repo[tree[e.path].id].peel(pygit2.Blob).data.decode()
        start = text.index(e.after) if e.after else 0
        at = text.find(e.old, start)
        if at < 0:
            raise OperationalError(
                f"series: {e.path} no longer has the text this edit expects: {e.old.strip().splitlines()[0]!r}"
            )
        text = text[:at] + e.new + text[at + len(e.old) :]
        tree = repo[_put(repo, tree, e.path, text.encode())].peel(pygit2.Tree)
    for path, data in files.items():
        blob = data.encode() if isinstance(data, str) else data
        tree = repo[_put(repo, tree, path, blob)].peel(pygit2.Tree)
    return tree


def _git(gitdir: Path, committer: str, *args: str) -> str:
    name, addr = _split(committer)
    env = {"PATH": "/usr/bin:/bin", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null",
           "HOME": str(gitdir), "LC_ALL": "C", "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": addr}
    try:
        proc = subprocess.run(["git", f"--git-dir={gitdir}", *args], capture_output=True, text=True,
                              timeout=GIT_TIMEOUT, env=env)
    except subprocess.TimeoutExpired as e:
        raise OperationalError(f"git {args[0]} timed out after {GIT_TIMEOUT:.0f}s") from e
    if proc.returncode:
        raise OperationalError(f"git {args[0]} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return proc.stdout


# ---------------------------------------------------------------- mail headers and shaping


def set_headers(mail: str, headers: Mapping[str, str]) -> str:
    """Replace (or add) the given headers, dropping the old ones with their continuation lines."""
    head, sep, body = mail.partition("\n\n")
    drop = {h.lower() for h in headers}
    kept: list[str] = []
    skipping = False
    for line in head.split("\n"):
        if line[:1] in (" ", "\t"):
            if not skipping:
                kept.append(line)
            continue
        skipping = line.split(":", 1)[0].lower() in drop
        if not skipping:
            kept.append(line)
    kept += [f"{k}: {v}" for k, v in headers.items()]
    return "\n".join(kept) + sep + body


def _with_change_id(mail: str, change_id: str) -> str:
    """b4 puts change-id: right under base-commit: (else just above the signature)."""
    found = re.search(r"^base-commit: \S+\n", mail, re.M)
    at = found.end() if found else mail.rindex("\n-- \n") + 1
    return mail[:at] + f"change-id: {change_id}\n" + mail[at:]


def _truncated(mail: str) -> str:
    """The mail cut in the middle of its diff, as a broken mailer or a size limit leaves it."""
    head, sep, body = mail.partition("\n\n")
    at = body.index("@@ ")
    cut = body[: at + len(body[at:]) // 2]
    return head + sep + cut + ("" if cut.endswith("\n") else "\n")


@dataclass(frozen=True)
class _Earlier:
    version: int
    msgid: str  # its first message: the cover letter, or patch 1
    changes: str


def _changelog(form: str, lore: str, history: Sequence[_Earlier]) -> str:
    """Changelog text linking earlier postings: `history` is oldest first and ends with this posting."""
    if len(history) < 2 or not form:
        return ""
    pairs = list(zip(history, history[1:], strict=False))
    if form == "arrow":  # every step, newest first, each with the link to the revision it started from
        return "\nChanges:\n" + "".join(
            f"v{a.version} -> v{b.version}: {b.changes}\n  {lore}/{a.msgid}/\n" for a, b in reversed(pairs)
        )
    if form == "plain":  # what changed since the previous posting, and a bare link to it
        prev, this = pairs[-1]
        return f"\nChanges since v{prev.version}:\n - {this.changes}\n\nv{prev.version}: {lore}/{prev.msgid}/\n"
    raise ValueError(f"changelog form must be 'arrow' or 'plain', not {form!r}")


# ---------------------------------------------------------------- the writer


class SeriesWriter:
    """Posts the revisions of one series by one author, in order; remembers them for changelogs and ids.

    `when` is the next posting's date (each posting moves it on by `interval`); the messages of a posting
    are one second apart, and so are its commits.
    """

    def __init__(
        self,
        repo: pygit2.Repository,
        base: pygit2.Oid | None,
        *,
        author: str = AUTHOR,
        to: str = TO,
        cc: Sequence[str] = (),
        lore: str = LORE,
        msgid: Callable[[int, int], str] | None = None,
        when: dt.datetime = START,
        interval: dt.timedelta = WEEK,
        signoff: bool = False,
    ) -> None:
        self.repo = repo
        self.gitdir = Path(repo.path)
        self.base = base
        self.author, self.to, self.cc, self.lore = author, to, tuple(cc), lore
        self.ids = msgid or tagged("series")
        self.when, self.interval, self.signoff = when, interval, signoff
        self.history: list[_Earlier] = []

    @classmethod
    def on_tree(cls, tree: Path, base: str, workdir: Path, **options: object) -> SeriesWriter:
        """Patches on `base` of the git repository `tree`, whose objects are borrowed, not copied or added to."""
        source = pygit2.Repository(str(tree))
        commit = source.revparse_single(base).peel(pygit2.Commit)
        scratch = pygit2.init_repository(str(workdir / "series.git"), bare=True)
        (Path(scratch.path) / "objects" / "info" / "alternates").write_text(str(Path(source.path) / "objects") + "\n")
        return cls(pygit2.Repository(scratch.path), commit.id, **options)  # type: ignore[arg-type]

    @classmethod
    def on_files(cls, files: Mapping[str, str | bytes], workdir: Path, **options: object) -> SeriesWriter:
        """Patches on a root commit of `files` (a toy tree)."""
        writer = cls(pygit2.init_repository(str(workdir / "series.git"), bare=True), None, **options)  # type: ignore[arg-type]
        writer.base = writer._commit(None, "base\n", Patch("base", files=files), writer._stamp()).id
        return writer

    def msgid(self, version: int, index: int) -> str:
        """The Message-ID of message `index` (0: the cover letter) of revision `version`."""
        return self.ids(version, index)

    def write(self, rev: Revision) -> Posting:
        """Commit the revision's patches, format them and shape the mails as `rev` says."""
        claimed, tip = self._commits(rev)
        first = 0 if rev.cover else 1
        history = [*self.history, _Earlier(rev.version, self.msgid(rev.version, first), rev.changes)]
        posting = Posting(rev.version, claimed)
        for i, mail in enumerate(self._format(rev, claimed, tip), start=first):
            if i in rev.omit:
                continue
            posting.mails.append(set_headers(self._shape(rev, i, mail, history), self._headers(rev, i)))
            posting.msgids.append(self.msgid(rev.version, i))
        self.history = history
        self.when += self.interval
        return posting

    # -- commits

    def _stamp(self, offset: int = 0) -> int:
        return int(self.when.timestamp()) + offset

    def _commit(self, parent: pygit2.Commit | None, message: str, patch: Patch, when: int) -> pygit2.Commit:
        committer = pygit2.Signature(*_split(self.author), when, 0)
        author = pygit2.Signature(*_split(patch.author), when, 0) if patch.author else committer
        empty = self.repo[self.repo.TreeBuilder().write()].peel(pygit2.Tree)
        tree = _apply(self.repo, parent.tree if parent else empty, patch.edits, patch.files)
        oid = self.repo.create_commit(None, author, committer, message, tree.id, [parent.id] if parent else [])
        return self.repo[oid].peel(pygit2.Commit)

    def _message(self, patch: Patch) -> str:
        text = patch.subject + "\n"
        if patch.body:
            text += "\n" + patch.body + ("" if patch.body.endswith("\n") else "\n")
        if self.signoff:
            text += f"\nSigned-off-by: {patch.author or self.author}\n"
        return text

    def _commits(self, rev: Revision) -> tuple[str, str]:
        """(the commit the patches are made on, the last patch's commit)."""
        assert self.base is not None
        parent = self.repo[self.base].peel(pygit2.Commit)
        if rev.fake_base:
            upstream = Patch("upstream", edits=rev.fake_base)
            parent = self._commit(parent, "upstream work we do not have\n", upstream, self._stamp(-3600))
        tip = parent
        for i, p in enumerate(rev.patches, 1):
            tip = self._commit(tip, self._message(p), p, self._stamp(i))
        return str(parent.id), str(tip.id)

    # -- mails

    def _format(self, rev: Revision, claimed: str, tip: str) -> list[str]:
        prefix = rev.prefix or ("PATCH" if rev.version == 1 else "PATCH v{v}")
        args = ["format-patch", "-q", f"--subject-prefix={prefix.format(v=rev.version)}", f"--to={self.to}"]
        args += [f"--cc={c}" for c in self.cc]
        args += [f"--signature={SIGNATURE}", "--abbrev=12", "-n" if rev.numbered else "-N"]
        args += ["--cover-letter"] if rev.cover else []
        args += [f"--base={claimed}"] if rev.base_commit else []
        with tempfile.TemporaryDirectory(prefix="format-patch-", dir=self.gitdir.parent) as tmp:
            _git(self.gitdir, self.author, *args, "-o", tmp, f"{claimed}..{tip}")
            return [f.read_text(encoding="utf-8") for f in sorted(Path(tmp).glob("*.patch"))]

    def _shape(self, rev: Revision, i: int, mail: str, history: Sequence[_Earlier]) -> str:
        # format-patch's first line carries the real commit id; a fixed one keeps output reproducible
        text = re.sub(r"\AFrom [0-9a-f]{40} ", ZERO_FROM, mail)
        log = _changelog(rev.changelog, self.lore, history)
        if i == 0:
            blurb = rev.blurb.rstrip("\n") + "\n" + log
            text = text.replace("*** SUBJECT HERE ***", rev.title).replace("*** BLURB HERE ***\n", blurb)
        elif i == 1 and not rev.cover and log:  # no cover letter: the changelog goes below the ---
            text = text.replace("\n---\n", "\n---\n" + log.lstrip("\n") + "\n", 1)
        if rev.change_id and i == (0 if rev.cover else 1):
            text = _with_change_id(text, rev.change_id)
        return _truncated(text) if i == rev.truncate else text

    def _headers(self, rev: Revision, i: int) -> dict[str, str]:
        """From (format-patch signs the cover letter as the committer), Date, Message-ID and threading."""
        author = self.author if i == 0 else rev.patches[i - 1].author or self.author
        headers = {
            "From": _address(author),
            "Date": email.utils.format_datetime(self.when + dt.timedelta(seconds=i)),
            "Message-ID": f"<{self.msgid(rev.version, i)}>",
        }
        refs = [rev.reply_to] if rev.reply_to else []
        if i > 0 and rev.cover:
            refs.append(self.msgid(rev.version, 0))
        elif i > 1:
            refs.append(self.msgid(rev.version, 1))
        if refs:
            headers |= {"In-Reply-To": f"<{refs[-1]}>", "References": " ".join(f"<{r}>" for r in refs)}
        return headers
