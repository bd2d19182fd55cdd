"""The tree's own mm selftests, for real: `bot check` on the demo's clean v1 and its v8 (madvise_populate()
returns ENOMEM where the API says EINVAL — the stress scenarios cannot see it, madv_populate can), built from
the revisions' trees and run after the stress scenarios in one boot per revision and arch, the base kernel
booted once with the same tests.

v8's madv_populate is a new failure on both arches (every attempt failed, the base passed) with its failing
subtests named and a reproduce line in the reply; the clean v1 passes with nothing blamed; stress passes on
both, so only the selftests caught it. One selftest boot per arch at least (three: base, v1, v8). Then, on
x86_64, a revision whose touched test hangs and which deletes another from the Makefile.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bot.demo import series as demo
from bot.demo.writer import Edit, Patch, Revision, SeriesWriter
from tests.conftest import run_bot, write_config
from tests.kernel.conftest import CACHE, KERNEL_TREE, restored_tree

pytestmark = pytest.mark.kernel
ARCHES = os.environ.get("MM_REVIEW_BOT_ARCHES", "x86_64,arm64").split(",")
FAILING = ["not ok 2 MADV_POPULATE_WRITE with PROT_READ", "not ok 3 MADV_POPULATE_READ with PROT_WRITE"]


@pytest.fixture(scope="module")
def checked(inbox, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    work = tmp_path_factory.mktemp("selftests")
    specs = tuple(r for r in demo.REVISIONS if r.kind in ("clean", "selftest-bug"))
    generated = demo.generate(KERNEL_TREE, work / "series", revisions=specs)
    for g in generated:
        inbox.deliver_mbox(work / "series" / g.path)
    config = write_config(work / "config.toml", inbox.url, kernel_tree=KERNEL_TREE)
    config.write_text(config.read_text().replace('cache = "cache"', f'cache = "{CACHE}"'))
    bug = next(g for g in generated if g.kind == "selftest-bug")
    with restored_tree("review/*"):
        proc = run_bot("check", bug.cover_msgid, "--config", str(config), "--stages", "fetch,apply,build,boot,report",
                       "--arch", ",".join(ARCHES), "--json", cwd=work, timeout=5400)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), work


def revision(out: dict, version: int) -> dict:
    return next(r for r in out["revisions"] if r["version"] == version)


def only_reruns_are_flaky(st: dict) -> None:
    """What is called flaky failed and then passed a rerun here (or on the base), and is not blamed."""
    for name in st["flaky"]:
        (t,) = [t for t in st["tests"] if t["name"] == name]
        assert t["result"] == "pass" and name not in st["new_failures"], t


def test_the_selftest_only_bug_is_a_new_failure_on_both_arches(checked: tuple[dict, Path]) -> None:
    v8 = revision(checked[0], 8)
    for arch in ARCHES:
        st = v8["stages"]["selftests"][arch]
        assert st["status"] == "failed" and st["verdict"] == "fail", (arch, st["detail"])
        assert st["new_failures"] == ["madv_populate"], (arch, st["detail"])
        test = next(t for t in st["tests"] if t["name"] == "madv_populate")
        assert test["attempts"] == ["fail", "fail", "fail"] and test["base"] == "pass", test
        assert test["failing"] == FAILING, test["failing"]
        assert v8["stages"]["stress"][arch]["status"] == "ok"  # the stress scenarios cannot see it
        assert len(st["tests"]) >= 30, st["detail"]
        only_reruns_are_flaky(st)


def test_the_clean_revision_passes_and_nothing_is_blamed(checked: tuple[dict, Path]) -> None:
    """No new failure on the clean v1. A test that failed once and passed its rerun is flaky, reported as such
    and not blamed: seen once in a CI run (khugepaged all:shmem's first mmap at its fixed hint address came
    back elsewhere, "Bail out! Failed to allocate VMA at 0x40000000"; 0 of 10 boots in bench/selftests.py).
    The rate of flaky tests is measured there, not asserted here."""
    v1 = revision(checked[0], 1)
    for arch in ARCHES:
        st = v1["stages"]["selftests"][arch]
        assert st["status"] == "ok" and st["verdict"] == "pass", (arch, st["detail"])
        assert st["new_failures"] == [] and st["not_built"] == [], st
        only_reruns_are_flaky(st)
        passed = [t["name"] for t in st["tests"] if t["result"] in ("pass", "skip")]
        assert "madv_populate" in passed and "cow" in passed, st["detail"]


def test_the_reply_names_the_test_its_subtests_and_how_to_run_it(checked: tuple[dict, Path]) -> None:
    out, work = checked
    outbox = work / "patchsets" / "outbox" / "new"
    replies = [p.read_text() for p in outbox.iterdir()]
    (reply,) = [r for r in replies if "mm-review-bot: v8 " in r]
    assert "new mm selftest failure on" in reply
    assert "NEW FAILURE madv_populate: FAIL, 3 of 3 attempts; base: pass" in reply
    assert all(line in reply for line in FAILING)
    assert "./madv_populate" in reply


HANG = Patch("selftests/mm: madv_populate waits for a signal", "x\n", (Edit(
    "tools/testing/selftests/mm/madv_populate.c", "\tint nr_tests = 16;\n\tint err;\n\n",
    "\tint nr_tests = 16;\n\tint err;\n\n\tfor (;;)\n\t\tpause();\n", "int main(int argc, char **argv)"),))
DROP = Patch("selftests/mm: drop droppable", "x\n", (Edit(
    "tools/testing/selftests/mm/Makefile", "TEST_GEN_FILES += droppable\n", ""),))


def test_a_hanging_test_is_killed_the_rest_run_and_a_deleted_one_is_missing(inbox, tmp_path: Path) -> None:
    """A revision that makes madv_populate hang and deletes droppable from the Makefile: the touched test runs
    first (from the revision's own selftests build), is killed at its timeout and reported `timeout`, the tests
    after it still run, and droppable is `missing` (the base has it), both new failures. x86_64 only."""
    writer = SeriesWriter.on_tree(KERNEL_TREE, "debian/7.2.13-1", tmp_path / "w", msgid=lambda v, i: f"hang.v{v}.{i}@x")
    posting = writer.write(Revision(1, "selftests/mm: two changes", [HANG, DROP]))
    for m in posting.messages():
        inbox.deliver(m)
    config = write_config(tmp_path / "config.toml", inbox.url, kernel_tree=KERNEL_TREE)
    config.write_text(config.read_text().replace('cache = "cache"', f'cache = "{CACHE}"')
                      + '[selftests]\ntests = ["droppable", "mlock2-tests", "madv_populate"]\ntimeout_s = 20\n'
                      '[arch.x86_64]\nselftests = []\n')
    with restored_tree("review/*"):
        proc = run_bot("check", posting.msgids[0], "--config", str(config), "--stages", "fetch,apply,build,boot",
                       "--arch", "x86_64", "--json", cwd=tmp_path, timeout=3600)
    assert proc.returncode == 0, proc.stderr
    (rev,) = json.loads(proc.stdout)["revisions"]
    st = rev["stages"]["selftests"]["x86_64"]
    tests = {t["name"]: t for t in st["tests"]}
    assert [t["name"] for t in st["tests"]][0] == "madv_populate" and tests["madv_populate"]["why"] == "touched"
    # a timeout is rerun once (load can stretch a test past it), a second one is a hang
    assert tests["madv_populate"]["result"] == "timeout"
    assert tests["madv_populate"]["attempts"] == ["timeout", "timeout"]
    assert "killed at its timeout" in tests["madv_populate"]["detail"]
    assert tests["mlock2-tests"]["result"] == "pass"  # run after the one that hung
    assert tests["droppable"]["result"] == "missing", tests["droppable"]
    assert sorted(st["new_failures"]) == ["droppable", "madv_populate"] and st["status"] == "failed"
    assert rev["stages"]["build"]["x86_64"]["selftests"]["key"] != rev["stages"]["build"]["x86_64"][
        "base_selftests"]["key"]  # built from the revision's own tree
