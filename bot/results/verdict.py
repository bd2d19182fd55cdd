"""What a revision's results add up to, for every reader of result.json (the reply, the dashboard, `bot check`):
per-arch results in the bot's arch order, the new warnings across arches, and the verdict line's clauses —
honest about stages that did not run: a revision that does not apply says so and nothing about builds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

from bot.arches import order
from bot.results.revision import RevisionResult
from bot.results.stages import StageResult

S = TypeVar("S", bound=StageResult)


def per_arch(entries: dict[str, S]) -> dict[str, S]:
    """A per-arch stage's results, arches in the bot's order (the real arches, then the build variants; unknown
    ones last, by name)."""
    return dict(sorted(entries.items(), key=lambda kv: order(kv[0])))


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
    text: str = ""  # the source line it points at


def new_warnings(result: RevisionResult) -> list[NewWarning]:
    """stages.build.<arch>.new_warnings, the same warning on two arches listed once with both arches."""
    seen: dict[tuple[str, str, str], NewWarning] = {}
    for arch, entry in per_arch(result.stages.build).items():
        for w in entry.new_warnings or []:
            line = str(w.line) + (f":{w.extra['column']}" if w.extra.get("column") is not None else "")
            key = (w.file, line, w.message.strip())
            if key not in seen:
                seen[key] = NewWarning(key[0], key[1], key[2], w.patch.index if w.patch else None, bool(w.w1),
                                       w.config, text=w.text.strip())
            seen[key].arches.append(arch)
    return list(seen.values())


def applied(result: RevisionResult) -> bool:
    return result.stages.apply.status == "ok"


def _apply_clause(result: RevisionResult) -> str:
    apply = result.stages.apply
    if apply.status == "ok":
        return "applied"
    if apply.status == "failed":
        return "does not apply" + (f" (patch {apply.patch.index})" if apply.patch and apply.patch.index else "")
    return f"not applied (apply {status_word(apply)})"


def _runtime_clauses(result: RevisionResult) -> list[str]:
    boot, stress = per_arch(result.stages.boot), per_arch(result.stages.stress)
    arches = sorted(boot.keys() | stress.keys(), key=order)
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
    parts = ["boot + reclaim stress PASS" + ("" if not notes else f" on {'/'.join(passed)}")] if passed else []
    return parts + notes + _selftests_clauses(result)


def _selftests_clauses(result: RevisionResult) -> list[str]:
    """"mm selftests PASS", or the arches with new failures; nothing when they did not run anywhere."""
    st = {a: e for a, e in per_arch(result.stages.selftests).items() if e.ran and e.status != "skipped"}
    if not st:
        return []
    bad = {a: len(e.new_failures or []) for a, e in st.items() if e.status == "failed"}
    other = [a for a, e in st.items() if e.status not in ("ok", "failed")]
    ok = [a for a, e in st.items() if e.status == "ok"]
    parts = []
    if ok:
        parts.append("mm selftests PASS" + ("" if len(ok) == len(st) else f" on {'/'.join(ok)}"))
    for n in sorted(set(bad.values())):  # one clause per count: "1 new mm selftest failure on x86_64/arm64"
        where = "/".join(a for a, k in bad.items() if k == n)
        parts.append(f"{n} new mm selftest failure{'s' if n != 1 else ''} on {where}")
    parts += [f"mm selftests {status_word(st[a])} on {a}" for a in other]
    return parts


def verdict_parts(result: RevisionResult) -> list[str]:
    """The first line's clauses. A revision that did not apply was neither built nor booted: the line says why
    it did not apply and nothing more."""
    if not applied(result):
        return [_apply_clause(result)]
    parts = [_apply_clause(result)]
    build = per_arch(result.stages.build)
    ok = [a for a, e in build.items() if e.status == "ok"]
    bad = [a for a, e in build.items() if e.status == "failed"]
    other = [a for a, e in build.items() if e.status not in ("ok", "failed")]
    if not build:
        parts.append("not built")
    if ok:
        parts.append(f"built on {'/'.join(ok)}")
    if bad:
        parts.append(f"build FAILED on {'/'.join(bad)}")
    if other:
        parts.append(f"not built on {'/'.join(other)}")
    warnings = new_warnings(result)
    if warnings:
        parts.append(f"{len(warnings)} new warning{'s' if len(warnings) != 1 else ''}")
    missed = {c.file for e in build.values() for c in e.coverage or [] if not c.compiled}
    if missed:
        parts.append(f"{len(missed)} touched file{'s' if len(missed) != 1 else ''} not compiled")
    parts += _runtime_clauses(result)
    found = [f for e in result.stages.boot.values() for f in e.findings or [] if not f.preexisting
             and not f.selftest]  # a selftest's are its new failure
    if found:
        parts.append(f"{len(found)} new console finding{'s' if len(found) != 1 else ''}")
    return parts
