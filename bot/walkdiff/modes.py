"""The two ways to see a revision's walk functions: whole files from the applied trees (tree mode), or what
the patch hunks show when a revision did not apply (hunks mode, partial: code outside the hunks is unknown).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping

from bot.config import WalkdiffConfig
from bot.results import WalkdiffResult
from bot.walkdiff.cnodes import function_name
from bot.walkdiff.compare import compare, function_text
from bot.walkdiff.exits import FuncModel, analyse_source
from bot.walkdiff.fragments import analyse_fragment, fragment_def, merge_models
from bot.walkdiff.hunks import Line, SparseFile, replay, same_base, view

log = logging.getLogger(__name__)
C_SUFFIXES = (".c", ".h")


# ---------------------------------------------------------------- tree mode


def _models_of_files(files: Mapping[str, str], labels: list[str]) -> dict[str, FuncModel]:
    out: dict[str, FuncModel] = {}
    for path in sorted(files):
        if path.endswith(C_SUFFIXES):
            for name, m in analyse_source(files[path], labels, path).items():
                if name not in out or len(m.text) > len(out[name].text):
                    out[name] = m
    return out


def changed_functions(before: Mapping[str, str], after: Mapping[str, str], labels: list[str]) -> set[str]:
    """Functions whose text differs between two versions of some files (whole files)."""
    bm, am = _models_of_files(before, labels), _models_of_files(after, labels)
    return {n for n in set(bm) | set(am) if function_text(bm.get(n)) != function_text(am.get(n))}


def walkdiff_tree(
    before: Mapping[str, str],
    after: Mapping[str, str],
    config: WalkdiffConfig,
    *,
    against: str = "base",
    revision: str = "",
    touched: Collection[str] | None = None,
) -> WalkdiffResult:
    """Tree mode: `before`/`after` map a path to the whole file text (previous revision's tree or the base,
    and this revision's applied tree). `touched` defaults to every function whose text differs."""
    res = WalkdiffResult("ok", "", against=against, revision=revision, mode="tree", partial=False)
    try:
        bm = _models_of_files(before, config.labels)
        am = _models_of_files(after, config.labels)
        if touched is None:
            touched = {n for n in set(bm) | set(am) if function_text(bm.get(n)) != function_text(am.get(n))}
        return compare(bm, am, touched, config, res)
    except Exception as e:  # a parser surprise must not stop the pipeline; the report says so
        log.exception("walkdiff (tree) failed")
        res.status, res.detail = "error", f"walkdiff failed: {e}"
        return res


# ---------------------------------------------------------------- hunks mode


def _segments(lines: Mapping[int, Line]) -> list[tuple[str, int, list[str]]]:
    """Split known lines into (function, first line, texts): at gaps, hunk-header changes and definitions."""
    out: list[tuple[str, int, list[str]]] = []
    prev_no, prev_func = -2, ""
    for no in sorted(lines):
        ln = lines[no]
        new_run = no != prev_no + 1
        if new_run or ln.func != prev_func:
            out.append((ln.func, no, []))
        elif ln.text[:1].isalpha() or ln.text[:1] == "_":
            rest = "\n".join(lines[k].text for k in range(no, no + 400) if k in lines)
            found = fragment_def(rest)
            if found is not None:
                out.append((function_name(found[0]), no, []))
        out[-1][2].append(ln.text)
        prev_no, prev_func = no, ln.func
    return out


def _models_of_view(
    files: Mapping[str, Mapping[int, Line]], labels: list[str], marked: Mapping[str, set[int]]
) -> tuple[dict[str, FuncModel], set[str]]:
    """Function models of a sparse view, and the functions holding a marked (changed) line."""
    parts: dict[str, list[FuncModel]] = {}
    hit: set[str] = set()
    for path in sorted(files):
        if not path.endswith(C_SUFFIXES):
            continue
        for func, first, texts in _segments(files[path]):
            m = analyse_fragment("\n".join(texts), func, first, labels)
            if not m.name:
                continue
            m.path = path
            parts.setdefault(m.name, []).append(m)
            if any(first <= k < first + len(texts) for k in marked.get(path, ())):
                hit.add(m.name)
    models = {}
    for name, ps in parts.items():
        models[name] = merge_models(name, ps)
        models[name].path = ps[0].path
    return models, hit


def _touched(rev: Mapping[str, SparseFile], labels: list[str]) -> set[str]:
    added = {p: {n for n, ln in f.lines.items() if ln.base is None} for p, f in rev.items()}
    _, t1 = _models_of_view({p: f.lines for p, f in rev.items()}, labels, added)
    _, t2 = _models_of_view({p: f.base for p, f in rev.items()}, labels, {p: f.changed_base for p, f in rev.items()})
    return t1 | t2


def walkdiff_hunks(
    bodies: list[str],
    prev_bodies: list[str] | None,
    config: WalkdiffConfig,
    *,
    revision: str = "",
    against: str | None = None,
    fixes: bool = False,
) -> WalkdiffResult:
    """Hunks mode: the patch bodies of revision N and of N-1 (None: against the base, seen through the `-`
    side of N's hunks). Result is partial: code outside the hunks is unknown.

    fixes: prev_bodies is the patch N fixes, made on an older tree: each side is seen as posted, and only
    functions both change are compared."""
    res = WalkdiffResult("ok", "", against=against or ("base" if prev_bodies is None else "previous"),
                         revision=revision, mode="hunks", partial=True)
    try:
        cur = replay(bodies)
        prev = replay(prev_bodies) if prev_bodies is not None else None
        if not cur:
            res.status, res.detail = "skipped", "no patch hunks found in the revision's mbox"
            return res
        notes = []
        before: dict[str, dict[int, Line]] = {}
        after: dict[str, dict[int, Line]] = {}
        for path in sorted(set(cur) | set(prev or {})):
            c, p = cur.get(path), (prev or {}).get(path)
            if prev is not None and c is not None and p is not None and (fixes or not same_base(c, p)):
                if not fixes:
                    notes.append(f"{path}: the two revisions are based on different trees; compared as posted")
                before[path], after[path] = view(p, None), view(c, None)
                continue
            before[path] = view(p, c) if prev is not None else view(None, c)
            after[path] = view(c, p)
        bm, _ = _models_of_view(before, config.labels, {})
        am, _ = _models_of_view(after, config.labels, {})
        mine, theirs = _touched(cur, config.labels), (_touched(prev, config.labels) if prev else set())
        touched = mine & theirs if fixes else mine | theirs
        res = compare(bm, am, touched, config, res)
        res.notes = notes
        return res
    except Exception as e:  # a parser surprise must not stop the pipeline; the report says so
        log.exception("walkdiff (hunks) failed")
        res.status, res.detail = "error", f"walkdiff failed: {e}"
        return res
