"""Writing the site: a series' folder (its page, logs, configs, reproduce scripts, its index row) and the index.

The index is put together from the rows each series folder keeps (row.json), so updating one series rewrites
that folder and the index only. Files are replaced whole (temp file + rename): a web server never serves half
a page. Nothing from a mail becomes a path: folders are site slugs, file names are fixed per arch.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from bot.dashboard import details, model, plot, scripts
from bot.results import RevisionResult
from bot.results.links import lore_link, reproduce_arches, reproduce_name, safe_arch, series_page, site_slug
from bot.results.verdict import verdict_parts

PACKAGE = resources.files("bot.dashboard")
STATIC = ("style.css", "filter.js", "favicon.svg")
# The page may run its own script file and use its own stylesheet; nothing inline, nothing from elsewhere.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; base-uri 'none'; "
       "form-action 'none'")
ROW = "row.json"


@dataclass
class Site:
    root: Path
    inbox_url: str  # the archive's list URL, for links to the messages

    def series_dir(self, slug: str) -> Path:
        return self.root / "series" / site_slug(slug)


def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(PACKAGE / "templates")), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             auto_reload=False)  # a run renders thousands of pages from the same templates
    env.globals["csp"] = CSP
    return env


_ENV: list[jinja2.Environment] = []


def _default_env() -> jinja2.Environment:
    """One environment per process (worker processes render many series each)."""
    if not _ENV:
        _ENV.append(environment())
    return _ENV[0]


def write_text(path: Path, text: str) -> None:
    """Replace path whole, unless it already says text; no fsync (the site is rebuilt from the results
    whenever it is lost)."""
    data = text.encode()
    try:
        with open(path, "rb") as f:
            if f.read() == data:
                return
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = f"{path.parent}/.{path.name}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)
    os.replace(tmp, path)


def copy_file(src: Path, dst: Path) -> None:
    """src published at dst: a hard link when both are on one filesystem (a log is tens of KiB to MiBs, a
    site holds thousands), else a copy; nothing is done when dst already is one (same size and mtime)."""
    st = src.stat()
    try:
        have = dst.stat()
        if have.st_size == st.st_size and have.st_mtime_ns == st.st_mtime_ns:
            return
    except FileNotFoundError:
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, dst)  # a new name appears whole: no temp file needed
            return
        except OSError:
            pass
    tmp = dst.with_name(f".{dst.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
        os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.chmod(tmp, 0o644)
    os.replace(tmp, dst)


def recorded_file(rdir: Path, recorded: str | None) -> Path | None:
    """A log or config a result names: where it was written, else under the revision's folder (results that
    moved with their folder, or fixtures with relative paths)."""
    if not recorded or ".." in recorded.split("/"):  # the bot names its own files; never a way out of rdir
        return None
    base = str(rdir)
    candidates = [f"{base}/{recorded}", f"{base}/logs/{os.path.basename(recorded)}"]
    for candidate in [recorded, *candidates] if os.path.isabs(recorded) else candidates:
        if os.path.isfile(candidate):  # os.path on strings: a site build asks this thousands of times
            return Path(candidate)
    return None


def _files(series: model.Series, r: RevisionResult) -> list[tuple[str, str, Path]]:
    """(label, name on the site, source) of each log and config a revision has, per arch."""
    rdir = series.sdir / f"v{r.version}"
    out = []
    for a in series.arches:
        if not safe_arch(a):
            continue
        build, boot = r.stages.build.get(a), r.stages.boot.get(a)
        for label, name, recorded in (("build log", f"build-{a}.txt", build.log if build else None),
                                      ("kernel config", f"config-{a}.txt", build.config if build else None),
                                      ("boot console", f"boot-{a}.txt", boot.log if boot else None)):
            src = recorded_file(rdir, recorded)
            if src is not None:
                out.append((f"{a} {label}", name, src))
    return out


def _revision(site: Site, series: model.Series, r: RevisionResult, written: set[Path]) -> dict[str, Any]:
    """One revision's section of the series page; its logs, configs and scripts copied/written beside it."""
    vdir = site.series_dir(series.summary.slug) / f"v{r.version}"
    logs, files = [], _files(series, r)
    for label, name, src in files:
        copy_file(src, vdir / name)
        written.add(vdir / name)
        logs.append({"label": label, "href": f"v{r.version}/{name}"})
    reproduce = []
    names = {name for _, name, _ in files}
    for a in reproduce_arches(r):
        path = vdir / reproduce_name(a)
        config = f"config-{a}.txt" if f"config-{a}.txt" in names else ""
        commands = scripts.commands(r, a)
        write_text(path, scripts.reproduce(series.summary, r, a, commands, config))
        written.add(path)
        reproduce.append({"arch": a, "href": f"v{r.version}/{reproduce_name(a)}", "commands": commands})
    return {"version": r.version, "subject": details.one_line(r.subject), "date": r.date[:10],
            "link": lore_link(site.inbox_url, r.message_id), "message_id": r.message_id,
            "patches": [{"subject": details.one_line(p.subject), "link": lore_link(site.inbox_url, p.message_id)}
                        for p in r.patches],
            "reply": _reply(site, r), "verdict": f"v{r.version} " + ", ".join(verdict_parts(r)),
            "logs": logs, "reproduce": reproduce, **details.revision_details(r)}


def _reply(site: Site, r: RevisionResult) -> dict[str, str] | None:
    rep = r.stages.report
    if not rep.message_id:
        return None
    return {"message_id": rep.message_id, "state": rep.state or rep.status,
            "link": lore_link(site.inbox_url, rep.message_id) if rep.state == "sent" else ""}


def _series_context(site: Site, series: model.Series, written: set[Path]) -> dict[str, Any]:
    cols = model.columns(series.arches)
    matrix = []
    for r in series.revisions:
        cells, verdict = model.row(r, cols)
        matrix.append({"version": r.version, "cells": cells, "verdict": verdict})
    s = series.summary
    return {"subject": details.one_line(s.subject), "author": details.one_line(s.author), "slug": s.slug,
            "columns": cols, "groups": model.column_groups(cols), "matrix": matrix,
            "chart": plot.times_chart(series.revisions, series.arches),
            "functions": details.walk_functions(series.revisions),
            "versions": [r.version for r in series.revisions],
            "revisions": [_revision(site, series, r, written) for r in reversed(series.revisions)],
            "root": "../../"}


def _index_row(env: jinja2.Environment, series: model.Series) -> dict[str, Any]:
    cols = model.columns(INDEX_ARCHES)
    # the index's columns are the real arches'; its verdict counts the build variants too (columns of their own
    # on the series page)
    counted = model.columns(INDEX_ARCHES + [a for a in series.arches if a not in INDEX_ARCHES])
    revs = []
    for r in reversed(series.revisions):
        cells, _ = model.row(r, cols)
        verdict = model.row(r, counted)[1]
        revs.append({"version": r.version, "cells": cells, "verdict": verdict, "date": r.date[:10]})
    s = series.summary
    newest = revs[0]["verdict"] if revs else "incomplete"
    text = " ".join([s.subject, s.author, s.slug, *(r.message_id for r in series.revisions)]).lower()
    html = env.get_template("row.html.j2").render(
        href=series_page(s.slug), subject=details.one_line(s.subject), author=details.one_line(s.author),
        date=series.date[:10], revisions=revs, verdict=newest, text=details.one_line(text), columns=cols)
    return {"slug": s.slug, "date": series.date, "verdict": newest, "html": html}


INDEX_ARCHES = list(model.ARCHES)


def write_series(site: Site, series: model.Series, env: jinja2.Environment | None = None) -> Path:
    """series/<slug>/: the page, the files beside it and the index row; files no longer produced are removed."""
    env = env or _default_env()
    sdir = site.series_dir(series.summary.slug)
    written: set[Path] = set()
    page = sdir / "index.html"
    write_text(page, env.get_template("series.html.j2").render(**_series_context(site, series, written)))
    write_text(sdir / ROW, json.dumps(_index_row(env, series)))
    written |= {page, sdir / ROW}
    for path in sdir.rglob("*"):
        if path.is_file() and path not in written:
            path.unlink()
    return page


def write_index(site: Site, env: jinja2.Environment | None = None) -> Path:
    """index.html from every series folder's row.json, newest first; and the shared static files."""
    env = env or environment()
    rows = []
    for path in (site.root / "series").glob(f"*/{ROW}"):
        try:
            rows.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue  # a folder being rewritten or broken: the next update writes it again
    rows.sort(key=lambda r: (r.get("date", ""), r.get("slug", "")), reverse=True)
    counts = {v: sum(1 for r in rows if r.get("verdict") == v) for v in model.VERDICTS.values()}
    for name in STATIC:
        write_text(site.root / name, (PACKAGE / "static" / name).read_text())
    index = site.root / "index.html"
    cols = model.columns(INDEX_ARCHES)
    write_text(index, env.get_template("index.html.j2").render(
        rows=[r["html"] for r in rows], columns=cols, groups=model.column_groups(cols), counts=counts, root=""))
    return index
