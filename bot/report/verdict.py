"""What a reply states: the facts (equal facts mean the same reply, sent once) and the one patch a reply should
answer. The verdict line's clauses and the new warnings across arches are shared with the dashboard
(bot/results/verdict.py) and re-exported here."""

from __future__ import annotations

import hashlib
import json

from bot.report.walkdiff_text import render_text
from bot.results import RevisionResult, SeriesSummary
from bot.results.verdict import NewWarning, new_warnings, per_arch, status_word, verdict_parts

__all__ = ["NewWarning", "blamed_patch", "new_warnings", "per_arch", "status_word", "verdict_digest",
           "verdict_facts", "verdict_parts"]


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
        "selftests": {a: [e.status, sorted(e.new_failures or []), sorted(e.flaky or [])]
                      for a, e in per_arch(result.stages.selftests).items()},
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
    if any(e.status not in ("ok", "skipped") for e in [*result.stages.stress.values(),
                                                        *result.stages.selftests.values()]):
        blamed.add(None)
    if any(e.status == "failed" for e in result.stages.build.values()) and not warnings:
        blamed.add(None)
    if len(blamed) == 1 and None not in blamed and len(result.patches) > 1:
        return blamed.pop()
    return None
