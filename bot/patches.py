"""One model of a revision's mails and diffs, used by every stage that reads patches.

- Subjects are parsed by b4's own subject parser (b4.LoreSubject): `[RFC PATCH v2 3/4] mm: x` -> revision 2,
  counter 3 of 4, subject "mm: x".
- Diffs are parsed by unidiff (a maintained unified-diff parser): files with their old and new names, the
  preimage blob from `index abc..def`, binary patches, and hunks with their lines. A hunk that ends before its
  header's line counts (a truncated mail) is a DiffError that says where.
- parse_mbox() reads an am-ready mbox (b4's series.mbx) once: the patches in order, each with its raw bytes
  (what `git am` gets), body, diff and files; a cover letter is kept apart.
"""

from __future__ import annotations

import base64
import email
import email.errors
import email.header
import email.policy
import email.utils
import mailbox
import re
import tempfile
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import b4
import unidiff

from bot.errors import BadInput

_DIFF_START = re.compile(r"^(diff --git |--- \S.*\n\+\+\+ )", re.M)
_INDEX = re.compile(r"^index ([0-9a-f]+)\.\.([0-9a-f]+)")
_RENAME = re.compile(r"^(?:rename|copy) (from|to) (.+)$")  # what git apply obeys, whatever the diff --git line says
_BASE_COMMIT = re.compile(r"^base-commit:\s*([0-9a-f]{7,40})\s*$", re.M)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_ADDRESS_HEADERS = {"from", "to", "cc", "bcc", "reply-to", "sender", "resent-from", "resent-to", "resent-cc"}


class DiffError(ValueError):
    """The diff cannot be parsed as a whole (truncated or mangled); the message says where."""


# ---------------------------------------------------------------- subjects


def parse_subject(subject: str) -> b4.LoreSubject:
    """b4's reading of a subject: .revision, .counter, .expected, .reply, .patch, .rfc, .subject (clean)."""
    return b4.LoreSubject(" ".join(str(subject).split()))


def clean_subject(subject: str) -> str:
    """The subject without Re:/[PATCH ...] prefixes, whitespace folded (as git mailinfo leaves it)."""
    return str(parse_subject(subject).subject)


def is_series_root(subject: str) -> bool:
    """A cover letter (0/N) or a first patch (1/N, or a lone [PATCH]); not a reply, not patch 2..N."""
    s = parse_subject(subject)
    return bool(s.patch) and not s.reply and s.counter in (0, 1)


# ---------------------------------------------------------------- diffs


@dataclass
class Hunk:
    old_start: int
    old_len: int
    new_start: int
    new_len: int
    section: str  # what follows the second @@: usually the enclosing function's signature
    lines: list[tuple[str, str]] = field(default_factory=list)  # (" " | "-" | "+", text without newline)

    @property
    def header(self) -> str:
        """The hunk's @@ line as git writes it (",1" left out), with its section."""
        def side(start: int, length: int) -> str:
            return f"{start}" if length == 1 else f"{start},{length}"

        head = f"@@ -{side(self.old_start, self.old_len)} +{side(self.new_start, self.new_len)} @@"
        return f"{head} {self.section}" if self.section else head

    @property
    def func(self) -> str:
        """`static bool try_to_unmap_one(struct folio *folio, ...` -> try_to_unmap_one; "" if none."""
        head = self.section.split("(", 1)
        if len(head) < 2:
            return ""
        words = re.findall(r"[A-Za-z_]\w*", head[0])
        return words[-1] if words else ""


@dataclass
class FileDiff:
    old: str | None  # path before (None for a new file)
    new: str | None  # path after (None for a deleted file)
    preimage: str | None = None  # abbreviated blob id from `index abc..def`, None for a new file
    binary: bool = False
    hunks: list[Hunk] = field(default_factory=list)

    def paths(self) -> list[str]:
        return [p for p in dict.fromkeys((self.old, self.new)) if p]


def _path(name: str, prefix: str) -> str | None:
    name = name.strip()
    if len(name) >= 2 and name[0] == '"' and name[-1] == '"':  # git quotes unusual names
        name = name[1:-1].encode("latin-1", "replace").decode("unicode_escape", "replace")
    name = name.split("\t", 1)[0]  # traditional diffs put a timestamp after a tab
    if name == "/dev/null":
        return None
    return name[len(prefix):] if name.startswith(prefix) else name


def _where(text: str, error: str) -> str:
    """Say which hunk a parse error is in: 'hunk at line N of the diff for F ends early'."""
    lines = text.splitlines()
    stop = len(lines)
    bad = error.removeprefix("Hunk diff line expected: ").rstrip("\n")
    if bad != error:  # the line that broke the hunk: the first one that is not a hunk line, after a header
        seen_hunk = False
        for i, line in enumerate(lines):
            seen_hunk = seen_hunk or line.startswith("@@ ")
            if seen_hunk and line == bad:
                stop = i
                break
    header = next((i for i in range(stop - 1, -1, -1) if lines[i].startswith("@@ ")), None)
    if header is None:
        return f"the diff cannot be parsed: {error.strip()}"
    file = next((lines[i][4:].removeprefix("b/") for i in range(header, -1, -1) if lines[i].startswith("+++ ")), "?")
    return f"hunk at line {header + 1} of the diff for {file} ends early (message truncated?)"


def diff_text(body: str) -> str:
    """The diff part of a patch mail's body ("" when it has none)."""
    m = _DIFF_START.search(body)
    return body[m.start():] if m else ""


def parse_diff(text: str) -> list[FileDiff]:
    """The files of a (git) unified diff; DiffError naming the hunk when it is cut short or mangled."""
    diff = diff_text(text)
    if not diff:
        return []
    try:
        patchset = unidiff.PatchSet(diff)
    except unidiff.UnidiffParseError as e:
        raise DiffError(_where(diff, str(e))) from e
    files = []
    for pf in patchset:
        f = FileDiff(_path(pf.source_file, "a/"), _path(pf.target_file, "b/"), binary=pf.is_binary_file)
        if pf.is_added_file:
            f.old = None
        if pf.is_removed_file:
            f.new = None
        for info in map(str, pf.patch_info or []):
            if m := _INDEX.match(info):
                f.preimage = None if set(m.group(1)) == {"0"} else m.group(1)
            elif m := _RENAME.match(info.rstrip("\n")):
                setattr(f, "old" if m.group(1) == "from" else "new", _path(m.group(2), ""))
            elif info.startswith("GIT binary patch"):
                f.binary = True
        for h in pf:
            f.hunks.append(Hunk(h.source_start, h.source_length, h.target_start, h.target_length,
                                h.section_header.strip(),
                                [(ln.line_type, ln.value.rstrip("\n")) for ln in h
                                 if ln.line_type in (" ", "-", "+")]))
        files.append(f)
    return files


def diff_problem(body: str) -> str | None:
    """What is wrong with a patch mail's diff (a truncated hunk), else None."""
    try:
        parse_diff(body)
    except DiffError as e:
        return str(e)
    return None


def touched_paths(body: str) -> list[str]:
    """Paths a patch mail's diff touches (old and new names), in order; DiffError if it cannot be parsed."""
    return list(dict.fromkeys(p for f in parse_diff(body) for p in f.paths()))


# ---------------------------------------------------------------- Fixes: trailers

_FIXES_LINE = re.compile(r"^Fixes:[ \t]*(.*)$", re.M | re.I)
_FIXES = re.compile(r"([0-9a-f]{7,40})\s*\(\"(.+)\"\)\s*$")  # <sha> ("<subject>"); the subject may hold quotes


@dataclass(frozen=True)
class FixesTag:
    """One `Fixes: <sha> ("<subject>")` line of a commit message; problem says why a line is malformed."""

    line: str
    sha: str | None = None
    subject: str | None = None
    problem: str | None = None


def fixes_tags(body: str) -> list[FixesTag]:
    """The Fixes: lines of a patch mail's commit message (above the first `---`), each once."""
    message = re.split(r"^---[ \t]*$", body, maxsplit=1, flags=re.M)[0]
    out: list[FixesTag] = []
    for m in _FIXES_LINE.finditer(message):
        line = f"Fixes: {m.group(1).strip()}"
        if any(t.line == line for t in out):
            continue
        ok = _FIXES.fullmatch(m.group(1).strip())
        if ok:
            out.append(FixesTag(line, ok.group(1).lower(), " ".join(ok.group(2).split())))
        else:
            out.append(FixesTag(line, problem=f"malformed {line[:100]!r}: expected Fixes: <sha> (\"<subject>\")"))
    return out


# ---------------------------------------------------------------- mboxes


def split_mbox(raw: bytes) -> list[EmailMessage]:
    """Messages of a (mboxrd) mbox as the archive serves it, deduplicated the way b4 does it, every header
    readable (see sanitize_headers)."""
    msgs = b4.split_and_dedupe_pi_results(raw) if raw else []
    for msg in msgs:
        sanitize_headers(msg)
    return msgs


def sanitize_headers(msg: EmailMessage) -> list[str]:
    """Make every header of a mail from the archive readable; return the names of those that were not.

    Python's header parser raises on some hostile values (an encoded CR/LF in a display name: `From:
    =?utf-8?q?Troll=0ABcc:_x?= <t@example.org>`), and b4 reads them all. Such a header is rewritten: an
    address header keeps its address and gets its decoded name without control characters, quoted; any
    other header its decoded text without control characters. Nothing is dropped.
    """
    fixed = []
    for name, value in list(msg.raw_items()):
        try:
            str(msg.policy.header_fetch_parse(name, value))
            continue
        except Exception:  # noqa: BLE001 - whatever the parser raises, the value is data, not a crash
            fixed.append(name)
        if name.lower() in _ADDRESS_HEADERS:
            clean = ", ".join(_clean_address(part) for part in _address_parts(value))
        else:
            clean = _CONTROL.sub(" ", _decoded(value)).strip()
        _replace_raw(msg, name, value, clean)
        try:
            str(msg.policy.header_fetch_parse(name, clean))
        except Exception:  # noqa: BLE001 - still unreadable: keep the bare addresses (or nothing but text)
            bare = ", ".join(email.utils.getaddresses([clean])[i][1] for i in range(len(_address_parts(clean))))
            _replace_raw(msg, name, clean, bare if name.lower() in _ADDRESS_HEADERS else "?")
    return fixed


def _address_parts(value: str) -> list[str]:
    """An address list split at the commas that are outside quotes and <...>."""
    parts, cur, quoted, angle = [], "", False, False
    for ch in value:
        if ch == '"' and not angle:
            quoted = not quoted
        elif ch in "<>" and not quoted:
            angle = ch == "<"
        if ch == "," and not quoted and not angle:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return [p for p in [*parts, cur] if p.strip()]


def _clean_address(part: str) -> str:
    """`name <addr>` (or a bare addr) with the name decoded, control characters gone, re-quoted."""
    m = re.fullmatch(r"\s*(.*?)\s*<([^<>]*)>\s*", part, re.S)
    name, addr = (m.group(1), m.group(2)) if m else ("", part)
    name = _CONTROL.sub(" ", _decoded(name).strip('"')).strip()
    addr = _CONTROL.sub("", addr).strip()
    if "=?" in name:  # an encoded word inside the decoded name: encode the literal text, so it decodes once
        # by hand: b4 turns off the email package's header encoding for utf-8
        return f"=?utf-8?b?{base64.b64encode(name.encode('utf-8', 'surrogateescape')).decode()}?= <{addr}>"
    return email.utils.formataddr((name, addr))


def _decoded(value: str) -> str:
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (UnicodeError, LookupError, ValueError, email.errors.HeaderParseError):
        return value


def _replace_raw(msg: EmailMessage, name: str, old: str, new: str) -> None:
    """Replace one raw header value in place (same name, same position), without parsing it."""
    headers: list[tuple[str, str]] = msg._headers  # type: ignore[attr-defined]  # order kept, nothing parsed
    for i, (n, v) in enumerate(headers):
        if n == name and v == old:
            headers[i] = (n, new)
            return




@dataclass
class Patch:
    index: int  # 1-based position in the series
    subject: str  # without [PATCH ...] prefixes
    message_id: str
    raw: bytes  # the message as it was in the mbox, for git am
    body: str
    files: list[FileDiff]

    @property
    def diff(self) -> str:
        return diff_text(self.body)


@dataclass
class Series:
    """The patches of one revision, in order, and what the mbox says about its base."""

    patches: list[Patch]
    cover: EmailMessage | None = None
    base_commit: str | None = None  # a `base-commit:` line anywhere in the mbox

    def paths(self) -> list[str]:
        return list(dict.fromkeys(p for patch in self.patches for f in patch.files for p in f.paths()))

    def bodies(self) -> list[str]:
        return [p.body for p in self.patches]


def message_body(msg: EmailMessage) -> str:
    """The text/plain body of a mail, decoded; "" when it has none."""
    part = msg.get_body(preferencelist=("plain",)) if msg.is_multipart() else msg
    if part is None:
        return ""
    try:
        return str(part.get_content())
    except (LookupError, UnicodeError):
        payload = part.get_payload(decode=True)
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""


def parse_mbox(source: Path | bytes) -> Series:
    """Read an am-ready mbox (or a thread): its patches in N/M order, each counter once, replies left out; 0/N
    is the cover. BadInput if unreadable, without patches, or with a diff that cannot be parsed."""
    if isinstance(source, bytes):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "series.mbx"
            path.write_bytes(source)
            return parse_mbox(path)
    try:
        box = mailbox.mbox(str(source), create=False)
        raws = [box.get_bytes(k) for k in box.keys()]
        box.close()
    except (OSError, mailbox.Error) as e:
        raise BadInput(f"cannot read mbox {source}: {e}") from e
    series = Series([])
    found: list[tuple[int, bytes, EmailMessage, str]] = []
    counters: set[int] = set()
    for raw in raws:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        subject = parse_subject(str(msg.get("Subject", "")))
        body = message_body(msg)
        if m := _BASE_COMMIT.search(body):
            series.base_commit = series.base_commit or m.group(1)
        if subject.reply:
            continue
        if subject.counter == 0 and not subject.counters_inferred:  # 0/N: the cover, even if it quotes a diff
            series.cover = series.cover or msg
            continue
        if not subject.counters_inferred:
            if subject.counter in counters:
                continue  # a patch sent twice is applied once
            counters.add(subject.counter)
        found.append((0 if subject.counters_inferred else subject.counter, raw, msg, body))
    for _, raw, msg, body in sorted(found, key=lambda f: f[0]):
        title = clean_subject(str(msg.get("Subject", "")))
        try:
            files = parse_diff(body)
        except DiffError as e:
            raise BadInput(f"patch {len(series.patches) + 1} '{title}': {e}") from e
        msgid = str(msg.get("Message-ID", "")).strip().strip("<>")
        series.patches.append(Patch(len(series.patches) + 1, title, msgid, raw, body, files))
    if not series.patches:
        raise BadInput(f"{source} holds no patches")
    return series
