"""A build variant for real: `bot check --arch arm64` of a one-patch clean series (a comment in mm/rmap.c) with
`[build] variants = ["arm64-64k"]` builds, boots, stress-tests and selftests the 64 KiB-page arm64 kernel
beside the 4 KiB one, under its own name: its config has CONFIG_ARM64_64K_PAGES=y, the guest says it runs with
64 KiB pages, the stress scenarios pass there (a PTE table spans 512 MiB), the mm selftests run from the
binaries cached under arm64 (the same key: not built again), and the reply has an arm64-64k line.

Kept cheap for CI: one revision, a few selftests (not the default set: the plumbing is what is tested, and
each boot of the default set costs ~75 s on arm64 under TCG; three boots here: the 64K base, the 64K and the
4K revision, the 4K base's is cached). What it cannot save is the cold 64K build (~8 min on 2 cores: no
ccache hit carries over from the 4K config).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from bot.demo.writer import Edit, Patch, Revision, SeriesWriter
from tests.conftest import run_bot, write_config
from tests.kernel.conftest import CACHE, KERNEL_TREE, restored_tree

pytestmark = pytest.mark.kernel
VARIANT = "arm64-64k"
# quick on arm64 TCG (1-3 s each) and page-size minded: MADV_POPULATE over huge ranges, mremap of a range
# whose PTE table spans 512 MiB, the dirty bit of a THP/PTE mapping
TESTS = ["madv_populate", "mremap_dontunmap", "mkdirty"]
COMMENT = Patch("mm/rmap: say who holds the folio lock", "x\n", (Edit(
    "mm/rmap.c", " * Context: Caller must hold the folio lock.\n */\nvoid try_to_unmap(",
    " * Context: Caller must hold the folio lock (the walk relies on it).\n */\nvoid try_to_unmap("),))


@pytest.fixture(scope="module")
def checked(inbox, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    work = tmp_path_factory.mktemp("variants")
    writer = SeriesWriter.on_tree(KERNEL_TREE, "debian/7.2.13-1", work / "w", msgid=lambda v, i: f"variant.v{v}.{i}@x")
    posting = writer.write(Revision(1, "mm/rmap: a comment", [COMMENT]))
    for m in posting.messages():
        inbox.deliver(m)
    config = write_config(work / "config.toml", inbox.url, kernel_tree=KERNEL_TREE)
    config.write_text(config.read_text().replace('cache = "cache"', f'cache = "{CACHE}"')
                      + f'[build]\nvariants = ["{VARIANT}"]\n[selftests]\ntests = {json.dumps(TESTS)}\n')
    with restored_tree("review/*"):
        proc = run_bot("check", posting.msgids[0], "--config", str(config), "--stages", "fetch,apply,build,boot,report",
                       "--arch", "arm64", "--json", cwd=work, timeout=5400)
    assert proc.returncode == 0, proc.stderr
    (rev,) = json.loads(proc.stdout)["revisions"]
    return rev, work


def test_the_variant_is_built_with_64k_pages_beside_arm64(checked: tuple[dict, Path]) -> None:
    rev, _ = checked
    assert list(rev["stages"]["build"]) == ["arm64", VARIANT]
    arm64, st = rev["stages"]["build"]["arm64"], rev["stages"]["build"][VARIANT]
    assert st["status"] == "ok", st["detail"]
    assert st["fragments"][-1] == "arm64-64k.config" and st["fragments"][:-1] == arm64["fragments"]
    assert st["config_hash"] != arm64["config_hash"] and f"/{VARIANT}-" in st["build_dir"]
    config = Path(st["config"]).read_text()
    assert "CONFIG_ARM64_64K_PAGES=y" in config and "CONFIG_PAGE_SHIFT=16" in config
    assert "CONFIG_ARM64_4K_PAGES=y" in Path(arm64["config"]).read_text()
    # the selftests binaries are arm64's: one key, one cached build
    assert st["selftests"]["key"] == arm64["selftests"]["key"] and st["selftests"]["dir"] == arm64["selftests"]["dir"]


def test_the_variant_boots_with_64k_pages_and_stress_passes(checked: tuple[dict, Path]) -> None:
    rev, _ = checked
    boot, stress = rev["stages"]["boot"][VARIANT], rev["stages"]["stress"][VARIANT]
    assert boot["status"] == "ok" and boot["boot_status"] == "ok", boot["detail"]
    assert boot["page_size"] == 65536 and "64 KiB pages" in boot["detail"], boot["detail"]
    assert rev["stages"]["boot"]["arm64"]["page_size"] == 4096
    assert stress["status"] == "ok" and stress["verdict"] == "pass", stress["detail"]
    assert [s["name"] for s in stress["scenarios"]] == ["lazyfree-pageout", "lazyfree-memcg", "pte-table-crossing",
                                                        "swap-pressure"]
    crossing = next(s for s in stress["scenarios"] if s["name"] == "pte-table-crossing")
    assert "256kB_faults+" in crossing["detail"], crossing  # the 64K kernel's smallest anon mTHP: 4 pages
    console = Path(boot["log"]).read_text(errors="replace")
    assert "# stress: page_size=65536 pte_table_span=524288kB" in console


def test_the_selftests_ran_on_the_variant(checked: tuple[dict, Path]) -> None:
    rev, _ = checked
    st = rev["stages"]["selftests"][VARIANT]
    assert st["status"] == "ok", st["detail"]
    assert [t["name"] for t in st["tests"]] == TESTS
    assert any(t["result"] == "pass" for t in st["tests"]), st["tests"]
    assert st["new_failures"] == [] and "base_note" not in st, st  # compared with the 64K base kernel


def test_the_reply_has_a_line_for_the_variant(checked: tuple[dict, Path]) -> None:
    rev, work = checked
    (reply,) = [p.read_text() for p in (work / "patchsets" / "outbox" / "new").iterdir()]
    first = " ".join(reply.split("\n\n")[1].split())  # the verdict line, unwrapped
    assert first == "mm-review-bot: v1 applied, built on arm64/arm64-64k, boot + reclaim stress PASS, mm selftests " \
                    "PASS", first
    lines = reply.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(f"  {VARIANT}: "))
    more = itertools.takewhile(lambda ln: ln.startswith(" " * 10), lines[start + 1:])  # its wrapped rest
    line = " ".join([lines[start], *(ln.strip() for ln in more)])
    assert "built (" in line and "booted (" in line and "reclaim stress PASS 4/4" in line, line
    assert f"mm selftests PASS {len(TESTS)}/{len(TESTS)}" in line, line
    assert "arm64-64k.config" in reply
