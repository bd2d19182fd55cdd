"""The walkdiff runner: tree mode when this revision and the one before it applied, else hunks mode; and for
each `Fixes:` line, the exits against the patch it fixes (fixes.py; the archive lookup is handed in)."""

from __future__ import annotations

from bot import repo
from bot.patches import Series, parse_mbox
from bot.results import FindFixed, Outputs, StageContext
from bot.walkdiff.fixes import fixes_walkdiffs
from bot.walkdiff.modes import C_SUFFIXES, walkdiff_hunks, walkdiff_tree


def run_stage(ctx: StageContext, find_fixed: FindFixed = lambda _subject: None) -> Outputs:
    result, prev, config = ctx.revision, ctx.previous, ctx.config
    against = f"v{prev.version}" if prev else "base"
    mbox = ctx.rdir / "series.mbx"
    prev_mbox = ctx.revision_dir(prev.version) / "series.mbx" if prev else None
    series = parse_mbox(mbox)
    prev_series: Series | None = parse_mbox(prev_mbox) if prev_mbox is not None and prev_mbox.exists() else None
    before_ref = prev.stages.apply.branch if prev else result.base.commit
    after_ref = result.stages.apply.branch
    if result.stages.apply.status == "ok" and before_ref and after_ref:
        paths = sorted(p for s in (series, prev_series) if s is not None for p in s.paths() if p.endswith(C_SUFFIXES))
        stage = walkdiff_tree(repo.read_files(config, before_ref, paths), repo.read_files(config, after_ref, paths),
                              config.walkdiff, against=against, revision=f"v{result.version}")
    else:
        why = "this revision did not apply" if result.stages.apply.status != "ok" else f"{against} did not apply"
        stage = walkdiff_hunks(series.bodies(), prev_series.bodies() if prev_series else None, config.walkdiff,
                               revision=f"v{result.version}", against=against)
        stage.hunks_because = why
    stage.fixes = fixes_walkdiffs(config, series, result, find_fixed) or None
    return {"walkdiff": stage}
