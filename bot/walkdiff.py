"""The walkdiff stage: how the exits of rmap/page-table walks changed from one revision to the next.

Reviewers of try_to_unmap_one() argue about a few lines: `if (nr_pages > 1) goto walk_done;` against
`if (nr_pages == folio_nr_pages(folio)) goto walk_done;`, walk_done against walk_abort. This stage lists,
per walk function a revision touches, each exit with its guard, comment and the assignments feeding the
guard, and pairs them with the previous revision's exits.

Two sources: whole files (tree mode, the applied trees) or the patch hunks (hunks mode, partial).
"""

from __future__ import annotations

import difflib
import logging
import textwrap
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from bot.config import Config, WalkdiffConfig
from bot.results import RevisionResult, StageResult, revision_dir
from bot.walkdiff_exits import (
    Exit,
    FuncModel,
    analyse_fragment,
    analyse_source,
    fragment_def,
    function_name,
    merge_models,
)
from bot.walkdiff_hunks import Line, SparseFile, patch_bodies, replay, same_base, view

log = logging.getLogger(__name__)
_C_SUFFIXES = (".c", ".h")
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
    base_extra: dict[str, Any],
) -> StageResult:
    """Diff the walk functions among `touched`; shared by tree and hunks mode."""
    changed = {n for n in set(before) | set(after) if _text(before.get(n)) != _text(after.get(n))}
    walk = sorted(
        n
        for n in touched
        if any(m is not None and m.is_walk(config.functions, config.labels) for m in (before.get(n), after.get(n)))
    )
    extra = dict(base_extra, functions=[])
    if not walk:
        shown = ", ".join(sorted(touched)[:8]) or "no C function"
        return StageResult("skipped", f"touches no walk function ({shown})", extra)
    renamed = _renames([before[n] for n in walk if n not in after], [after[n] for n in walk if n not in before])
    models = {**before, **after}
    funcs = []
    for name in walk:
        if name in before and name not in after and name in {m.name for m in renamed.values()}:
            continue  # reported under its new name
        b = renamed.get(name, before.get(name))
        funcs.append(diff_function(name, b, after.get(name), changed, models, config.labels))
    extra["functions"] = funcs
    return StageResult("ok", _summary(funcs), extra)


def _text(m: FuncModel | None) -> str | None:
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


# ---- tree mode ----


def _models_of_files(files: Mapping[str, str], labels: list[str]) -> dict[str, FuncModel]:
    out: dict[str, FuncModel] = {}
    for path in sorted(files):
        if path.endswith(_C_SUFFIXES):
            for name, m in analyse_source(files[path], labels, path).items():
                if name not in out or len(m.text) > len(out[name].text):
                    out[name] = m
    return out


def walkdiff_tree(
    before: Mapping[str, str],
    after: Mapping[str, str],
    config: WalkdiffConfig,
    *,
    against: str = "base",
    revision: str = "",
    touched: Collection[str] | None = None,
) -> StageResult:
    """Tree mode: `before`/`after` map a path to the whole file text (previous revision's tree or the base,
    and this revision's applied tree). `touched` defaults to every function whose text differs."""
    extra: dict[str, Any] = {"against": against, "revision": revision, "mode": "tree", "partial": False}
    try:
        bm = _models_of_files(before, config.labels)
        am = _models_of_files(after, config.labels)
        if touched is None:
            touched = {n for n in set(bm) | set(am) if _text(bm.get(n)) != _text(am.get(n))}
        return compare(bm, am, touched, config, extra)
    except Exception as e:  # a parser surprise must not stop the pipeline; the report says so
        log.exception("walkdiff (tree) failed")
        return StageResult("error", f"walkdiff failed: {e}", extra)


diff_files = walkdiff_tree


# ---- hunks mode ----


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
        if not path.endswith(_C_SUFFIXES):
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
    mbox: bytes | list[str],
    prev_mbox: bytes | list[str] | None,
    config: WalkdiffConfig,
    *,
    revision: str = "",
    against: str | None = None,
) -> StageResult:
    """Hunks mode: the am-ready mbox (or patch bodies) of revision N and of N-1 (None: against the base,
    seen through the `-` side of N's hunks). Result is partial: code outside the hunks is unknown."""
    extra: dict[str, Any] = {
        "against": against or ("base" if prev_mbox is None else "previous"),
        "revision": revision,
        "mode": "hunks",
        "partial": True,
    }
    try:
        cur = replay(patch_bodies(mbox) if isinstance(mbox, bytes) else mbox)
        prev = None
        if prev_mbox is not None:
            prev = replay(patch_bodies(prev_mbox) if isinstance(prev_mbox, bytes) else prev_mbox)
        if not cur:
            return StageResult("skipped", "no patch hunks found in the revision's mbox", extra)
        notes = []
        before: dict[str, dict[int, Line]] = {}
        after: dict[str, dict[int, Line]] = {}
        for path in sorted(set(cur) | set(prev or {})):
            c, p = cur.get(path), (prev or {}).get(path)
            if prev is not None and c is not None and p is not None and not same_base(c, p):
                notes.append(f"{path}: the two revisions are based on different trees; compared as posted")
                before[path], after[path] = view(p, None), view(c, None)
                continue
            before[path] = view(p, c) if prev is not None else view(None, c)
            after[path] = view(c, p)
        bm, _ = _models_of_view(before, config.labels, {})
        am, _ = _models_of_view(after, config.labels, {})
        touched = _touched(cur, config.labels) | (_touched(prev, config.labels) if prev else set())
        result = compare(bm, am, touched, config, extra)
        result.extra["notes"] = notes
        return result
    except Exception as e:  # a parser surprise must not stop the pipeline; the report says so
        log.exception("walkdiff (hunks) failed")
        return StageResult("error", f"walkdiff failed: {e}", extra)


# ---- email text ----


def _guard(x: dict[str, Any] | None) -> str:
    if x is None:
        return ""
    cond = x["condition"]
    if cond == "unknown":
        return "if (<outside hunk>)"
    return f"if ({cond})" if cond else "always"


def _wrap(text: str, indent: str, width: int) -> list[str]:
    """Wrap at spaces; continuation lines are indented with blanks, never with the +/-/~ sign."""
    rest = " " * len(indent) + "    "
    return textwrap.wrap(text, width, initial_indent=indent, subsequent_indent=rest, break_on_hyphens=False) or [indent]


def _exit_lines(head: str, sign: str, old: str, new: str | None, width: int) -> list[str]:
    """`~ goto walk_done   if (old)   ->   if (new)` on one line when it fits, else `->` below."""
    one = f"  {sign} {head}   {old}" + (f"   ->   {new}" if new is not None else "")
    if len(one) <= width:
        return [one]
    lines = _wrap(f"{head}   {old}", f"  {sign} ", width)
    if new is not None:
        lines += _wrap(f"->   {new}", "      ", width)
    return lines


def render_text(stage: StageResult | Mapping[str, Any], width: int = 100) -> str:
    """The walkdiff paragraph of the email reply: one block per function, `+` added, `-` removed, `~` changed."""
    data = stage.to_json() if isinstance(stage, StageResult) else dict(stage)
    if data.get("status") != "ok":
        return f"walk exits: {data.get('status')}: {data.get('detail', '')}"
    against, rev = data.get("against", "base"), data.get("revision") or "this revision"
    out: list[str] = []
    for f in data.get("functions", []):
        out.append(f"{f['name']}(): walk exits {against} -> {rev}")
        out += [ln for note in f.get("notes", []) for ln in _wrap(f"({note})", "  ", width)]
        shown = 0
        for e in f["exits"]:
            if e["change"] == "unchanged":
                continue
            shown += 1
            b, a = e["before"], e["after"]
            sign = {"added": "+", "removed": "-", "changed": "~"}[e["change"]]
            head = f"{e['kind']} {e['target']}" if e["kind"] in ("goto", "call") else e["target"]
            if e["kind"] == "call":
                head = f"{e['target']}()"
            if e["change"] == "changed":
                if b["target"] != a["target"]:
                    head = f"{e['kind']} {b['target']} -> {a['target']}"
                new = _guard(a) if b["condition"] != a["condition"] else None
                out += _exit_lines(head, sign, _guard(b), new, width)
            else:
                out += _exit_lines(head, sign, _guard(a or b), None, width)
            if e["change"] == "changed" and b["comment"] != a["comment"]:
                out += _wrap(f'comment: "{b["comment"]}" -> "{a["comment"]}"', "      ", width)
            elif e["change"] != "changed" and (a or b)["comment"]:
                out += _wrap(f'comment: "{(a or b)["comment"]}"', "      ", width)
            if e["change"] == "changed" and b["feeds"] != a["feeds"]:
                out += _wrap("feeds: " + "; ".join(b["feeds"]) + " -> " + "; ".join(a["feeds"]), "      ", width)
            elif e["change"] == "added" and a["feeds"]:
                out += _wrap("feeds: " + "; ".join(a["feeds"]), "      ", width)
        if not f["exits"]:
            out.append("  no walk exits in the code it changes")
        elif not shown:
            out.append(f"  walk exits unchanged ({len(f['exits'])})")
        if f.get("helpers_changed"):
            out += _wrap("helpers changed: " + ", ".join(f["helpers_changed"]), "  ", width)
    if data.get("partial"):
        out.append("(from the patch hunks only: guards outside them are not shown)")
    return "\n".join(out)


# ---- pipeline stage ----


def run_stage(config: Config, series: dict[str, Any], result: RevisionResult, results: list[RevisionResult],
              arches: list[str]) -> None:
    """Pipeline runner: tree mode when this revision and the one before applied, else hunks mode."""
    from bot import apply, tree  # late: they pull in pygit2 and git helpers the hunk mode does not need

    index = next(i for i, r in enumerate(results) if r.version == result.version)
    prev = results[index - 1] if index > 0 else None
    against = f"v{prev.version}" if prev else "base"
    rdir = revision_dir(config.paths.patchsets, series["slug"], result.version)
    mbox = rdir / "series.mbx"
    prev_mbox = revision_dir(config.paths.patchsets, series["slug"], prev.version) / "series.mbx" if prev else None
    before_ref = (prev.stages["apply"].get("branch") if prev else result.base.commit)
    after_ref = result.stages["apply"].get("branch")
    if result.stages["apply"]["status"] == "ok" and before_ref and after_ref:
        paths = sorted({p for m in (mbox, prev_mbox) if m is not None and m.exists()
                        for patch in apply.parse_mbox(m).patches for f in patch.files for p in (f.old, f.new)
                        if p and p.endswith(_C_SUFFIXES)})
        stage = walkdiff_tree(tree.read_files(config, before_ref, paths), tree.read_files(config, after_ref, paths),
                              config.walkdiff, against=against, revision=f"v{result.version}")
    else:
        why = "this revision did not apply" if result.stages["apply"]["status"] != "ok" else f"{against} did not apply"
        stage = walkdiff_hunks(mbox.read_bytes(), prev_mbox.read_bytes() if prev_mbox and prev_mbox.exists() else None,
                               config.walkdiff, revision=f"v{result.version}", against=against)
        stage.extra["hunks_because"] = why
    result.set_stage("walkdiff", stage)
