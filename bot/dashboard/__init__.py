"""The dashboard: a static site of every series' results, linked from the replies (`bot dashboard`).

In: the results on disk — patchsets/<slug>/series.json, v<N>/result.json and the logs and configs they name —
and [paths] dashboard, [lore] (links to the messages). Out: [paths] dashboard/index.html (recent series,
newest first, a verdict row per revision, a filter) and series/<slug>/ per series (the revision × check
matrix, stage times, walk exits side by side, per revision base, warnings, findings, logs, reproduce
scripts). Plain HTML and one same-site script; works from file:// and behind any static web server.

  model.py    a series on disk; the matrix cells and verdicts
  details.py  what a page says about each revision; walk exits across revisions
  plot.py     the stage-times chart (SVG geometry)
  scripts.py  the reproduce script per revision and arch
  site.py     writing a series' folder and the index
  serve.py    `bot dashboard --serve`: the site on 127.0.0.1
"""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import jinja2

from bot.config import Config
from bot.dashboard import model
from bot.dashboard.serve import serve
from bot.dashboard.site import Site, environment, write_index, write_series
from bot.errors import BadInput, OperationalError
from bot.results.links import series_page, site_slug

__all__ = ["Built", "build_site", "serve", "update_series"]


@dataclass
class Built:
    index: Path
    series: int
    seconds: float


def _site(config: Config) -> Site:
    return Site(Path(config.paths.dashboard), config.lore.inbox_url)


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    """One writer at a time (the daemon's update and a `bot dashboard` run)."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise OperationalError(f"cannot write the dashboard at {root}: {e.strerror or e}") from e
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    except OSError as e:  # a full disk, a read-only or clobbered site: one line, not a traceback
        raise OperationalError(f"cannot write the dashboard at {root}: {e.strerror or e}"
                               + (f" ({e.filename})" if e.filename else "")) from e
    finally:
        os.close(fd)


def series_dirs(patchsets: Path) -> list[Path]:
    return sorted(p.parent for p in patchsets.glob("*/series.json"))


def build_site(config: Config, workers: int = 0) -> Built:
    """The whole site from every series in [paths] patchsets; folders of series no longer there are removed.
    Series are written by `workers` forked processes (0: one per CPU; a small site is written in this one;
    fork: `bot dashboard` has no threads, and the workers need nothing re-imported)."""
    t0 = time.monotonic()
    site, env = _site(config), environment()
    dirs = series_dirs(Path(config.paths.patchsets))
    workers = workers or min(os.cpu_count() or 1, 8)
    with _locked(site.root):
        if workers > 1 and len(dirs) >= PARALLEL_FROM:
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
                written = list(pool.map(_write_one, [(site, d) for d in dirs], chunksize=25))
        else:
            written = [_write_one((site, d), env) for d in dirs]
        keep = {w for w in written if w is not None}
        for old in (site.root / "series").glob("*"):
            if old.is_dir() and old.name not in keep:
                shutil.rmtree(old)
        index = write_index(site, env)
    return Built(index, len(keep), time.monotonic() - t0)


PARALLEL_FROM = 50  # series; below that, starting worker processes costs more than it saves


def _write_one(job: tuple[Site, Path], env: jinja2.Environment | None = None) -> str | None:
    """One series' folder (in a worker process or this one); its site slug, None if it is not a series."""
    site, sdir = job
    series = model.load_series(sdir)
    if series is None:
        return None
    write_series(site, series, env)
    return site_slug(series.summary.slug)


def update_series(config: Config, slug: str) -> Path:
    """Rewrite one series' folder and the index (what the daemon does after each revision); its page's path."""
    sdir = Path(config.paths.patchsets) / slug
    series = model.load_series(sdir)
    if series is None:
        raise BadInput(f"no series {slug!r} in {config.paths.patchsets} (no series.json)")
    site, env = _site(config), environment()
    with _locked(site.root):
        write_series(site, series, env)
        write_index(site, env)
    return site.root / series_page(series.summary.slug)


