"""The report stage: one plain-text review reply per revision, rendered from its results, sent exactly once.

In: the revision's RevisionResult and the SeriesSummary (every stage's results so far), [report] settings,
the reply templates ([paths] templates). Out: stages.report (ReportResult: the reply's Message-ID, its
state in the outbox — rendered, sending, sent, held — and where it went).

  verdict.py        the verdict line, the facts a reply states, new warnings, the blamed patch
  walkdiff_text.py  walk-exit changes as text
  view.py           the template context and jinja2 rendering
  mail.py           building the reply (threading, headers), the outbox Maildir, SMTP
  deliver.py        outbox + store: render, send once, reconcile an interrupted send
"""

from __future__ import annotations

from bot.report.deliver import OnArchive, post, report
from bot.report.verdict import verdict_parts
from bot.report.view import render
from bot.report.walkdiff_text import render_fixes, render_text
from bot.results import Outputs, StageContext

__all__ = ["OnArchive", "post", "render", "render_fixes", "render_text", "report", "run_stage", "verdict_parts"]


def run_stage(ctx: StageContext, on_archive: OnArchive) -> Outputs:
    return {"report": report(ctx.config, ctx.series, ctx.revision, ctx.arches, ctx.newest, on_archive)}
