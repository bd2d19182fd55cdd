"""Compiling single objects of the files a revision touches, on the base and on the revision, and keeping the
diagnostics the revision adds:
- W=1 on the main config: each touched .c file it compiles, `make -k W=1 <obj>` (the warnings 0-day reports);
- the KASAN config for touched .c files the main config does not compile (mm/kasan/*: generic KASAN slows
  every boot 3-4x under TCG, so the booted kernel has none), `make -k <obj>`: such a file is still compiled,
  and its errors and new warnings reported.

The base side runs in the trusted build dir at the base (cached per file by base, arch, config hash and kind);
after W=1 there the objects are rebuilt with the normal flags, so later series builds start from a normal dir.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from bot.build import warnings as bw
from bot.build.builder import Builder
from bot.results import write_json_atomic

FORMAT = 1


@dataclass
class Compiled:
    """What compiling a set of objects gave: the diagnostics the revision adds, the sources whose object was
    written, and how long it took."""

    new: list[bw.Diagnostic] = field(default_factory=list)
    built: set[str] = field(default_factory=set)
    seconds: float = 0.0


def _cache_path(b: Builder, base: str, source: str, w1: bool) -> Path:
    name = hashlib.sha256(source.encode()).hexdigest()[:16]
    kind = "w1" if w1 else "objects"
    return b.cache / "build" / kind / f"{b.arch}-{b.hash}-{base}-v{FORMAT}" / f"{name}.json"


def base_diagnostics(b: Builder, base: str, sources: list[str], log_path: Path,
                     w1: bool) -> dict[str, list[bw.Diagnostic]]:
    """The base's diagnostics of each source compiled alone (the tree must be at `base`); sources the base
    does not have get none. With w1, only sources the trusted dir built, then rebuilt with normal flags."""
    out: dict[str, list[bw.Diagnostic]] = {}
    todo = []
    for s in sources:
        path = _cache_path(b, base, s, w1)
        if path.exists():
            out[s] = [bw.Diagnostic.from_json(d) for d in json.loads(path.read_text())["diagnostics"]]
        elif (b.tree / s).is_file() and (not w1 or (b.dir / s).with_suffix(".o").is_file()):
            todo.append(s)
        else:
            out[s] = []
    if todo:
        run = b.compile(log_path, todo, w1=w1)
        diags = bw.with_text(bw.parse(run.output), bw.line_reader(b.tree, b.dir))
        if w1:
            b.rebuild_objects(log_path, todo)  # the trusted dir back to the normal flags
        for s in todo:
            mine = [d for d in diags if d.file == s or not d.file.endswith(".c")]  # its own and its headers'
            out[s] = mine
            write_json_atomic(_cache_path(b, base, s, w1), {"base": base, "source": s,
                                                            "diagnostics": [d.to_json() for d in mine]})
    return out


def compile_new(b: Builder, sources: list[str], base: dict[str, list[bw.Diagnostic]], known: list[bw.Diagnostic],
                log_path: Path, w1: bool) -> Compiled:
    """Compile the revision's sources; the diagnostics not on the base (nor in `known`, e.g. found by the
    normal build already), and which objects were written."""
    if not sources:
        return Compiled()
    before = {s: _mtime(b.dir / s) for s in sources}
    run = b.compile(log_path, sources, w1=w1)
    diags = bw.with_text(bw.parse(run.output), bw.line_reader(b.tree, b.dir))
    built = {s for s in sources if _mtime(b.dir / s) not in (None, before[s])}
    return Compiled(bw.new_diagnostics(diags, [d for s in sources for d in base.get(s, [])] + list(known)),
                    built, run.seconds)


def _mtime(source: Path) -> float | None:
    try:
        return source.with_suffix(".o").stat().st_mtime
    except FileNotFoundError:
        return None
