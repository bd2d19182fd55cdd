"""Which of the files a revision touches this arch's build really compiled, measured from make's own output.

A touched `.c` file was compiled when its object in the build dir was written by this build (its mtime is
after the build started: the series builds in a copy of the base's build dir, mtimes kept, and touched files
are made newer first), or when an object written by this build lists it among its dependencies (a `.c` that
another `.c` includes, like mm/percpu-km.c). A touched header counts the objects rebuilt that include it.

A file not compiled gets the reason, read from the Makefiles and .config: the option its `obj-$(CONFIG_X)`
line needs and whether this arch has it (with the fragment's comment when it says why not), the directory
whose option is off, or "no Makefile builds it".
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection
from pathlib import Path

from bot.results import FileCoverage as Coverage

SRC_PREFIX = "/src/"  # the tree inside the build sandbox, as the .cmd files name it
BUILD = "/build"  # the build dir inside the sandbox: make writes the deps relative to it ("../src/mm/x.c")
_DEP = re.compile(r"^\s+(\S+?)\s*\\?$")
_OPTION = re.compile(r"\$\((CONFIG_\w+)\)")


def rebuilt(build_dir: Path, since: float) -> list[Path]:
    """The objects this build wrote (their .cmd files name what they were compiled from)."""
    return [p for p in build_dir.rglob("*.o") if p.stat().st_mtime >= since]


def object_deps(obj: Path) -> set[str]:
    """Source paths (relative to the tree) an object was compiled from, from its .<name>.o.cmd."""
    cmd = obj.with_name(f".{obj.name}.cmd")
    try:
        text = cmd.read_text(errors="replace")
    except OSError:
        return set()
    deps = (os.path.normpath(os.path.join(BUILD, m.group(1))) for line in text.splitlines() if (m := _DEP.match(line)))
    return {d[len(SRC_PREFIX):] for d in deps if d.startswith(SRC_PREFIX)}


def measure(build_dir: Path, tree: Path, dotconfig: str, touched: list[str], since: float,
            notes: dict[str, str], diagnosed: Collection[str] = ()) -> list[Coverage]:
    """Coverage of every touched .c and .h file; `notes` maps CONFIG_X to why the arch lacks it, `diagnosed`
    holds the files the build's compiler messages name (a file that failed to compile was compiled too)."""
    wanted = [f for f in touched if f.endswith((".c", ".h"))]
    if not wanted:
        return []
    objects = rebuilt(build_dir, since)
    includers: dict[str, list[Path]] = {}
    needs_deps = any(f.endswith(".h") or not (build_dir / f).with_suffix(".o").is_file() for f in wanted)
    if needs_deps:  # reading every .cmd of the rebuilt objects costs ~1 ms each: only when a header asks
        for obj in objects:
            for dep in object_deps(obj):
                includers.setdefault(dep, []).append(obj)
    built = set(objects)
    out = []
    for f in wanted:
        if not (tree / f).is_file():
            out.append(Coverage(f, False, "deleted by the series"))
        elif f.endswith(".h"):
            n = len(includers.get(f, []))
            out.append(Coverage(f, n > 0, None if n else "no object this config builds includes it", n))
        elif (build_dir / f).with_suffix(".o") in built or f in diagnosed:
            out.append(Coverage(f, True))
        elif f in includers:
            via = min(str(p.relative_to(build_dir)) for p in includers[f])
            out.append(Coverage(f, True, objects=len(includers[f]), via=via))
        else:
            out.append(Coverage(f, False, why_not(tree, f, dotconfig, notes)))
    return out


def _enabled(dotconfig: str, option: str) -> bool:
    return re.search(rf"^{option}=[ym]$", dotconfig, re.M) is not None


def why_not(tree: Path, path: str, dotconfig: str, notes: dict[str, str]) -> str:
    """Why the build did not compile tree/path: the first missing option on the way down from mm/."""
    parts = path.split("/")
    for depth in range(1, len(parts)):  # mm/damon/core.c: is damon/ built by mm/Makefile, then core.o
        directory, entry = "/".join(parts[:depth]), parts[depth]
        name = entry[:-2] + ".o" if depth == len(parts) - 1 else entry + "/"
        makefile = next((tree / directory / m for m in ("Makefile", "Kbuild") if (tree / directory / m).is_file()),
                        None)
        if makefile is None:
            continue
        options = _rule_options(makefile.read_text(errors="replace"), name)
        if options is None:
            return f"no Makefile builds it (no rule for {name} in {makefile.relative_to(tree)})"
        missing = [o for o in options if not _enabled(dotconfig, o)]
        if missing:
            option = missing[0]
            why = f": {notes[option]}" if option in notes else ""
            return f"needs {option}, which this config does not set{why}"
    return "not rebuilt by this build (its object was up to date?)"


def _rule_options(makefile: str, name: str) -> list[str] | None:
    """The options a Makefile line that builds `name` depends on ([] for obj-y), None when no line does.

    Follows one level of composite objects: `foo-$(CONFIG_B) += a.o` with `obj-$(CONFIG_A) += foo.o`.
    """
    text = makefile.replace("\\\n", " ")
    for line in text.splitlines():
        lhs, sep, rhs = line.partition("+=") if "+=" in line else line.partition(":=")
        if not sep or not re.search(rf"(^|\s){re.escape(name)}(\s|$)", rhs):
            continue
        lhs = lhs.strip()
        own = _OPTION.findall(lhs)
        if lhs.startswith(("obj-", "lib-")):
            return own
        composite = re.sub(r"-(\$\(CONFIG_\w+\)|y|objs)$", "", lhs)  # foo-$(CONFIG_B) -> foo
        outer = _rule_options(makefile, f"{composite}.o") if composite != lhs else None
        return own + (outer or [])
    return None
