"""W=1 on what a revision touches: each touched .c file the config compiles, built with `make W=1 <obj>` on the
base and on the revision; the W=1 warnings the revision adds are reported beside the normal build's.

The base side runs in the trusted build dir at the base (cached per file by base, arch and config hash), and
its objects are rebuilt with the normal flags right after, so later series builds start from a normal dir.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from bot.build import warnings as bw
from bot.build.builder import Builder
from bot.results import write_json_atomic

W1_FORMAT = 1


def _cache_path(b: Builder, base: str, source: str) -> Path:
    name = hashlib.sha256(source.encode()).hexdigest()[:16]
    return b.cache / "build" / "w1" / f"{b.arch}-{b.hash}-{base}-v{W1_FORMAT}" / f"{name}.json"


def base_w1(b: Builder, base: str, sources: list[str], log_path: Path) -> dict[str, list[bw.Diagnostic]]:
    """The base's W=1 diagnostics of each source (the tree must be at `base`); sources the base does not
    build (new files, or not in this config) get none."""
    out: dict[str, list[bw.Diagnostic]] = {}
    todo = []
    for s in sources:
        path = _cache_path(b, base, s)
        if path.exists():
            out[s] = [bw.Diagnostic.from_json(d) for d in json.loads(path.read_text())["diagnostics"]]
        elif (b.dir / s).with_suffix(".o").is_file() and (b.tree / s).is_file():
            todo.append(s)
        else:
            out[s] = []
    if todo:
        run = b.w1(log_path, todo)
        diags = bw.with_text(bw.parse(run.output), bw.line_reader(b.tree, b.dir))
        b.rebuild_objects(log_path, todo)  # the trusted dir back to the normal flags
        for s in todo:
            mine = [d for d in diags if d.file == s or not d.file.endswith(".c")]  # its own and its headers'
            out[s] = mine
            write_json_atomic(_cache_path(b, base, s), {"base": base, "source": s,
                                                        "diagnostics": [d.to_json() for d in mine]})
    return out


def new_w1(b: Builder, sources: list[str], base: dict[str, list[bw.Diagnostic]], normal: list[bw.Diagnostic],
           log_path: Path) -> tuple[list[bw.Diagnostic], float]:
    """W=1 diagnostics of the revision's sources not on the base (nor already found by the normal build),
    and how long the W=1 make took."""
    if not sources:
        return [], 0.0
    run = b.w1(log_path, sources)
    diags = bw.with_text(bw.parse(run.output), bw.line_reader(b.tree, b.dir))
    known = [d for s in sources for d in base.get(s, [])] + list(normal)
    return bw.new_diagnostics(diags, known), run.seconds
