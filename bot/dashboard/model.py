"""A series' results on disk as what its pages show: the revision × check matrix, each revision's details, and
the walk exits of each function across revisions. Pure: results in, plain data out (the templates escape it)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.arches import NAMES as ARCHES
from bot.arches import order
from bot.results import Record, RevisionResult, SeriesSummary, StageResult, WalkdiffResult, load_revision
from bot.results.verdict import per_arch

# css class of a cell, worst first: the revision's verdict is its worst cell (skip and info do not count)
SEVERITY = ("fail", "error", "warn", "none", "pass")
VERDICTS = {"fail": "fail", "error": "error", "warn": "warn", "none": "incomplete", "pass": "pass"}


@dataclass
class Cell:
    label: str  # the text every cell carries (colour is never the only signal)
    css: str  # pass | fail | warn | error | skip | none | info
    title: str = ""


@dataclass
class Column:
    check: str  # apply | build | boot | stress | selftests | walkdiff
    arch: str = ""

    @property
    def heading(self) -> str:
        return {"walkdiff": "walk exits"}.get(self.check, self.check)


@dataclass
class Series:
    summary: SeriesSummary
    revisions: list[RevisionResult]
    sdir: Path
    arches: list[str] = field(default_factory=list)

    @property
    def newest(self) -> RevisionResult | None:
        return self.revisions[-1] if self.revisions else None

    @property
    def date(self) -> str:
        return max((r.date for r in self.revisions), default="")


def load_series(sdir: Path) -> Series | None:
    """patchsets/<slug>/series.json and every v<N>/result.json it lists that exists, oldest first."""
    try:
        summary = SeriesSummary.from_json(json.loads((sdir / "series.json").read_text()))
    except (OSError, ValueError, TypeError):
        return None
    revisions = [r for ref in sorted(summary.revisions, key=lambda x: x.version)
                 if (r := load_revision(sdir / f"v{ref.version}" / "result.json")) is not None]
    seen: list[str] = []
    for r in revisions:
        for a in [*per_arch(r.stages.build), *per_arch(r.stages.boot), *per_arch(r.stages.stress)]:
            if a not in seen:
                seen.append(a)
    arches = sorted(seen, key=order) or list(ARCHES)  # the real arches, then build variants (own columns)
    return Series(summary, revisions, sdir, arches)


def columns(arches: list[str]) -> list[Column]:
    per = [Column(c, a) for c in ("build", "boot", "stress", "selftests") for a in arches]
    return [Column("apply"), *per, Column("walkdiff")]


def _plain(entry: StageResult | None, ok: str = "ok") -> Cell:
    if entry is None or not entry.ran:
        return Cell("not run", "none")
    return {"ok": Cell(ok, "pass"), "failed": Cell("FAIL", "fail"), "error": Cell("error", "error"),
            "skipped": Cell("skipped", "skip")}[entry.status]


def _build_cell(r: RevisionResult, arch: str) -> Cell:
    e = r.stages.build.get(arch)
    cell = _plain(e)
    if e is None or e.status != "ok":
        return Cell(cell.label, cell.css, e.detail if e is not None else "")
    warnings = len(e.new_warnings or [])
    missed = [c.file for c in e.coverage or [] if not c.compiled]
    if warnings:
        return Cell(f"{warnings} warning{'s' if warnings != 1 else ''}", "warn", e.detail)
    if missed:
        return Cell(f"ok, {len(missed)} not compiled", "warn", "not compiled: " + ", ".join(missed))
    return Cell("ok", "pass", e.detail)


def _boot_cell(r: RevisionResult, arch: str) -> Cell:
    e = r.stages.boot.get(arch)
    cell = _plain(e)
    if e is None or e.status != "ok":
        return Cell(cell.label, cell.css, e.detail if e is not None else "")
    new = [f for f in e.findings or [] if not f.preexisting]
    if new:
        return Cell(f"{len(new)} finding{'s' if len(new) != 1 else ''}", "fail", new[0].first_line)
    return Cell("ok", "pass", e.detail)


def _stress_cell(r: RevisionResult, arch: str) -> Cell:
    e = r.stages.stress.get(arch)
    cell = _plain(e, ok="PASS")
    if e is None or not e.ran:
        return cell
    total = len(e.scenarios or [])
    passed = sum(1 for s in e.scenarios or [] if s.verdict == "pass")
    count = f" {passed}/{total}" if total else ""
    if e.status == "ok":
        return Cell(f"PASS{count}", "pass", e.detail)
    if e.status == "failed":
        return Cell(f"FAIL{count}", "fail", ", ".join(e.failing or []) or e.detail)
    return Cell(cell.label, cell.css, e.detail)


def selftests(r: RevisionResult) -> dict[str, dict[str, Any]]:
    """stages.selftests.<arch> as JSON, when a result has it: a typed per-arch result once Stages has one,
    else what result.json holds (kept in Stages.extra)."""
    value = getattr(r.stages, "selftests", None) or r.stages.extra.get("selftests")
    if not isinstance(value, dict):
        return {}
    return {a: v.to_json() if isinstance(v, Record) else v for a, v in value.items() if isinstance(v, dict | Record)}


def _selftests_cell(r: RevisionResult, arch: str) -> Cell:
    e = selftests(r).get(arch)
    status = e.get("status") if e else None
    if status not in ("ok", "failed", "error", "skipped"):
        return Cell("not run", "none")
    cell = _plain(StageResult(status, ""))  # type: ignore[arg-type]
    detail = str(e.get("detail", "")) if e else ""
    tests = e.get("tests") or [] if e else []
    if status == "ok" and tests:
        passed = sum(1 for t in tests if t.get("result") in ("pass", "skip"))
        return Cell(f"PASS {passed}/{len(tests)}", "pass", detail)
    if status == "failed" and e:
        return Cell(f"{len(e.get('new_failures') or [])} new FAIL", "fail", detail)
    return Cell(cell.label, cell.css, detail)


def changed_exits(stage: WalkdiffResult) -> int:
    return sum(1 for f in stage.functions or [] for e in f.get("exits", []) if e.get("change") != "unchanged")


def _walkdiff_cell(r: RevisionResult) -> Cell:
    stage = r.stages.walkdiff
    if stage.status != "ok":
        return _plain(stage)
    n = changed_exits(stage)
    against = stage.against or "base"
    if n:
        return Cell(f"{n} changed", "info", f"walk exits changed since {against}")
    return Cell("unchanged", "pass", f"walk exits unchanged since {against}")


def cell(r: RevisionResult, col: Column) -> Cell:
    if col.check == "apply":
        c = _plain(r.stages.apply, ok="applied")
        return Cell(c.label, c.css, r.stages.apply.detail)
    if col.check == "walkdiff":
        return _walkdiff_cell(r)
    return {"build": _build_cell, "boot": _boot_cell, "stress": _stress_cell,
            "selftests": _selftests_cell}[col.check](r, col.arch)


def verdict(cells: list[Cell]) -> str:
    """pass | fail | error | warn | incomplete: the worst cell (skipped and walk-exit cells do not count;
    selftests count only where they ran)."""
    ranked = [c.css for c in cells if c.css in SEVERITY]
    return VERDICTS[min(ranked, key=SEVERITY.index)] if ranked else "incomplete"


def row(r: RevisionResult, cols: list[Column]) -> tuple[list[Cell], str]:
    cells = [cell(r, c) for c in cols]
    counted = [c for c, col in zip(cells, cols, strict=True)
               if not (col.check == "selftests" and c.css == "none") and col.check != "walkdiff"]
    return cells, verdict(counted)


def column_groups(cols: list[Column]) -> list[dict[str, Any]]:
    """The matrix's two header rows: a check spanning its arches (per-arch checks) or both rows (the others)."""
    groups: list[dict[str, Any]] = []
    for c in cols:
        if groups and groups[-1]["check"] == c.check and c.arch:
            groups[-1]["span"] += 1
        else:
            groups.append({"check": c.check, "heading": c.heading, "span": 1, "per_arch": bool(c.arch)})
    return groups
