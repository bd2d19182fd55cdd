"""Hunks mode: what a revision's patches show of each file, when the series does not apply.

The patches of a revision are replayed onto a sparse file: only lines some hunk showed are known, each
tagged with its line in the base (None when a patch added it) and the function its hunk header names.
That gives the revision's final text where it changed something and the base text around it, both with
real line numbers, so patch 4 editing patch 3's lines is seen once, as it ends up.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.patches import FileDiff, parse_diff


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

    def apply(self, fp: FileDiff) -> None:
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


def replay(bodies: list[str]) -> dict[str, SparseFile]:
    """Each file's sparse view after applying the patch bodies in order (deleted files drop out)."""
    files: dict[str, SparseFile] = {}
    for body in bodies:
        for fp in parse_diff(body):
            if fp.new is not None:
                files.setdefault(fp.new, SparseFile()).apply(fp)
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
