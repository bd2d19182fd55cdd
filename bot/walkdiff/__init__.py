"""The walkdiff stage: how the exits of rmap/page-table walks changed from one revision to the next.

Reviewers of try_to_unmap_one() argue about a few lines: `if (nr_pages > 1) goto walk_done;` against
`if (nr_pages == folio_nr_pages(folio)) goto walk_done;`, walk_done against walk_abort. This stage lists,
per walk function a revision touches, each exit with its guard, comment and the assignments feeding the
guard, and pairs them with the previous revision's exits.

In: this revision's and the previous revision's am-ready mboxes, and their applied branches when they
applied; for a patch with a `Fixes:` line, the fixed commit from the kernel tree or (a lookup the driver hands
in) the fixed patch from the archive. Out: stages.walkdiff (WalkdiffResult: per function, each exit
added/removed/changed/unchanged; `fixes`: the same against each patch it fixes).

  exits.py    walk exits of C functions, with tree-sitter
  hunks.py    what a revision's patches show of each file (when it does not apply)
  compare.py  pairing exits across two versions of a function
  modes.py    tree mode (whole files) and hunks mode
  fixes.py    against the patch a `Fixes:` line names
  stage.py    the runner
"""

from bot.walkdiff.modes import walkdiff_hunks, walkdiff_tree
from bot.walkdiff.stage import run_stage

__all__ = ["run_stage", "walkdiff_hunks", "walkdiff_tree"]
