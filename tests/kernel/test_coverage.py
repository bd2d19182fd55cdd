"""The build stage's coverage on the real kernel tree, both arches, with the config that compiles mm/:
`bot check` on a series with a new warning in mm/userfaultfd.c, a build error in mm/damon/core.c and a clean
change in mm/zswap.c reports exactly so, with a coverage entry for each file; W=1 finds a warning only W=1
sees; and a touched file only the KASAN config compiles (mm/kasan/) is compiled there.

None of these three files was compiled by the old tinyconfig-based config. The base build is shared with
tests/kernel/test_build.py (the checkout's .cache/); the series builds are incremental copies of it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bot import build
from bot.config import Config, PathsConfig
from bot.demo.writer import Edit, Patch, Revision, SeriesWriter
from bot.results import PatchInfo, RevisionResult
from bot.tree import apply_series
from tests.conftest import run_bot, write_config
from tests.kernel.conftest import CACHE, KERNEL_TREE, restored_tree
from tests.stages import run_stage

pytestmark = pytest.mark.kernel
ARCHES = os.environ.get("MM_REVIEW_BOT_ARCHES", "x86_64,arm64").split(",")

UFFD_WARN = Patch("mm/userfaultfd: name the zeropage fallback", "x\n", (Edit(
    "mm/userfaultfd.c", "\tspinlock_t *ptl;\n\tint ret;\n", "\tspinlock_t *ptl;\n\tint ret;\n\tint zeroed;\n",
    "static int mfill_atomic_pte_zeropage("),))
DAMON_ERROR = Patch("mm/damon/core: count contexts", "x\n", (Edit(
    "mm/damon/core.c", "\tstruct damon_ctx *ctx;\n\n\tctx = kzalloc_obj(*ctx);\n",
    "\tstruct damon_ctx *ctx;\n\n\tdamon_nr_ctxs++;\n\tctx = kzalloc_obj(*ctx);\n",
    "struct damon_ctx *damon_new_ctx(void)"),))
ZSWAP_CLEAN = Patch("mm/zswap: say what zswap_store() returns", "x\n", (Edit(
    "mm/zswap.c", "bool zswap_store(struct folio *folio)\n{",
    "/* true: the folio is in zswap now; false: it goes to the swap device */\n"
    "bool zswap_store(struct folio *folio)\n{"),))
# W=1 only: an unused static const (scripts/Makefile.warn adds -Wunused-const-variable with W=1 alone; in 7.2
# -Wmissing-prototypes is on in every build)
ZSWAP_W1 = Patch("mm/zswap: a constant", "x\n", (Edit(
    "mm/zswap.c", "bool zswap_store(struct folio *folio)\n{",
    "static const int zswap_bot_unused = 1;\n\nbool zswap_store(struct folio *folio)\n{"),))


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory):
    with restored_tree("review/pytest-coverage/*"):
        yield Config(paths=PathsConfig(kernel_tree=KERNEL_TREE, cache=CACHE,
                                       patchsets=tmp_path_factory.mktemp("patchsets")))


def built(cfg: Config, tmp: Path, name: str, patches: list[Patch]) -> RevisionResult:
    writer = SeriesWriter.on_tree(KERNEL_TREE, "debian/7.2.13-1", tmp / name)
    mbox = tmp / f"{name}.mbx"
    mbox.write_text(writer.write(Revision(1, name, patches)).mbox())
    stage = apply_series(cfg, mbox, f"review/pytest-coverage/{name}")
    assert stage.status == "ok" and stage.commits and stage.base, stage
    r = RevisionResult(f"{name}@pytest", 1, name, "a", "d", [PatchInfo(c.index, c.subject, "") for c in stage.commits],
                       [])
    r.base, r.stages.apply = stage.base, stage
    return run_stage(build.run_stage, cfg, r, ARCHES, slug=f"pytest-coverage-{name}")


def test_bot_check_reports_warning_error_and_clean_change_in_files_the_old_config_never_built(
        inbox, tmp_path: Path) -> None:
    writer = SeriesWriter.on_tree(KERNEL_TREE, "debian/7.2.13-1", tmp_path / "w", msgid=lambda v, i: f"cov.v{v}.{i}@x")
    posting = writer.write(Revision(1, "mm: three files", [UFFD_WARN, DAMON_ERROR, ZSWAP_CLEAN]))
    for m in posting.messages():
        inbox.deliver(m)
    config = write_config(tmp_path / "config.toml", inbox.url, kernel_tree=KERNEL_TREE)
    config.write_text(config.read_text().replace('cache = "cache"', f'cache = "{CACHE}"'))
    with restored_tree("review/*"):
        proc = run_bot("check", posting.msgids[0], "--config", str(config), "--stages", "fetch,apply,build,report",
                       "--arch", ",".join(ARCHES), "--json", cwd=tmp_path, timeout=5400)
    assert proc.returncode == 0, proc.stderr
    (rev,) = json.loads(proc.stdout)["revisions"]
    for arch in ARCHES:
        st = rev["stages"]["build"][arch]
        assert st["status"] == "failed", (arch, st["detail"])
        assert st["error"]["file"] == "mm/damon/core.c", st["error"]
        assert "damon_nr_ctxs" in st["detail"] and "undeclared" in st["detail"], st["detail"]
        warnings = [(w["file"], w["message"], w["patch"]["index"]) for w in st["new_warnings"]]
        assert warnings == [("mm/userfaultfd.c", "unused variable 'zeroed' [-Wunused-variable]", 1)], warnings
        # the file that does not compile was compiled (and failed): the compiler saw it, there is no object
        assert {c["file"]: c["compiled"] for c in st["coverage"]} == {
            "mm/userfaultfd.c": True, "mm/damon/core.c": True, "mm/zswap.c": True}, st["coverage"]
    reply = next((tmp_path / "patchsets" / "outbox" / "new").iterdir()).read_text()
    assert "mm/damon/core.c" in reply and "unused variable 'zeroed'" in reply
    assert "Not compiled" not in reply  # every touched file was compiled


KASAN_TOUCH = Patch("mm/kasan: a comment", "x\n", (Edit(
    "mm/kasan/generic.c", "#include <linux/export.h>\n", "#include <linux/export.h>\n/* generic KASAN */\n"),))


def test_a_file_only_the_kasan_config_builds_is_compiled_there(cfg: Config, tmp_path: Path) -> None:
    r = built(cfg, tmp_path, "kasan", [KASAN_TOUCH])
    for arch in ARCHES:
        st = r.stages.build[arch]
        assert st.status == "ok", (arch, st.detail, st.log_tail)
        (c,) = st.coverage or []
        assert (c.file, c.compiled, c.config) == ("mm/kasan/generic.c", True, "kasan"), c


def test_w1_warning_is_reported_and_labelled(cfg: Config, tmp_path: Path) -> None:
    r = built(cfg, tmp_path, "w1", [ZSWAP_W1])
    for arch in ARCHES:
        st = r.stages.build[arch]
        assert st.status == "ok", (arch, st.detail, st.log_tail)
        got = [(w.file, w.w1, w.message) for w in st.new_warnings or []]
        assert got == [("mm/zswap.c", True, "'zswap_bot_unused' defined but not used [-Wunused-const-variable=]")], got
        assert [c.file for c in st.coverage or [] if c.compiled] == ["mm/zswap.c"]
