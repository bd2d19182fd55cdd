"""The tree stage (named "apply" in the pipeline): kernel-tree/ set up, and a revision applied to it.

In: the revision's am-ready mbox (patchsets/<slug>/v<N>/series.mbx) and the cover letter's base-commit.
Out: ApplyResult — the branch review/<slug>/v<N> with one commit per patch, or the patch, file and hunk
that did not apply; the chosen base (stored as result.base).

  sources.py  kernel-tree/ from Debian's linux-source package or a git remote (`bot setup`)
  base.py   which commit a revision is applied to
  apply.py  dry run on a throwaway index, then git am on the revision's branch
"""

from __future__ import annotations

from pathlib import Path

from bot.results import ApplyResult, Outputs, StageContext
from bot.tree.apply import apply_series
from bot.tree.sources import SetupReport, setup

__all__ = ["SetupReport", "apply_series", "run_stage", "setup"]


def run_stage(ctx: StageContext) -> Outputs:
    """Apply this revision on review/<slug>/v<N>."""
    if not (Path(ctx.config.paths.kernel_tree) / ".git").is_dir():
        return {"apply": ApplyResult("error", f"no kernel tree at {ctx.config.paths.kernel_tree}: run `bot setup`")}
    branch = f"review/{ctx.series.slug}/v{ctx.revision.version}"
    trailer = ctx.revision.stages.fetch.base_commit_trailer
    return {"apply": apply_series(ctx.config, ctx.rdir / "series.mbx", branch, trailer)}
