"""What each section of a reply says, from one revision's results. Only what ran is summarised: a stage that
did not run is left out (the verdict line says so), and a section with nothing to report is empty, so the
template drops it."""

from __future__ import annotations

import textwrap
from typing import Any

from bot.results import RevisionResult, StageResult
from bot.results.verdict import new_warnings, per_arch

WIDTH = 72
PASSING = ("pass", "passed", "ok")


def wrap(text: str, indent: str = "", width: int = WIDTH) -> str:
    """Wrap prose at 72 columns; paragraphs kept; never for code or log excerpts."""
    return "\n".join(
        textwrap.fill(par, width, initial_indent=indent, subsequent_indent=indent, break_long_words=False,
                      break_on_hyphens=False) if par.strip() else ""
        for par in str(text).split("\n")
    )


def seconds_text(entry: StageResult | None) -> str:
    s = getattr(entry, "seconds", None)
    if isinstance(s, int | float) and not isinstance(s, bool):
        return f"{s:.0f} s" if s >= 10 else f"{s:.1f} s"
    return ""


def _timed(word: str, entry: StageResult) -> str:
    t = seconds_text(entry)
    return f"{word} ({t})" if t else word


def built_arches(result: RevisionResult) -> list[str]:
    """Arches whose build ran (skipped ones are not: the series did not apply)."""
    return [a for a, e in per_arch(result.stages.build).items() if e.ran and e.status != "skipped"]


def _stress_words(result: RevisionResult, arch: str) -> str:
    st = result.stages.stress.get(arch)
    if st is None or not st.ran or st.status == "skipped":
        return ""
    scenarios = st.scenarios or []
    count = f" {sum(1 for s in scenarios if s.verdict in PASSING)}/{len(scenarios)}" if scenarios else ""
    if st.status == "ok":
        return f"reclaim stress PASS{count}"
    if st.status == "failed":
        return f"reclaim stress FAIL{count}"  # which scenarios: the section below
    return f"reclaim stress {st.status}"


def _selftests_words(result: RevisionResult, arch: str) -> str:
    st = result.stages.selftests.get(arch)
    if st is None or not st.ran or st.status == "skipped":
        return ""
    tests = st.tests or []
    passed = sum(t.result in ("pass", "skip") for t in tests)
    if st.status == "ok":
        return f"mm selftests PASS {passed}/{len(tests)}"
    if st.status == "failed":
        return f"mm selftests FAIL ({len(st.new_failures or [])} new)"
    return f"mm selftests {st.status}"


def arch_lines(result: RevisionResult) -> list[str]:
    """One line per arch that was built: what ran on it and how it ended."""
    lines = []
    for a in built_arches(result):
        build = result.stages.build[a]
        words = [_timed({"ok": "built", "failed": "build FAILED"}.get(build.status, f"build {build.status}"), build)]
        boot = result.stages.boot.get(a)
        if boot is not None and boot.ran and boot.status != "skipped":
            words.append(_timed({"ok": "booted", "failed": "boot FAILED"}.get(boot.status, f"boot {boot.status}"),
                                boot))
            stress = _stress_words(result, a)
            if stress:
                words.append(stress)
            tests = _selftests_words(result, a)
            if tests:
                words.append(tests)
        label = f"{a + ':':8}" if len(a) < 8 else f"{a}: "  # a build variant's name is longer: arm64-64k
        lines.append(textwrap.fill(f"  {label}{', '.join(words)}", WIDTH, subsequent_indent=" " * 10,
                                   break_long_words=False, break_on_hyphens=False))
    return lines


def problems(result: RevisionResult) -> list[dict[str, str]]:
    """Why a build or boot failed or errored (stress failures are told scenario by scenario)."""
    out = []
    for stage in ("build", "boot"):
        for a, e in per_arch(getattr(result.stages, stage)).items():
            if e.status in ("failed", "error"):
                out.append({"where": f"{stage} {a}", "detail": wrap(e.detail, "    ")})
    return out


def toolchains(result: RevisionResult) -> dict[str, list[str]]:
    """The compiler and the config of each arch that was built, as `<what> (<arch>)` lines."""
    out: dict[str, list[str]] = {"compiler": [], "config": []}
    for a in built_arches(result):
        e = result.stages.build[a]
        fragments = list(e.fragments or [])
        if e.compiler:
            out["compiler"].append(f"{e.compiler} ({a})")
        if fragments:  # wrapped under the template's 10-column label
            text = " + ".join(["tinyconfig", *fragments]) + f" ({a})"
            out["config"].append(wrap(text, " " * 10)[10:])
    return out


def base_notes(result: RevisionResult) -> list[str]:
    """How the base was chosen. For a revision that did not apply, the note on the base it was tried on is
    left out: the apply failure above says it."""
    notes = result.stages.apply.base_notes or []
    source = result.base.source or ""
    if result.stages.apply.status != "ok" and source:
        notes = [n for n in notes if not n.startswith(f"{source} ")]
    return notes


def _patch_label(index: int | None, result: RevisionResult) -> str:
    for p in result.patches:
        if p.index == index:
            return p.subject
    return "(patch not identified)" if index is None else f"patch {index}"


def warnings(result: RevisionResult) -> list[dict[str, Any]]:
    by_patch: dict[int | None, list[str]] = {}
    builds = len(built_arches(result))
    for w in new_warnings(result):
        where = f"{w.file}:{w.line}" if w.line else w.file
        only = f" [{'/'.join(w.arches)} only]" if builds > 1 and len(w.arches) < builds else ""
        label = " [W=1]" if w.w1 else " [KASAN config]" if w.config else ""
        by_patch.setdefault(w.patch, []).append(f">> {where}: {w.message}{label}{only}")
    return [{"patch": _patch_label(i, result), "lines": lines}
            for i, lines in sorted(by_patch.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))]


def not_compiled(result: RevisionResult) -> list[str]:
    """One line per touched C file a build did not compile, with the arches and why: never "no warnings"
    about code that was not built."""
    why: dict[str, dict[str, str]] = {}
    for arch, e in per_arch(result.stages.build).items():
        for c in e.coverage or []:
            if not c.compiled:
                why.setdefault(c.file, {})[arch] = c.reason or "not compiled"
    lines = []
    for file, per in why.items():
        reasons = set(per.values())
        if len(reasons) == 1:
            lines.append(f"  {file}: not compiled on {'/'.join(per)}: {reasons.pop()}")
        else:
            lines += [f"  {file}: not compiled on {a}: {r}" for a, r in per.items()]
    return lines


def runtime(result: RevisionResult) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    """The stress scenarios that did not pass, and the console findings."""
    scenarios = []
    for a, st in per_arch(result.stages.stress).items():
        for sc in st.scenarios or []:
            verdict = sc.verdict or "?"
            if verdict.lower() not in PASSING:
                scenarios.append({"arch": a, "name": sc.name or "?", "verdict": verdict.upper(),
                                  "detail": wrap(sc.detail, "    ")})
    findings = []
    for a, e in per_arch(result.stages.boot).items():
        for f in e.findings or []:
            findings.append({"arch": a, "first_line": f.first_line or "(no first line)",
                             "preexisting": bool(f.preexisting), "during": f.selftest or "",
                             "excerpt": [x.rstrip() for x in f.excerpt.splitlines()]})
    return scenarios, findings


def selftests(result: RevisionResult) -> list[dict[str, Any]]:
    """Per arch that ran them: the counts, each new failure with its failing subtest lines and how to run
    it, then the flaky and pre-existing ones and what did not build or run (never counted as a pass)."""
    out: list[dict[str, Any]] = []
    for a, e in per_arch(result.stages.selftests).items():
        if not e.ran or e.status == "skipped" or e.tests is None:
            if e.ran and e.status == "error":
                out.append({"arch": a, "summary": wrap(e.detail, "  "), "new": [], "notes": []})
            continue
        by_name = {t.name: t for t in e.tests}
        new: list[dict[str, Any]] = []
        for name in e.new_failures or []:
            t = by_name.get(name)
            if t is None:
                continue
            base = f"; base: {t.base}" if t.base else "; not run on the base"
            tried = f", {len(t.attempts)} of {len(t.attempts)} attempts" if len(t.attempts) > 1 else ""
            new.append({"name": name, "head": f"{name}: {t.result.upper()}{tried}{base}",
                        "detail": wrap(t.detail, "    ") if t.detail else "",
                        "lines": [ln[:120] for ln in t.failing[:5]],
                        "excerpt": [x.rstrip() for x in t.excerpt.splitlines()[:20]],
                        "reproduce": t.reproduce})
        notes = []
        for label, names in (("flaky (failed, then passed on a rerun; not blamed)", e.flaky),
                             ("fail on the base too (not blamed)", e.preexisting),
                             ("not built", [n for n in e.not_built or [] if n not in (e.new_failures or [])])):
            if names:
                notes.append(wrap(f"{label}: {', '.join(names)}", "  "))
        unrun = [t.name for t in e.tests if t.result == "not_run"]
        if unrun:
            why = next((t.detail for t in e.tests if t.result == "not_run"), "")
            notes.append(wrap(f"not run ({why.removeprefix('not started: ')}): {', '.join(unrun)}", "  "))
        if e.base_note:
            notes.append(wrap(e.base_note, "  "))
        out.append({"arch": a, "summary": f"{len(e.tests)} tests, {e.detail.split('; ')[-1]}", "new": new,
                    "notes": notes})
    return out


def apply_failure(result: RevisionResult) -> str:
    """Why the revision was not applied ("" when it was)."""
    apply = result.stages.apply
    if apply.status == "ok" or not apply.ran:
        return ""
    return wrap(f"apply {apply.status}: {apply.detail}")


def failed(result: RevisionResult) -> bool:
    """A failure a fix patch would answer (and so carry Reported-by/Closes for): a build that failed, new
    warnings, a boot that failed, new console findings, a stress scenario or a selftest that failed. Not an
    apply failure: that is answered by rebasing, not by a fix."""
    s = result.stages
    return (any(e.status == "failed" for e in [*s.build.values(), *s.boot.values(), *s.stress.values(),
                                              *s.selftests.values()])
            or bool(new_warnings(result))
            or any(not f.preexisting for e in s.boot.values() for f in e.findings or []))

