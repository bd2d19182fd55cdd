"""Fixtures for the integration tests over the one series writer (bot/demo/writer.py): a toy mm/rmap.c.

toy_writer() posts on a root commit holding the toy rmap.c, with Message-IDs <tag>.v<N>.<i>@example.org
(unique per test, so tests can share one archive) and dates from June 2025, a week between postings.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from bot.demo.writer import AUTHOR, TO, SeriesWriter, tagged

LIST = TO
START = datetime.datetime(2025, 6, 1, 12, 0, tzinfo=datetime.UTC)
BASE_RMAP = """\
// SPDX-License-Identifier: GPL-2.0-only
/* toy mm/rmap.c for tests */

static bool try_to_unmap_one(struct folio *folio, struct vm_area_struct *vma,
\t\t     unsigned long address, void *arg)
{
\tDEFINE_FOLIO_VMA_WALK(pvmw, folio, vma, address, 0);
\tbool ret = true;
\tunsigned long nr_pages = 1;

\twhile (page_vma_mapped_walk(&pvmw)) {
\t\tif (!pvmw.pte) {
\t\t\tret = false;
\t\t\tpage_vma_mapped_walk_done(&pvmw);
\t\t\tbreak;
\t\t}
\t\tnr_pages = 1;
\t\tif (folio_test_anon(folio))
\t\t\tgoto walk_done;
\t}
\treturn ret;
walk_done:
\tpage_vma_mapped_walk_done(&pvmw);
\treturn ret;
}
"""

__all__ = ["AUTHOR", "BASE_RMAP", "LIST", "START", "rmap_with", "toy_writer"]


def toy_writer(workdir: Path, tag: str, author: str = AUTHOR, start: datetime.datetime = START) -> SeriesWriter:
    """A writer of series on the toy tree, its repository in workdir/repo-<tag>."""
    return SeriesWriter.on_files({"mm/rmap.c": BASE_RMAP}, workdir / f"repo-{tag}", author=author, when=start,
                                 msgid=tagged(tag))


def rmap_with(condition: str, label: str = "walk_done", comment: str = "") -> str:
    """The toy rmap.c with the early exit under another condition/label."""
    text = BASE_RMAP.replace("\t\tif (folio_test_anon(folio))\n\t\t\tgoto walk_done;",
                             f"{comment}\t\tif ({condition})\n\t\t\tgoto {label};")
    if label != "walk_done":
        text = text.replace("walk_done:\n", f"{label}:\n")
    return text
