"""A reviewed revision as b4's check entries: `{tool, status: pass|warn|fail, summary, url, details}`.

One entry per check with a final result: apply, build per arch (a new warning -> warn, a failure -> fail),
boot + runtime tests per arch, walk exits (changed since the previous revision -> warn), and `mm-bot` itself
carrying the whole review in `details` (its status the worst of the others). For a patch (b4's per-patch
command) what can be pinned on a patch is: the apply failure, the new warnings and the walk functions its
hunks touch are its own; a runtime failure belongs to the whole series and shows on every patch.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from bot.arches import order
from bot.b4check.message import Incoming
from bot.results import BootResult, BuildResult, RevisionResult, StageResult, StressResult

TOOL = "mm-bot"
Entry = dict[str, str]
ORDER = {"pass": 0, "warn": 1, "fail": 2}
SUMMARY_MAX = 300  # characters: b4 shows the summary on one line of its check view


def entry(tool: str, status: str, summary: str, details: Iterable[str] = (), url: str = "") -> Entry:
    summary = " ".join(summary.split())
    if len(summary) > SUMMARY_MAX:
        summary = summary[: SUMMARY_MAX - 1] + "…"
    return {"tool": tool, "status": status, "summary": summary, "url": url, "details": "\n".join(details)}


def worst(entries: Iterable[Entry]) -> str:
    return max((e["status"] for e in entries), key=ORDER.__getitem__, default="pass")


def _arch_order(names: Iterable[str]) -> list[str]:
    return sorted(set(names), key=order)


def _final(e: StageResult | None) -> bool:
    """Ran to an outcome worth showing; a skipped stage (nothing to do) is explained by the one before it."""
    return e is not None and e.status in ("ok", "failed", "error")


# ---------------------------------------------------------------- apply and build


def apply_entry(result: RevisionResult, patch: int | None) -> Entry | None:
    a = result.stages.apply
    tool = f"{TOOL}/apply"
    if not _final(a):
        return None
    if a.status == "error":
        return entry(tool, "warn", f"not applied: {a.detail}")
    if a.status == "ok":
        return entry(tool, "pass", a.detail, a.base_notes or [])
    failed = a.patch.index if a.patch and a.patch.index else None
    if patch is not None and failed is not None and patch < failed:
        return entry(tool, "pass", f"applies (patch {failed}/{len(result.patches)} does not)")
    if patch is not None and failed is not None and patch > failed:
        return entry(tool, "warn", f"not applied: patch {failed}/{len(result.patches)} before it does not apply")
    where = [f"file: {a.file}"] if a.file else []
    return entry(tool, "fail", a.detail, [*where, *([f"hunk: {a.hunk}"] if a.hunk else []), *(a.base_notes or [])])


def _warning_lines(e: BuildResult, patch: int | None) -> list[str]:
    out = []
    for w in e.new_warnings or []:
        if patch is None or w.patch is None or w.patch.index == patch:
            where = f"{w.file}:{w.line}" if w.line else w.file
            mark = " [W=1]" if w.w1 else ""
            of = f" (patch {w.patch.index})" if patch is None and w.patch and w.patch.index else ""
            out.append(f">> {where}: {w.message}{mark}{of}")
    return out


def build_entries(result: RevisionResult, patch: int | None, files: list[str]) -> list[Entry]:
    out = []
    for arch in _arch_order(result.stages.build):
        e = result.stages.build[arch]
        tool = f"{TOOL}/build-{arch}"
        if not _final(e):
            continue
        if e.status == "error":
            out.append(entry(tool, "warn", f"not built: {e.detail}"))
            continue
        lines = _warning_lines(e, patch)
        missed = [c for c in e.coverage or [] if not c.compiled and (patch is None or c.file in files)]
        missed_lines = [f"not compiled: {c.file}: {c.reason or 'not in this config'}" for c in missed]
        if e.status == "failed":
            err = f"{e.error.file}:{e.error.line}: {e.error.message}" if e.error else e.detail
            out.append(entry(tool, "fail", f"build failed: {err}", [*lines, *missed_lines, *(e.log_tail or [])[-20:]]))
        elif lines:
            n = len(lines)
            out.append(entry(tool, "warn", f"{n} new warning{'s' if n != 1 else ''}: {lines[0][3:]}",
                             [*lines, *missed_lines]))
        elif missed:
            out.append(entry(tool, "warn", f"{len(missed)} touched file(s) not compiled: "
                             + ", ".join(c.file for c in missed), missed_lines))
        else:
            total = len(e.new_warnings or [])
            rest = f" ({total} in the series, from other patches)" if patch is not None and total else ""
            out.append(entry(tool, "pass", f"no new warnings{rest}", [e.detail]))
    return out


# ---------------------------------------------------------------- boot and runtime tests


def _runtime_lines(b: BootResult, s: StressResult | None) -> list[str]:
    lines = [f"{sc.name}: {sc.verdict.upper()}" + (f" - {sc.detail}" if sc.verdict != "pass" and sc.detail else "")
             for sc in (s.scenarios if s is not None and s.scenarios else [])]
    for f in b.findings or []:
        lines.append(f"{'pre-existing (the base shows it too)' if f.preexisting else 'NEW'}: {f.first_line}")
    return lines


def runtime_entries(result: RevisionResult) -> list[Entry]:
    out = []
    boot, stress = result.stages.boot, result.stages.stress
    for arch in _arch_order([*boot, *stress]):
        b, s = boot.get(arch), stress.get(arch)
        if b is None or not _final(b):
            continue
        tool = f"{TOOL}/boot-{arch}"
        new = [f for f in b.findings or [] if not f.preexisting]
        lines = _runtime_lines(b, s)
        if b.status == "failed":
            out.append(entry(tool, "fail", f"boot failed: {b.detail}", lines))
        elif b.status == "error":
            out.append(entry(tool, "warn", f"not booted: {b.detail}", lines))
        elif new:
            out.append(entry(tool, "fail", f"{len(new)} new console finding(s): {new[0].first_line}", lines))
        elif s is None or not s.ran or s.status == "skipped":
            out.append(entry(tool, "pass", "booted; reclaim stress not run", lines))
        elif s.status == "failed":
            out.append(entry(tool, "fail", f"reclaim stress FAIL: {', '.join(s.failing or []) or s.detail}", lines))
        elif s.status == "error":
            out.append(entry(tool, "warn", f"reclaim stress not finished: {s.detail}", lines))
        else:
            n = len(s.scenarios or [])
            out.append(entry(tool, "pass", f"booted; reclaim stress PASS ({n} scenario{'s' if n != 1 else ''})",
                             lines))
    return out


# ---------------------------------------------------------------- walk exits


def _guard(x: dict[str, Any] | None) -> str:
    if x is None:
        return ""
    cond = x.get("condition", "")
    return "if (<outside the hunks>)" if cond == "unknown" else (f"if ({cond})" if cond else "always")


def describe(func: str, e: dict[str, Any]) -> str:
    """One changed exit on one line: `try_to_unmap_one(): goto walk_done if (a) -> if (b)`."""
    b, a = e.get("before"), e.get("after")
    target = e.get("target", "")
    head = f"{target}()" if e.get("kind") == "call" else (f"{e.get('kind')} {target}" if e.get("kind") == "goto"
                                                          else str(target))
    if e["change"] == "changed":
        assert a is not None and b is not None
        if b.get("target") != a.get("target"):
            head = f"{e.get('kind')} {b.get('target')} -> {a.get('target')}"
        cond = f"{_guard(b)} -> {_guard(a)}" if b.get("condition") != a.get("condition") else _guard(a)
        comment = " (comment changed)" if b.get("comment") != a.get("comment") else ""
        return f"{func}(): {head} {cond}{comment}"
    sign = "added" if e["change"] == "added" else "removed"
    return f"{func}(): {sign} {head} {_guard(a or b)}"


def touches(func: dict[str, Any], incoming: Incoming) -> bool:
    """Whether a patch's hunks are in this function: named in a hunk header, or (a header naming no function,
    e.g. a label) in its file, or its name called/defined on a changed line."""
    path, name = func.get("file", ""), func.get("name", "")
    named = incoming.functions.get(path)
    if named and name in named:
        return True
    if path in incoming.files and not named:
        return True
    return bool(re.search(rf"^[-+].*\b{re.escape(name)}\s*\(", incoming.body, re.M))


def walk_entry(result: RevisionResult, incoming: Incoming | None) -> Entry | None:
    w = result.stages.walkdiff
    tool = f"{TOOL}/walk-exits"
    if not _final(w) and w.status != "skipped":
        return None
    if w.status == "error":
        return entry(tool, "warn", f"walk exits not compared: {w.detail}")
    against = w.against or "base"
    funcs = [f for f in w.functions or [] if incoming is None or touches(f, incoming)]
    if w.status == "skipped" or not funcs:
        return entry(tool, "pass", w.detail if incoming is None else "touches no walk function")
    changed = [describe(f["name"], e) for f in funcs for e in f.get("exits", []) if e.get("change") != "unchanged"]
    notes = ["(from the patch hunks only: guards outside them are not known)"] if w.partial else []
    if not changed:
        since = f"since {against}" if against != "base" else "from the base"
        return entry(tool, "pass", f"walk exits unchanged {since} ({', '.join(f['name'] + '()' for f in funcs)})",
                     notes)
    # A changed exit against an earlier revision is what reviewers argue about; against the base it is the
    # patch itself, shown but not flagged.
    status = "warn" if against != "base" else "pass"
    return entry(tool, status, f"{len(changed)} walk exit(s) changed {against} -> {w.revision or 'this'}: "
                 + "; ".join(changed), [*changed, *notes])
