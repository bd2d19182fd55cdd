"""Hunks mode: what a revision's patches show of each file, when the series does not apply.

The patches of a revision are replayed onto a sparse file: only lines some hunk showed are known, each
tagged with its line in the base (None when a patch added it) and the function its hunk header names.
That gives the revision's final text where it changed something and the base text around it, both with
real line numbers, so patch 4 editing patch 3's lines is seen once, as it ends up.
"""

from __future__ import annotations

import email
import email.policy
import mailbox
import re
import tempfile
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@ ?(.*)$")
_SUBJECT = re.compile(r"^\s*\[(?:[^\]]*\s)?PATCH[^\s\]]*(?:\s[^\]]*?)??(?:\s(\d+)/(\d+))?\]", re.IGNORECASE)


@dataclass
class Hunk:
    old_start: int
    old_len: int
    new_start: int
    new_len: int
    func: str  # function name from the hunk header, "" if none
    lines: list[tuple[str, str]] = field(default_factory=list)  # (' ', '-', '+'), text


@dataclass
class FilePatch:
    path: str
    hunks: list[Hunk] = field(default_factory=list)


@dataclass
class Line:
    text: str
    base: int | None  # line number in the base, None if a patch added it
    func: str


@dataclass
class SparseFile:
    """The known lines of one file after some patches, plus the base lines seen on the way."""

    lines: dict[int, Line] = field(default_factory=dict)
    steps: list[tuple[int, int]] = field(default_factory=lambda: [(1, 0)])  # (from line, d): base = line - d
    base: dict[int, Line] = field(default_factory=dict)
    changed_base: set[int] = field(default_factory=set)  # base lines some patch removed or replaced

    def _d(self, line: int) -> int:
        d = 0
        for start, val in self.steps:
            if start > line:
                break
            d = val
        return d

    def apply(self, fp: FilePatch) -> None:
        hunks = sorted(fp.hunks, key=lambda h: h.old_start)
        new_lines: dict[int, Line] = {}
        ranges = [(_first(h.old_start, h.old_len), _first(h.old_start, h.old_len) + h.old_len) for h in hunks]

        def shift(line: int) -> int | None:
            """New number of an old line outside every hunk, None inside one."""
            delta = 0
            for h, (s, e) in zip(hunks, ranges, strict=True):
                if s <= line < e:
                    return None
                if e <= line:
                    delta += h.new_len - h.old_len
            return line + delta

        for old, ln in self.lines.items():
            new = shift(old)
            if new is not None:
                new_lines[new] = ln
        steps: list[tuple[int, int]] = []
        for start, d in self.steps:
            new = shift(start)
            if new is not None:
                steps.append((new, d + new - start))
        for h, (s, e) in zip(hunks, ranges, strict=True):
            o, n = s, _first(h.new_start, h.new_len)
            for tag, text in h.lines:
                if tag == "+":
                    new_lines[n] = Line(text, None, h.func)
                    n += 1
                    continue
                known = self.lines.get(o)
                base = known.base if known is not None else o - self._d(o)
                if base is not None and known is None:
                    self.base[base] = Line(text, base, h.func)
                if tag == "-":
                    if base is not None:
                        self.changed_base.add(base)
                else:
                    new_lines[n] = Line(text, base, known.func if known else h.func)
                    n += 1
                o += 1
            end_new = _first(h.new_start, h.new_len) + h.new_len
            steps.append((end_new, self._d(e) + end_new - e))
        self.lines = new_lines
        self.steps = sorted(dict(sorted(steps)).items())

    def final_of_base(self, base: int) -> int | None:
        """Where an untouched base line sits now."""
        if base in self.changed_base:
            return None
        for i, (start, d) in enumerate(self.steps):
            end = self.steps[i + 1][0] if i + 1 < len(self.steps) else None
            cur = base + d
            if cur >= start and (end is None or cur < end):
                known = self.lines.get(cur)
                return cur if known is None or known.base == base else None
        return None


def _first(start: int, length: int) -> int:
    """First line of a hunk side; an empty side (`-10,0`) sits after line `start`."""
    return start if length else start + 1


def parse_patch(text: str) -> list[FilePatch]:
    """The file diffs of one patch email body (git format-patch output)."""
    out: list[FilePatch] = []
    cur: FilePatch | None = None
    hunk: Hunk | None = None
    left = right = 0
    for raw in text.splitlines():
        if raw.startswith("diff --git "):
            cur, hunk = None, None
            continue
        if hunk is not None and (left > 0 or right > 0):
            tag, body = (raw[:1] or " "), raw[1:]
            if tag == "\\":  # "\ No newline at end of file"
                continue
            if tag not in " -+":
                hunk = None
            else:
                hunk.lines.append((tag, body))
                left -= tag != "+"
                right -= tag != "-"
                continue
        if raw.startswith("+++ "):
            path = raw[4:].strip()
            cur = FilePatch(path[2:] if path.startswith("b/") else path)
            out.append(cur)
            continue
        m = _HUNK.match(raw)
        if m and cur is not None:
            old_len = int(m.group(2)) if m.group(2) is not None else 1
            new_len = int(m.group(4)) if m.group(4) is not None else 1
            hunk = Hunk(int(m.group(1)), old_len, int(m.group(3)), new_len, _header_func(m.group(5)))
            cur.hunks.append(hunk)
            left, right = old_len, new_len
    return [fp for fp in out if fp.path != "/dev/null"]


def _header_func(header: str) -> str:
    """`static bool try_to_unmap_one(struct folio *folio, ...` -> try_to_unmap_one."""
    head = header.split("(", 1)
    if len(head) < 2:
        return ""
    words = re.findall(r"[A-Za-z_]\w*", head[0])
    return words[-1] if words else ""


def patch_bodies(mbox: bytes) -> list[str]:
    """Bodies of the `[PATCH ... N/M]` messages of an am-ready mbox, in series order; no replies, no cover."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "series.mbox"
        path.write_bytes(mbox)
        box = mailbox.mbox(str(path))
        found: list[tuple[int, str]] = []
        for key in box.keys():
            msg = email.message_from_bytes(box.get_bytes(key), policy=email.policy.default)
            if not isinstance(msg, EmailMessage):
                continue
            subject = " ".join(str(msg.get("Subject", "")).split())
            m = _SUBJECT.match(subject)
            if m is None or (m.group(1) is not None and int(m.group(1)) == 0):
                continue
            part = msg.get_body(preferencelist=("plain",))
            if part is None or not isinstance(part, EmailMessage):
                continue
            body = part.get_content()
            if "\n+++ " in body:
                found.append((int(m.group(1) or 1), body))
        box.close()
    by_index: dict[int, str] = {}
    for index, body in found:
        by_index.setdefault(index, body)  # a patch sent twice is applied once
    return [by_index[i] for i in sorted(by_index)]


def replay(bodies: list[str]) -> dict[str, SparseFile]:
    files: dict[str, SparseFile] = {}
    for body in bodies:
        for fp in parse_patch(body):
            files.setdefault(fp.path, SparseFile()).apply(fp)
    return files


def view(rev: SparseFile | None, other: SparseFile | None) -> dict[int, Line]:
    """The revision's final lines, plus base lines the other revision showed that this one left alone.

    Both revisions then cover the same regions, so an exit one of them did not touch is seen on both sides.
    """
    if rev is None:
        return dict(other.base) if other is not None else {}
    out = dict(rev.lines)
    if other is not None:
        for b, ln in other.base.items():
            cur = rev.final_of_base(b)
            if cur is not None and cur not in out:
                out[cur] = ln
    return out


def same_base(a: SparseFile, b: SparseFile) -> bool:
    common = a.base.keys() & b.base.keys()
    return all(a.base[k].text == b.base[k].text for k in common)


def touched_lines(rev: SparseFile) -> tuple[set[int], set[int]]:
    """(final lines a patch added, base lines a patch removed)."""
    return {n for n, ln in rev.lines.items() if ln.base is None}, set(rev.changed_base)
