"""Console parser: stress verdicts and kernel findings from real-looking QEMU console logs."""

from __future__ import annotations

import pytest

from bot.boot import console

CLEAN = """\
[    0.000000] Linux version 7.2.13 (root@host) (gcc (Debian 14.2.0-19) 14.2.0) #1 SMP
[    1.912345] Run /init as init process
# setup: zram swap 256 MiB on
# stress: scenarios=lazyfree-pageout,swap-pressure
STRESS-BEGIN lazyfree-pageout
STRESS lazyfree-pageout PASS pages=8192 redirtied_ok=2731 kept=0 zeroed=5461 corrupt=0 time=1.2s
STRESS-BEGIN swap-pressure
STRESS swap-pressure PASS mib=96 corrupt_pages=0 pswpout+20000 time=9.0s
RESULT: PASS
[   14.000000] reboot: Restarting system
"""

# Shaped like a real generic-KASAN report (7.x format) for the June 2025 try_to_unmap_one() batch.
KASAN = """\
STRESS-BEGIN pte-table-crossing
[   21.734567] ==================================================================
[   21.735012] BUG: KASAN: use-after-free in folio_pte_batch_flags+0x6c4/0x7a0
[   21.735400] Read of size 8 at addr ffff888006a3d000 by task init/67
[   21.735800]
[   21.736000] CPU: 0 UID: 0 PID: 67 Comm: init Not tainted 7.2.13 #1 PREEMPT(voluntary)
[   21.736500] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.3-debian-1.16.3-2 04/01/2014
[   21.737000] Call Trace:
[   21.737100]  <TASK>
[   21.737200]  dump_stack_lvl+0x53/0x70
[   21.737300]  print_report+0xcb/0x620
[   21.737400]  kasan_report+0xb8/0xf0
[   21.737500]  folio_pte_batch_flags+0x6c4/0x7a0
[   21.737600]  try_to_unmap_one+0x1d4c/0x2a40
[   21.737700]  rmap_walk_anon+0x1f0/0x4d0
[   21.737800]  try_to_unmap+0x11b/0x150
[   21.737900]  shrink_folio_list+0x1a5e/0x2c90
[   21.738000]  </TASK>
[   21.738100]
[   21.738200] The buggy address belongs to the physical page:
[   21.738300] page: refcount:0 mapcount:0 mapping:0000000000000000 index:0x0 pfn:0x6a3d
[   21.738400] flags: 0x100000000000000(node=0|zone=1)
[   21.738500] page dumped because: kasan: bad access detected
[   21.738600]
[   21.738700] Memory state around the buggy address:
[   21.738800]  ffff888006a3cf00: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
[   21.738900] >ffff888006a3d000: ff ff ff ff ff ff ff ff ff ff ff ff ff ff ff ff
[   21.739000]                    ^
[   21.739100] ==================================================================
[   21.739200] Disabling lock debugging due to kernel taint
STRESS pte-table-crossing PASS rounds=8 lost_mlocked=0 time=30.0s
RESULT: PASS
"""

PANIC_AT_BOOT = """\
[    1.500000] Run /bogus as init process
[    1.510000] Kernel panic - not syncing: Requested init /bogus failed (error -2).
[    1.511000] CPU: 1 UID: 0 PID: 1 Comm: swapper/0 Not tainted 7.2.13 #1
[    1.512000] Call Trace:
[    1.513000]  panic+0x33c/0x3a0
[    1.514000] ---[ end Kernel panic - not syncing: Requested init /bogus failed (error -2). ]---
"""

OOPS = """\
STRESS-BEGIN lazyfree-memcg
[    9.100000] BUG: unable to handle page fault for address: ffffc90000a41000
[    9.100100] #PF: supervisor read access in kernel mode
[    9.100200] Oops: Oops: 0000 [#1] SMP
[    9.100300] RIP: 0010:try_to_unmap_one+0x5a1/0xb30
[    9.100400] Kernel panic - not syncing: Fatal exception
"""

WARN_ARM64 = """\
[    5.000000] ------------[ cut here ]------------
[    5.000100] WARNING: CPU: 1 PID: 70 at mm/rmap.c:1234 try_to_unmap_one+0x6d8/0x1020
[    5.000200] Modules linked in:
[    5.000300] pc : try_to_unmap_one+0x6d8/0x1020
[    5.000400] lr : try_to_unmap_one+0x6c0/0x1020
[    5.000500] ---[ end trace 0000000000000000 ]---
[   30.000000] watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [init:70]
[   30.000100] pc : folio_pte_batch+0x40/0x180
[   61.000000] rcu: INFO: rcu_preempt self-detected stall on CPU
"""


def test_clean_log_has_verdicts_and_no_findings() -> None:
    con = console.parse(CLEAN)
    assert con.userspace and con.result == "pass" and con.findings == []
    assert [(s.name, s.verdict) for s in con.scenarios] == [("lazyfree-pageout", "pass"), ("swap-pressure", "pass")]
    assert con.scenarios[0].detail.startswith("pages=8192")


def test_kasan_report_is_one_finding_with_type_and_function() -> None:
    con = console.parse(KASAN)
    (f,) = con.findings
    assert f.kind == "kasan"
    assert f.first_line == "BUG: KASAN: use-after-free in folio_pte_batch_flags+0x6c4/0x7a0"
    assert f.fingerprint == "kasan:use-after-free:folio_pte_batch_flags"
    assert f.scenario == "pte-table-crossing"
    assert "try_to_unmap_one+0x1d4c/0x2a40" in f.excerpt and "Memory state around" in f.excerpt
    assert "STRESS pte-table-crossing" not in f.excerpt  # the excerpt stops at the closing ====


KASAN_ARM64 = """\
STRESS-BEGIN pte-table-crossing
[   41.206349] ==================================================================
[   41.207113] BUG: KASAN: use-after-free in ptep_get+0x14/0x44
[   41.207610] Read of size 8 at addr fff0000001f59000 by task init/39
[   41.209025] Call trace:
[   41.209147]  show_stack+0x14/0x1c (C)
[   41.209322]  kasan_report+0xc0/0xd0
[   41.209463]  __asan_load8+0x24/0x98
[   41.209615]  ptep_get+0x14/0x44
[   41.209741]  try_to_unmap_one+0x61c/0xc60
[   41.209895]  rmap_walk_anon+0x1dc/0x248
[   41.215018] ==================================================================
"""


def test_kasan_in_a_page_table_accessor_is_titled_by_its_caller() -> None:
    (f,) = console.parse(KASAN_ARM64).findings
    assert f.first_line == "BUG: KASAN: use-after-free in ptep_get+0x14/0x44"  # as the kernel said it
    assert f.fingerprint == "kasan:use-after-free:try_to_unmap_one"


def test_panic_at_boot_without_userspace() -> None:
    con = console.parse(PANIC_AT_BOOT)
    assert not con.userspace and con.result is None
    (f,) = con.findings
    assert f.kind == "panic" and f.fingerprint.startswith("panic:Requested init /bogus failed")
    assert "Call Trace" in f.excerpt


def test_oops_is_absorbed_into_the_bug_and_panic_is_separate() -> None:
    con = console.parse(OOPS)
    assert [f.kind for f in con.findings] == ["bug", "panic"]
    assert con.findings[0].fingerprint == "bug:unable to handle page fault for address:try_to_unmap_one"
    assert con.findings[0].scenario == "lazyfree-memcg" and con.running == "lazyfree-memcg"


def test_warning_lockup_and_rcu_stall() -> None:
    kinds = {f.kind: f.fingerprint for f in console.parse(WARN_ARM64).findings}
    assert kinds == {
        "warning": "warning:try_to_unmap_one",
        "soft-lockup": "soft-lockup:folio_pte_batch",
        "rcu-stall": "rcu-stall:?",
    }


@pytest.mark.parametrize("line, fingerprint", [
    ("WARNING: mm/madvise.c:631 at madvise_pageout_page_range+0x2c/0x1a0, CPU#1: init/1",
     "warning:madvise_pageout_page_range"),  # the format since 6.19 (kernel/panic.c __warn)
    ("WARNING: mm/madvise.c:631 at 0xffffffff8112c2e0, CPU#0: init/1", "warning:mm/madvise.c"),  # no kallsyms
    ("WARNING: CPU: 1 PID: 70 at mm/rmap.c:1234 try_to_unmap_one.cold+0x6d8/0x1020", "warning:try_to_unmap_one"),
])
def test_warning_fingerprint_is_the_function(line: str, fingerprint: str) -> None:
    (f,) = console.parse(f"[    5.000100] {line}\n").findings
    assert f.fingerprint == fingerprint


def test_fingerprint_ignores_addresses_and_timestamps() -> None:
    other = KASAN.replace("ffff888006a3d000", "ffff888001111000").replace("21.7", "99.1").replace("init/67", "x/9")
    assert console.parse(other).findings[0].fingerprint == console.parse(KASAN).findings[0].fingerprint


def test_garbage_bytes_do_not_break_the_parser() -> None:
    junk = bytes(range(256)) * 20 + b"\xff\xfe\x00BUG: KASAN: \x1b[0m" + b"\r\r\n" + CLEAN.encode()
    con = console.parse(junk.decode("utf-8", errors="replace"))
    assert con.result == "pass" and len(con.scenarios) == 2
    # a bare "BUG: KASAN:" with no type is still reported, as a plain BUG
    assert [f.kind for f in con.findings] == ["bug"]


def test_half_line_and_empty_log() -> None:
    assert console.parse("").findings == []
    con = console.parse("STRESS-BEGIN swap-pressure\nSTRESS swap-pre")
    assert con.running == "swap-pressure" and con.result is None


def test_kasan_report_without_kallsyms() -> None:
    # seen with the bot's tinyconfig-based KASAN kernel (no CONFIG_KALLSYMS) on the buggy v2
    log = ("==================================================================\n"
           "BUG: KASAN: use-after-free in 0xffffffff8138a063\n"
           "Read of size 8 at addr ffff8880024be000 by task init/28\n"
           "Call Trace:\n <TASK>\n 0xffffffff8157c5e9\n"
           "==================================================================\n")
    (f,) = console.parse(log).findings
    assert f.kind == "kasan" and f.fingerprint == "kasan:use-after-free:?"
