"""What a revision's results add up to: the verdict line's clauses, the facts a reply states (equal facts mean
the same reply, sent once), the new warnings across arches, and the one patch a reply should answer."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TypeVar

from bot.config import ARCHES
from bot.report.walkdiff_text import render_text
from bot.results import RevisionResult, SeriesSummary, StageResult

S = TypeVar("S", bound=StageResult)


def per_arch(entries: dict[str, S]) -> dict[str, S]:
    """A per-arch stage's results, arches in the bot's order (unknown ones last, by name)."""
    return dict(sorted(entries.items(), key=lambda kv: (ARCHES.index(kv[0]) if kv[0] in ARCHES else 99, kv[0])))


def status_word(entry: StageResult | None) -> str:
    if entry is None or not entry.ran:
        return "not run"
    return {"ok": "ok", "failed": "FAILED", "error": "error", "skipped": "skipped"}[entry.status]


@dataclass
class NewWarning:
    """One new compiler warning, listed once with every arch it appeared on."""

    file: str
    line: str
    message: str
    patch: int | None
    w1: bool = False  # found by the W=1 compile of the touched files
    config: str | None = None  # found by another of the bot's configs ("kasan")
    arches: list[str] = field(default_factory=list)


def new_warnings(result: RevisionResult) -> list[NewWarning]:
    """stages.build.<arch>.new_warnings, the same warning on two arches listed once with both arches."""
    seen: dict[tuple[str, str, str], NewWarning] = {}
    for arch, entry in per_arch(result.stages.build).items():
        for w in entry.new_warnings or []:
            line = str(w.line) + (f":{w.extra['column']}" if w.extra.get("column") is not None else "")
            key = (w.file, line, w.message.strip())
            if key not in seen:
                seen[key] = NewWarning(key[0], key[1], key[2], w.patch.index if w.patch else None, bool(w.w1),
                                       w.config)
            seen[key].arches.append(arch)
    return list(seen.values())


def _arches_text(arches: list[str]) -> str:
    return "/".join(arches)


def _apply_clause(result: RevisionResult) -> str:
    apply = result.stages.apply
    if apply.status == "ok":
        return "applied"
    if apply.status == "failed":
        return "does not apply" + (f" (patch {apply.patch.index})" if apply.patch and apply.patch.index else "")
    return f"not applied (apply {status_word(apply)})"


def _runtime_clauses(result: RevisionResult) -> list[str]:
    boot, stress = per_arch(result.stages.boot), per_arch(result.stages.stress)
    arches = [a for a in ARCHES if a in boot or a in stress] + sorted((boot.keys() | stress.keys()) - set(ARCHES))
    if not arches:
        return ["not booted"]
    passed, notes = [], []
    for a in arches:
        b, s = boot.get(a), stress.get(a)
        if b is not None and b.status == "failed":
            notes.append(f"boot FAILED on {a}")
        elif b is not None and b.status != "ok":
            notes.append(f"not booted on {a}")
        elif s is None or not s.ran:
            notes.append(f"booted on {a}, stress not run")
        elif s.status == "ok":
            passed.append(a)
        elif s.status == "failed":
            notes.append(f"reclaim stress FAIL on {a}")
        else:
            notes.append(f"reclaim stress {status_word(s)} on {a}")
    parts = ["boot + reclaim stress PASS" + ("" if not notes else f" on {_arches_text(passed)}")] if passed else []
    return parts + notes


def verdict_parts(result: RevisionResult) -> list[str]:
    """The first line's clauses, honest about stages that did not run."""
    parts = [_apply_clause(result)]
    build = per_arch(result.stages.build)
    ok = [a for a, e in build.items() if e.status == "ok"]
    bad = [a for a, e in build.items() if e.status == "failed"]
    other = [a for a, e in build.items() if e.status not in ("ok", "failed")]
    if not build:
        parts.append("not built")
    if ok:
        parts.append(f"built on {_arches_text(ok)}")
    if bad:
        parts.append(f"build FAILED on {_arches_text(bad)}")
    if other:
        parts.append(f"not built on {_arches_text(other)}")
    warnings = new_warnings(result)
    if warnings:
        parts.append(f"{len(warnings)} new warning{'s' if len(warnings) != 1 else ''}")
    missed = {c.file for e in build.values() for c in e.coverage or [] if not c.compiled}
    if missed:
        parts.append(f"{len(missed)} touched file{'s' if len(missed) != 1 else ''} not compiled")
    parts += _runtime_clauses(result)
    found = [f for e in result.stages.boot.values() for f in e.findings or [] if not f.preexisting]
    if found:
        parts.append(f"{len(found)} new console finding{'s' if len(found) != 1 else ''}")
    return parts


def verdict_facts(result: RevisionResult) -> dict[str, object]:
    """What a reply says, without timings or paths: equal facts mean the same reply (one send)."""
    return {
        "version": result.version,
        "apply": result.stages.apply.status,
        "build": {a: e.status for a, e in per_arch(result.stages.build).items()},
        "warnings": sorted((w.file, w.line, w.message) for w in new_warnings(result)),
        "not_compiled": sorted((a, c.file) for a, e in result.stages.build.items() for c in e.coverage or []
                               if not c.compiled),
        "boot": {a: [e.status, sorted(f.fingerprint or f.first_line for f in e.findings or [])]
                 for a, e in per_arch(result.stages.boot).items()},
        "stress": {a: [e.status, sorted((s.name, s.verdict) for s in e.scenarios or [])]
                   for a, e in per_arch(result.stages.stress).items()},
        "walkdiff": render_text(result.stages.walkdiff),
    }


def verdict_digest(series: SeriesSummary, result: RevisionResult) -> str:
    text = json.dumps([series.slug, verdict_facts(result)], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def blamed_patch(result: RevisionResult) -> int | None:
    """The one patch every finding belongs to (then the reply goes under it), else None (the cover)."""
    blamed: set[int | None] = set()
    apply = result.stages.apply
    if apply.status == "failed":
        blamed.add(apply.patch.index if apply.patch else None)
    warnings = new_warnings(result)
    blamed.update(w.patch for w in warnings)
    for e in result.stages.boot.values():
        if e.status not in ("ok", "skipped") or any(not f.preexisting for f in e.findings or []):
            blamed.add(None)  # a runtime problem belongs to the series as a whole
    if any(e.status not in ("ok", "skipped") for e in result.stages.stress.values()):
        blamed.add(None)
    if any(e.status == "failed" for e in result.stages.build.values()) and not warnings:
        blamed.add(None)
    if len(blamed) == 1 and None not in blamed and len(result.patches) > 1:
        return blamed.pop()
    return None
