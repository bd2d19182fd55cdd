"""The mm selftests' pieces that need no VM: which tests a revision runs (plan), what a console says about
them (tap), how a boot's outcomes compare with the base's (outcome), the build log's failed binaries, the
[selftests] config and the x86 TSC hint. The real runs are tests/kernel/test_selftests.py."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bot import config as configmod
from bot.boot import console, qemu, vm
from bot.boot.selftests import SelftestsBoot, outcome, plan, tap
from bot.boot.stage import BaseRun, selftests_result
from bot.build.selftests import failed_targets
from bot.config import Config, SelftestsConfig
from bot.errors import UsageError
from bot.results import Finding, SelftestRun, SelftestsBuild

CONSOLE = """\
[    5.100000] Run /init as init process
RESULT: PASS
### SELFTESTS begin tests=5 budget=150
### BEGIN 1 attempt=1 :: madv_populate
TAP version 13
1..3
# [RUN] test_prot_read
ok 1 MADV_POPULATE_READ with PROT_READ
not ok 2 MADV_POPULATE_WRITE with PROT_READ
ok 3 MADV_POPULATE_READ with PROT_WRITE[    6.501763] Adding 262140k swap on /dev/zram0.
# Totals: pass:2 fail:1 xfail:0 xpass:0 skip:0 error:0
### END 1 attempt=1 rc=1 sig=0 timeout=0 secs=0.23
### BEGIN 1 attempt=2 :: madv_populate
not ok 2 MADV_POPULATE_WRITE with PROT_READ
### END 1 attempt=2 rc=1 sig=0 timeout=0 secs=0.20
### BEGIN 2 attempt=1 :: cow
ok 1 a # SKIP no io_uring
ok 2 b # XFAIL known
not ok 3 c # SKIP not here
\x00garbage ### END 9 rc=zz
ok 4 d
### END 2 attempt=1 rc=0 sig=0 timeout=0 secs=17.04
### BEGIN 3 attempt=1 :: uffd-unit-tests -f move
not ok 1 move # error setup
### END 3 attempt=1 rc=1 sig=0 timeout=0 secs=1.00
### BEGIN 3 attempt=2 :: uffd-unit-tests -f move
ok 1 move
### END 3 attempt=2 rc=0 sig=0 timeout=0 secs=1.00
### BEGIN 4 attempt=1 :: khugepaged all:shmem
### END 4 attempt=1 rc=-1 sig=9 timeout=1 secs=180.00
### NOTRUN 5 budget
### SELFTESTS done secs=199.5
"""


def entries(*names: str, reruns: int = 2) -> list[plan.Entry]:
    return plan.entries([(n, "default") for n in names], {n: reruns for n in names})


def test_console_frames_counts_and_kernel_lines_cut_into_a_test_line() -> None:
    run = tap.parse(CONSOLE.splitlines())
    assert run.started and run.done and run.seconds == 199.5 and run.not_run == {5: "budget"}
    first, second, cow, move1, move2, hung = run.attempts
    assert (first.n, first.attempt, first.outcome, first.ok, first.fail) == (1, 1, "fail", 2, 1)
    assert first.failing == ["not ok 2 MADV_POPULATE_WRITE with PROT_READ"]
    assert second.attempt == 2 and second.outcome == "fail"
    assert (cow.outcome, cow.ok, cow.skip, cow.xfail, cow.fail) == ("pass", 1, 2, 1, 0)  # SKIP on a not ok is skip
    assert move1.fail == 1 and move2.outcome == "pass"  # "# error" is a failure even on an ok-less line
    assert (hung.outcome, hung.signal) == ("timeout", 9)


def test_an_attempt_without_end_is_a_crash_and_garbage_never_raises() -> None:
    lines = [*CONSOLE.splitlines()[:8], "[   9.000000] Kernel panic - not syncing: Fatal exception"]
    run = tap.parse(lines)
    (a,) = run.attempts
    assert a.outcome == "crash" and a.rc is None and not run.done
    assert tap.parse(["\x00\xff### BEGIN x", "### END", "ok", "not ok 1", "1..0"]).attempts == []


def test_runs_and_comparison_with_the_base() -> None:
    parsed = tap.parse(CONSOLE.splitlines())
    plan_ = entries("madv_populate", "cow", "uffd-unit-tests -f move", "khugepaged all:shmem", "rmap")
    runs = outcome.runs(parsed, plan_, [], "")
    by = {r.name: r for r in runs}
    assert by["madv_populate"].result == "fail" and by["madv_populate"].attempts == ["fail", "fail"]
    assert by["madv_populate"].failing == ["not ok 2 MADV_POPULATE_WRITE with PROT_READ"]
    assert "madv_populate" in by["madv_populate"].reproduce
    assert by["uffd-unit-tests -f move"].attempts == ["fail", "pass"]
    assert by["khugepaged all:shmem"].result == "timeout" and "180s" in by["khugepaged all:shmem"].detail
    assert by["rmap"].result == "not_run" and "budget" in by["rmap"].detail
    base = {"madv_populate": SelftestRun("madv_populate", "pass", attempts=["pass"]),
            "cow": SelftestRun("cow", "pass", attempts=["pass"]),
            "khugepaged all:shmem": SelftestRun("khugepaged all:shmem", "fail", attempts=["fail", "fail", "fail"])}
    res = outcome.compare(runs, base, None)
    assert res.new_failures == ["madv_populate"] and res.verdict == "fail" and res.status == "failed"
    assert res.flaky == ["uffd-unit-tests -f move"]  # failed, then passed: never the series' bug
    assert res.preexisting == ["khugepaged all:shmem"]
    assert by["madv_populate"].base == "pass" and by["rmap"].base is None
    assert "1 new failure(s): madv_populate" in res.detail and "1 not run" in res.detail


def test_a_timeout_that_passes_on_its_rerun_is_flaky() -> None:
    """A loaded host can stretch a test past its timeout (measured: cow on arm64 under three VMs' load):
    the runner reruns a timeout once, and a pass then is flaky, not the series' bug."""
    runs = [SelftestRun("cow", "pass", attempts=["timeout", "pass"])]
    res = outcome.compare(runs, {"cow": SelftestRun("cow", "pass", attempts=["pass"])}, None)
    assert res.new_failures == [] and res.flaky == ["cow"] and res.verdict == "pass"


def test_a_base_that_flaked_makes_a_failure_flaky_not_new() -> None:
    runs = [SelftestRun("split_huge_page_test", "fail", attempts=["fail", "fail", "fail"])]
    base = {"split_huge_page_test": SelftestRun("split_huge_page_test", "pass", attempts=["fail", "pass"])}
    res = outcome.compare(runs, base, None)
    assert res.new_failures == [] and res.flaky == ["split_huge_page_test"] and res.verdict == "pass"


def test_a_kernel_report_during_a_passing_test_is_its_new_failure() -> None:
    runs = [SelftestRun("cow", "pass", attempts=["pass"])]
    warn = Finding("warning", "WARNING: mm/memory.c:12 at do_wp_page+0x1/0x2", "warning:do_wp_page", "ex",
                   selftest="cow")
    res = outcome.compare(runs, {"cow": SelftestRun("cow", "pass")}, None, [warn])
    assert res.new_failures == ["cow"] and "kernel: WARNING" in runs[0].detail and runs[0].excerpt == "ex"


def test_unbuilt_missing_and_not_for_this_arch() -> None:
    built = SelftestsBuild("k", "/d", built=["cow"], not_built={"rmap": "rmap.c:1: error: numa.h"},
                           wanted=["cow", "rmap"])
    base = SelftestsBuild("b", "/b", built=["cow", "rmap", "mremap_test"], wanted=["cow", "rmap", "mremap_test"])
    names = [("cow", "default"), ("rmap", "default"), ("mremap_test", "default"), ("soft-dirty", "default")]
    runs, notes = outcome.unbuilt(names, built, base)
    assert [(r.name, r.result) for r in runs] == [("rmap", "not_built"), ("mremap_test", "missing")]
    assert "numa.h" in runs[0].detail and notes == ["soft-dirty"]
    res = outcome.compare(runs, {}, base)
    assert res.new_failures == ["rmap", "mremap_test"]  # the base built rmap; mremap_test was deleted
    assert res.not_built == ["rmap", "mremap_test"]


def test_plan_touched_tests_first_then_for_files_then_the_default_set() -> None:
    cfg = Config(selftests=dataclasses.replace(SelftestsConfig(), tests=["cow", "rmap"],
                                               for_files={"mm/ksm.c": ["ksm_functional_tests", "cow"]}))
    touched = ["mm/ksm.c", "tools/testing/selftests/mm/mremap_test.c", "tools/testing/selftests/mm/vm_util.c"]
    got = plan.wanted(cfg, "arm64", touched, ["cow", "rmap", "mremap_test", "ksm_functional_tests"])
    assert got == [("mremap_test", "touched"), ("ksm_functional_tests", "for mm/ksm.c"), ("cow", "for mm/ksm.c"),
                   ("rmap", "default")]
    x86 = plan.wanted(Config(), "x86_64", [], [])
    assert ("pagemap_ioctl", "default") in x86 and ("pagemap_ioctl", "default") not in plan.wanted(
        Config(), "arm64", [], [])
    full = plan.wanted(Config(), "x86_64", [], [], full=True)
    assert ("ksm_tests -M -p 10", "full") in full and all(w == "full" for _, w in full)
    odd = dataclasses.replace(SelftestsConfig(), tests=["cow; reboot", "rmap $(x)", "gup_test -u -n 1"])
    assert plan.wanted(Config(selftests=odd), "arm64", [], []) == [("gup_test -u -n 1", "default")]


def test_plan_text_runs_as_nobody_and_sets_what_a_test_needs_around_it() -> None:
    e = entries("on-fault-limit", "mremap_test", reruns=0)
    text = plan.plan_text(Config(), e, 90)
    assert text.splitlines() == [
        "budget 90", "run 1 300 0 65534 on-fault-limit", "write /proc/sys/vm/overcommit_memory 1",
        "run 2 300 0 - mremap_test", "write /proc/sys/vm/overcommit_memory 0"]
    boot = SelftestsBoot(e, text, Path("/x"), 90, 300)
    assert boot.deadline() == 90 + 300 + 60


def test_failed_targets_name_the_binary_and_its_error() -> None:
    log = """\
gcc -static -I/sysroot/usr/include rmap.c -o /work/out/rmap
rmap.c:11:10: fatal error: numa.h: No such file or directory
compilation terminated.
make: *** [../lib.mk:222: /work/out/rmap] Error 1
/usr/bin/ld: cannot find -lcap: No such file or directory
make: *** [../lib.mk:222: /work/out/memfd_secret] Error 1
"""
    got = failed_targets(log)
    assert got == {"rmap": "rmap.c:11:10: fatal error: numa.h: No such file or directory",
                   "memfd_secret": "/usr/bin/ld: cannot find -lcap: No such file or directory"}


def test_selftests_config_from_toml(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text('[selftests]\ntests = ["cow"]\nbudget_s = 30\n[selftests.for_files]\n"mm/ksm.c" = ["ksm_tests -U"]\n'
                 '[arch.arm64]\nselftests = ["rmap"]\n')
    cfg = configmod.load(p)
    assert cfg.selftests.tests == ["cow"] and cfg.selftests.budget_s == 30
    assert cfg.selftests.for_files == {"mm/ksm.c": ["ksm_tests -U"]}
    assert plan.default_names(cfg, "arm64") == ["cow", "rmap"]
    p.write_text('[selftests.for_files]\n"mm/ksm.c" = "ksm_tests"\n')
    with pytest.raises(UsageError, match="for_files"):
        configmod.load(p)


def test_tsc_hint_only_for_x86_under_tcg() -> None:
    info = "processor : 0\ncpu MHz\t\t: 2596.144\n"
    assert qemu.tsc_hint("x86_64", "tcg", info) == "tsc_early_khz=2596144 "
    assert qemu.tsc_hint("x86_64", "kvm", info) == "" and qemu.tsc_hint("arm64", "tcg", info) == ""
    assert qemu.tsc_hint("x86_64", "tcg", "no such line") == ""


def boot_of(text: str) -> vm.Boot:
    return vm.Boot(qemu.QemuRun(30.0, False, 0, text), console.parse(text), ["qemu"], "tcg", Path("/l"))


def test_stage_result_from_a_console_never_passes_on_nothing() -> None:
    cfg = Config()
    built = SelftestsBuild("k", "/d", built=["madv_populate", "cow"], wanted=["madv_populate", "cow", "rmap"],
                           not_built={"rmap": "rmap.c:1: error: x"})
    names = [("madv_populate", "default"), ("cow", "default"), ("rmap", "default")]
    boot = SelftestsBoot(entries("madv_populate", "cow"), "", Path("/d"), 150, 180)
    text = CONSOLE.replace("### NOTRUN 5 budget\n", "")
    base = BaseRun(set(), {"madv_populate": SelftestRun("madv_populate", "pass"), "cow": SelftestRun("cow", "pass")})
    res = selftests_result(cfg, boot_of(text), boot, names, built, base, built)
    assert res.status == "failed" and res.new_failures == ["madv_populate"] and res.not_built == ["rmap"]
    assert [t.name for t in res.tests or []] == ["madv_populate", "cow", "rmap"] and res.seconds == 199.5
    off = dataclasses.replace(cfg, selftests=dataclasses.replace(cfg.selftests, enabled=False))
    assert selftests_result(off, boot_of(text), boot, names, built, base, built).status == "skipped"
    broken = SelftestsBuild("", "", error="selftests for arm64: make headers failed")
    got = selftests_result(cfg, boot_of(text), None, names, broken, None, None)
    assert got.status == "error" and "make headers failed" in got.detail
    nothing = selftests_result(cfg, boot_of(text), None, [("soft-dirty", "default")], built, base, built)
    assert nothing.status == "skipped" and "none of the selftests" in nothing.detail
    no_userspace = selftests_result(cfg, boot_of("[ 1.000000] Kernel panic - not syncing: x\n"), boot, names,
                                    built, base, built)
    assert no_userspace.status == "skipped" and "no userspace" in no_userspace.detail
