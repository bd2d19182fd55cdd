"""What a series page says under its matrix: per revision the base, new warnings, runtime findings, stress and
selftest results, logs and reproduce commands; and the walk exits of each function side by side across
revisions. Plain data for the templates (which escape every string)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from bot.dashboard.model import selftests
from bot.results import RevisionResult, StageResult
from bot.results.verdict import new_warnings, per_arch

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]|\x1b\[[0-9;?]*[A-Za-z]")  # control characters, ANSI sequences


def printable(text: str) -> str:
    """Text for a page or a script comment: no control characters or terminal escapes (newlines kept)."""
    return CONTROL.sub("", text.replace("\r\n", "\n"))


def one_line(text: str) -> str:
    return " ".join((text if text.isprintable() else printable(text)).split())


@dataclass
class ExitView:
    """One walk exit of one revision: `goto walk_done` under `if (...)`, and how it changed."""

    head: str
    guard: str
    change: str  # added | removed | changed | unchanged
    old_guard: str = ""  # the condition it had before, when the condition changed
    old_head: str = ""  # the target it had before, when the target changed
    comment: str = ""


@dataclass
class FunctionView:
    name: str
    file: str
    rows: list[dict[int, Any]] = field(default_factory=list)  # one row per exit, keyed by version: ExitView
    shown: dict[int, str] = field(default_factory=dict)  # version -> "" (compared) or why not
    unchanged: int = 0  # exits no revision changed (not shown)


def _guard(x: dict[str, Any] | None) -> str:
    if not x:
        return ""
    cond = x.get("condition", "")
    if cond == "unknown":
        return "if (<outside hunk>)"
    return f"if ({cond})" if cond else "always"


def _head(kind: str, target: str) -> str:
    if kind == "call":
        return f"{target}()"
    return f"{kind} {target}" if kind == "goto" else target


def _key(kind: str, x: dict[str, Any] | None) -> tuple[str, str, str]:
    return (kind, (x or {}).get("target", ""), (x or {}).get("condition", ""))


def _follow(keys: dict[int, tuple[str, str, str]], want: tuple[str, str, str], used: set[int]) -> int | None:
    """The row an exit continues: the same state, else (hunks mode, where only the end of a condition is
    seen) the same kind and target with a condition ending like it."""
    free = [(i, k) for i, k in keys.items() if i not in used]
    exact = next((i for i, k in free if k == want), None)
    if exact is not None or not want[2]:
        return exact
    return next((i for i, k in free if k[:2] == want[:2] and k[2].endswith(want[2])), None)


def _exit_view(e: dict[str, Any]) -> ExitView:
    before, after = e.get("before"), e.get("after")
    kind, now = e.get("kind", ""), after or before or {}
    view = ExitView(_head(kind, now.get("target", e.get("target", ""))), _guard(now), e.get("change", ""),
                    comment=one_line(now.get("comment", "")))
    if view.change == "changed" and before and after:
        if before.get("condition") != after.get("condition"):
            view.old_guard = _guard(before)
        if before.get("target") != after.get("target"):
            view.old_head = _head(kind, before.get("target", ""))
    return view


def walk_functions(revisions: list[RevisionResult]) -> list[FunctionView]:
    """Each function's exits, one row per exit and one column per revision: an exit is followed from one
    revision to the next by its state before the change (kind, target, condition) matching the previous
    revision's state after it."""
    functions: dict[str, FunctionView] = {}
    last: dict[str, dict[int, tuple[str, str, str]]] = {}  # function -> row index -> key of its newest state
    for r in revisions:
        stage = r.stages.walkdiff
        for f in stage.functions or [] if stage.status == "ok" else []:
            fv = functions.setdefault(f["name"], FunctionView(f["name"], f.get("file", "")))
            fv.shown[r.version] = ""
            keys = last.setdefault(f["name"], {})
            used: set[int] = set()
            for e in f.get("exits", []):
                kind = e.get("kind", "")
                want = _key(kind, e.get("before"))
                match = None if e.get("change") == "added" else _follow(keys, want, used)
                if match is None:
                    fv.rows.append({})
                    match = len(fv.rows) - 1
                used.add(match)
                fv.rows[match][r.version] = e  # made an ExitView below, for the rows that are shown
                if e.get("change") == "removed":
                    keys.pop(match, None)  # nothing later continues a removed exit
                else:
                    keys[match] = _key(kind, e.get("after"))
    for fv in functions.values():
        changed = [{v: _exit_view(e) for v, e in row.items()} for row in fv.rows
                   if any(e.get("change") != "unchanged" for e in row.values())]
        fv.unchanged, fv.rows = len(fv.rows) - len(changed), changed
    for r in revisions:
        for fv in functions.values():
            if r.version not in fv.shown:
                stage = r.stages.walkdiff
                fv.shown[r.version] = "not compared" if stage.status != "ok" else "not touched"
    return list(functions.values())


def _warnings(r: RevisionResult) -> list[dict[str, Any]]:
    subjects = {p.index: p.subject for p in r.patches}
    return [{"where": f"{w.file}:{w.line}" if w.line else w.file, "message": one_line(w.message),
             "text": printable(w.text), "w1": w.w1, "arches": "/".join(w.arches),
             "patch": subjects.get(w.patch, f"patch {w.patch}") if w.patch else "(patch not identified)"}
            for w in new_warnings(r)]


def _runtime(r: RevisionResult) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    findings = [{"arch": a, "kind": f.kind, "first_line": one_line(f.first_line), "scenario": f.scenario or "",
                 "preexisting": f.preexisting, "excerpt": printable(f.excerpt)}
                for a, e in per_arch(r.stages.boot).items() for f in e.findings or []]
    stress = [{"arch": a, "status": e.status, "detail": one_line(e.detail),
               "scenarios": [{"name": s.name, "verdict": s.verdict, "detail": one_line(s.detail)}
                             for s in e.scenarios or []]}
              for a, e in per_arch(r.stages.stress).items() if e.ran and e.status != "skipped"]
    return findings, stress


def revision_details(r: RevisionResult) -> dict[str, Any]:
    s = r.stages
    findings, stress = _runtime(r)
    apply = s.apply
    return {
        "base_commit": r.base.commit or "", "base_source": r.base.source or "",
        "base_notes": [one_line(n) for n in apply.base_notes or []],
        "apply": {"status": apply.status, "detail": one_line(apply.detail),
                  "file": apply.file or "", "hunk": apply.hunk or ""},
        "warnings": _warnings(r),
        "not_compiled": [{"arch": a, "file": c.file, "reason": one_line(c.reason or "not compiled")}
                         for a, e in per_arch(s.build).items() for c in e.coverage or [] if not c.compiled],
        "builds": [{"arch": a, "status": e.status, "detail": one_line(e.detail), "compiler": e.compiler or "",
                    "config": " + ".join((["tinyconfig"] if e.fragments else []) + list(e.fragments or [])),
                    "error": one_line(f"{e.error.file}:{e.error.line}: {e.error.message}") if e.error else "",
                    "seconds": e.seconds}
                   for a, e in per_arch(s.build).items() if e.ran and e.status != "skipped"],
        "findings": findings,
        "stress": stress,
        "boots": [{"arch": a, "status": e.status, "detail": one_line(e.detail), "note": one_line(e.base_note or "")}
                  for a, e in per_arch(s.boot).items() if e.ran and e.status != "skipped"],
        "selftests": [{"arch": a, "status": str(e.get("status", "")), "detail": one_line(str(e.get("detail", "")))}
                      for a, e in per_arch_dicts(selftests(r)).items()],
    }


def per_arch_dicts(entries: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    order = list(per_arch({a: StageResult("ok", "") for a in entries}))
    return {a: entries[a] for a in order}
