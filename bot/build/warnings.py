"""Compiler diagnostics from a build log, and which of them a series adds.

A diagnostic is matched across builds by (file, message, text of the source line), never by line number:
a patch that adds lines above an old warning moves it without making it new.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# gcc/clang: "path:line:col: warning: message [-Wflag]" (col optional; "fatal error" too).
DIAG_RE = re.compile(
    r"^(?P<file>[^\s:][^:\n]*?):(?P<line>\d+):(?:(?P<col>\d+):)? (?P<kind>warning|error|fatal error): (?P<msg>.+)$",
    re.M,
)
# The sandbox mounts the tree at /src and the build dir at /build (bot.build). ccache's base_dir makes the
# compiler see paths relative to make's cwd (/build for the kernel): sources as ../src/..., generated files
# as ./include/generated/...; a path left relative is looked up in the tree first, then the build dir.
SRC_PREFIXES = ("/src/", "../src/")
BUILD_PREFIXES = ("/build/",)


@dataclass(frozen=True)
class Diagnostic:
    file: str  # relative to the source tree; generated files under the build dir start with "<build>/"
    line: int
    kind: str  # "warning" or "error"
    message: str
    text: str = ""  # the source line, stripped (filled in by with_text)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.file, self.message, self.text)

    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Diagnostic:
        return cls(**data)


def normalize_path(path: str) -> str:
    for p in SRC_PREFIXES:
        if path.startswith(p):
            return path[len(p) :]
    for p in BUILD_PREFIXES:
        if path.startswith(p):
            return "<build>/" + path[len(p) :]
    return path.removeprefix("./")


def parse(log: str) -> list[Diagnostic]:
    """Every warning/error in a make log, deduplicated (a header's warning repeats for each includer)."""
    seen: set[tuple[str, int, str]] = set()
    out = []
    for m in DIAG_RE.finditer(log):
        kind = "warning" if m.group("kind") == "warning" else "error"
        d = Diagnostic(normalize_path(m.group("file")), int(m.group("line")), kind, m.group("msg").strip())
        if (d.file, d.line, d.message) not in seen:
            seen.add((d.file, d.line, d.message))
            out.append(d)
    return out


def with_text(diags: Iterable[Diagnostic], read_line: Callable[[str, int], str]) -> list[Diagnostic]:
    """Attach the stripped text of each diagnostic's source line (read from the tree as it was built)."""
    return [Diagnostic(d.file, d.line, d.kind, d.message, read_line(d.file, d.line).strip()) for d in diags]


def line_reader(src: Path, build: Path) -> Callable[[str, int], str]:
    cache: dict[str, list[str]] = {}

    def read(file: str, line: int) -> str:
        if file not in cache:
            if file.startswith("<build>/"):
                paths = [build / file.removeprefix("<build>/")]
            else:
                paths = [src / file, build / file]
            cache[file] = []
            for path in paths:
                try:
                    cache[file] = path.read_text(errors="replace").splitlines()
                    break
                except OSError:
                    continue
        lines = cache[file]
        return lines[line - 1] if 0 < line <= len(lines) else ""

    return read


def new_diagnostics(after: Iterable[Diagnostic], before: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Diagnostics in `after` whose (file, message, line text) is not in `before` -- except one whose line the
    patch edited while the base had the same message in that file unmatched (a warning the base had on the
    line before the edit): that is the old warning, not a new one."""
    before = list(before)
    known = {d.key for d in before}
    spare = Counter((d.file, d.message) for d in before if d.key not in {a.key for a in after})
    new = []
    for d in after:
        if d.key in known:
            continue
        if spare[(d.file, d.message)] > 0:
            spare[(d.file, d.message)] -= 1
            continue
        new.append(d)
    return new


def first_error(diags: Iterable[Diagnostic], log: str) -> str:
    """One line for a failed build: the first compiler error, else make's own last error line."""
    for d in diags:
        if d.kind == "error":
            return f"{d.where()}: error: {d.message}"
    for line in reversed(log.splitlines()):
        if "Error " in line or "error:" in line.lower():
            return line.strip()
    return "build failed (no error line found in the log)"
