"""The report stage: one plain-text review reply per revision, rendered from its results, sent exactly once.

In: the revision's RevisionResult and the SeriesSummary (every stage's results so far), [report] settings,
the reply templates ([paths] templates). Out: stages.report (ReportResult: the reply's Message-ID, its
state in the outbox — rendered, sending, sent, held — and where it went).

  verdict.py        the facts a reply states (its digest), the blamed patch; the verdict line (bot/results/)
  sections.py       what each section says: only what ran, nothing where there is nothing to report
  walkdiff_text.py  walk-exit changes as text
  view.py           the template context (dashboard link, reproduce lines, Reported-by/Closes) and rendering
  mail.py           building the reply (threading, headers), the outbox Maildir, SMTP
  deliver.py        outbox + store: render, send once, reconcile an interrupted send
"""

from __future__ import annotations

from bot.report.deliver import OnArchive, context, post, report
from bot.report.verdict import verdict_parts
from bot.report.view import render
from bot.report.walkdiff_text import render_fixes, render_text
from bot.results import Outputs, StageContext

__all__ = ["OnArchive", "context", "post", "render", "render_fixes", "render_text", "report", "run_stage",
           "verdict_parts"]


def run_stage(ctx: StageContext, on_archive: OnArchive) -> Outputs:
    return {"report": report(ctx.config, ctx.series, ctx.revision, ctx.arches, ctx.newest, on_archive)}
