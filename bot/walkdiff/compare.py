"""Pairing the walk exits of one version of a function with another's, and saying what changed."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from bot.config import WalkdiffConfig
from bot.results import WalkdiffResult
from bot.walkdiff.exits import Exit, FuncModel

_SIMILAR = 0.35  # below this two exits to one label are unrelated, not one changed exit
_RENAMED = 0.6  # body similarity that makes a removed + added function one renamed function


# ---- pairing exits ----


def _ratio(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b).ratio() if a and b else 0.0


def _compatible(x: Exit, y: Exit) -> bool:
    """Same exit seen through hunks of different extent: one guard chain ends the other."""
    if (x.kind, x.target) != (y.kind, y.target):
        return False
    short, long_ = (x, y) if len(x.condition) <= len(y.condition) else (y, x)
    return short.outer_unknown and long_.condition.endswith(" && " + short.condition)


def pair_exits(before: list[Exit], after: list[Exit]) -> list[tuple[Exit | None, Exit | None]]:
    """Pair exits: same target+condition, then same target with the most similar condition/comment,
    then same condition with another target; the rest are added or removed."""
    left, right = list(before), list(after)
    pairs: list[tuple[Exit | None, Exit | None]] = []

    def take(match: Callable[[Exit, Exit], bool]) -> None:
        for a in list(right):
            for b in left:
                if match(b, a):
                    pairs.append((b, a))
                    left.remove(b)
                    right.remove(a)
                    break

    take(lambda b, a: (b.kind, b.target, b.condition) == (a.kind, a.target, a.condition))
    take(_compatible)
    scored = sorted(
        (
            (max(_ratio(b.condition, a.condition), _ratio(b.comment, a.comment)), i, j)
            for i, b in enumerate(left)
            for j, a in enumerate(right)
            if (b.kind, b.target) == (a.kind, a.target)
        ),
        key=lambda t: -t[0],
    )
    used_b: set[int] = set()
    used_a: set[int] = set()
    for score, i, j in scored:
        if score >= _SIMILAR and i not in used_b and j not in used_a:
            used_b.add(i)
            used_a.add(j)
            pairs.append((left[i], right[j]))
    left = [b for i, b in enumerate(left) if i not in used_b]
    right = [a for j, a in enumerate(right) if j not in used_a]
    take(lambda b, a: b.condition == a.condition and b.condition != "unknown")
    pairs += [(b, None) for b in left] + [(None, a) for a in right]
    return sorted(pairs, key=_pair_line)


def _pair_line(pair: tuple[Exit | None, Exit | None]) -> int:
    main = pair[1] if pair[1] is not None else pair[0]
    return main.line if main is not None else 0


def _exit_entry(b: Exit | None, a: Exit | None) -> dict[str, Any]:
    main = a if a is not None else b
    assert main is not None
    entry: dict[str, Any] = {"change": "added" if b is None else "removed" if a is None else "unchanged"}
    entry.update(kind=main.kind, target=main.target)
    if b is not None and a is not None:
        what = [f for f in ("kind", "target", "condition", "comment", "feeds") if getattr(b, f) != getattr(a, f)]
        if _compatible(b, a):  # only the hunks showed more or less of the guard
            what.remove("condition")
        if what:
            entry.update(change="changed", what=what)
    entry["before"] = b.to_json() if b is not None else None
    entry["after"] = a.to_json() if a is not None else None
    return entry


# ---- per function ----


def _helpers(exits: Iterable[Exit], changed: set[str], models: Mapping[str, FuncModel]) -> list[str]:
    """Changed functions the guards (or their feeds) call, and changed functions those call in turn."""
    todo = sorted({c for e in exits for c in e.calls} & changed)
    seen: list[str] = []
    while todo:
        name = todo.pop(0)
        if name in seen:
            continue
        seen.append(name)
        model = models.get(name)
        if model is not None:
            todo += sorted((model.calls & changed) - set(seen))
    return seen


def diff_function(
    name: str,
    b: FuncModel | None,
    a: FuncModel | None,
    changed: set[str],
    models: Mapping[str, FuncModel],
    labels: list[str],
) -> dict[str, Any]:
    pairs = pair_exits(b.exits if b else [], a.exits if a else [])
    notes: list[str] = []
    out: dict[str, Any] = {"name": name}
    if b is None:
        notes.append("new function")
    elif a is None:
        notes.append("function removed")
    else:
        if b.name != a.name:
            out["renamed_from"] = b.name
            notes.append(f"renamed from {b.name}()")
        if b.path and a.path and b.path != a.path:
            out["moved_from"] = b.path
            notes.append(f"moved from {b.path} to {a.path}")
        for lbl in labels:
            if lbl in b.labels and lbl not in a.labels:
                notes.append(f"label {lbl} removed")
            elif lbl in a.labels and lbl not in b.labels:
                notes.append(f"label {lbl} added")
    errs = [m for m in (b, a) if m is not None and m.parse_errors]
    if errs:
        where = errs[-1].error_line
        notes.append(f"tree-sitter could not parse line {where} (a kernel macro?); exits there may be missing")
    if a is not None and a.path:
        out["file"] = a.path
    out["parse_errors"] = bool(errs)
    out["helpers_changed"] = _helpers((e for p in pairs for e in p if e is not None), changed, models)
    out["notes"] = notes
    out["exits"] = [_exit_entry(bx, ax) for bx, ax in pairs]
    return out


def _renames(gone: list[FuncModel], new: list[FuncModel]) -> dict[str, FuncModel]:
    """new name -> the removed function it most resembles, if the bodies are alike."""
    out: dict[str, FuncModel] = {}
    for n in new:
        best = max(gone, key=lambda g: _ratio(g.text, n.text), default=None)
        if best is not None and best not in out.values() and _ratio(best.text, n.text) >= _RENAMED:
            out[n.name] = best
    return out


def compare(
    before: Mapping[str, FuncModel],
    after: Mapping[str, FuncModel],
    touched: Collection[str],
    config: WalkdiffConfig,
    res: WalkdiffResult,
) -> WalkdiffResult:
    """Diff the walk functions among `touched` into res (status, detail, functions); tree and hunks mode."""
    changed = {n for n in set(before) | set(after) if function_text(before.get(n)) != function_text(after.get(n))}
    walk = sorted(
        n
        for n in touched
        if any(m is not None and m.is_walk(config.functions, config.labels) for m in (before.get(n), after.get(n)))
    )
    res.functions = []
    if not walk:
        shown = ", ".join(sorted(touched)[:8]) or "no C function"
        res.status, res.detail = "skipped", f"touches no walk function ({shown})"
        return res
    renamed = _renames([before[n] for n in walk if n not in after], [after[n] for n in walk if n not in before])
    models = {**before, **after}
    funcs = []
    for name in walk:
        if name in before and name not in after and name in {m.name for m in renamed.values()}:
            continue  # reported under its new name
        b = renamed.get(name, before.get(name))
        funcs.append(diff_function(name, b, after.get(name), changed, models, config.labels))
    res.functions = funcs
    res.status, res.detail = "ok", _summary(funcs)
    return res


def function_text(m: FuncModel | None) -> str | None:
    return m.text if m is not None else None


def _summary(funcs: list[dict[str, Any]]) -> str:
    parts = []
    for f in funcs:
        counts: dict[str, int] = {}
        for e in f["exits"]:
            counts[e["change"]] = counts.get(e["change"], 0) + 1
        moved = [c for c in ("changed", "added", "removed") if counts.get(c)]
        what = ", ".join(f"{counts[c]} {c}" for c in moved) if moved else "exits unchanged"
        what = what if f["exits"] else "no walk exits in the changed code"
        parts.append(f"{f['name']}(): {what}")
    return "; ".join(parts)
