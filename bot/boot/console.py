"""Parse a QEMU serial console log: stress verdicts (STRESS/RESULT lines) and kernel findings, each with the
stress scenario or the selftest (selftests/tap.py parses their frames) that was running when it was printed.

Findings are the kernel's own reports: `BUG:` (incl. KASAN), `kernel BUG at`, `WARNING:`, Oops, `Kernel panic`,
soft/hard lockups and RCU stalls. Each gets its first line, a fingerprint (kind + type + function, with no
addresses, numbers or timestamps, so the same problem on the base kernel matches) and an excerpt.
The log may hold anything (garbage bytes, half lines): the parser never raises on content.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from bot.results import Finding, Scenario

EXCERPT_LINES = 40  # lines kept after a finding's first line (a KASAN report is ~30-60)

_TS = re.compile(r"^\[\s*\d+\.\d+\]\s?")  # printk timestamp
_CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # control chars except tab/newline
_STRESS = re.compile(r"^STRESS (\S+) (PASS|FAIL)\b ?(.*)$")
_BEGIN = re.compile(r"^STRESS-BEGIN (\S+)")
_RESULT = re.compile(r"^RESULT: (PASS|FAIL)\b")
_PAGE_SIZE = re.compile(r"^# stress: page_size=(\d+)\b")  # what the guest's sysconf(_SC_PAGESIZE) said
_USERSPACE = re.compile(r"^(# stress:|STRESS-BEGIN |STRESS |RESULT: |### SELFTESTS )|Run /init as init process")
_TEST_BEGIN = re.compile(r"^### BEGIN \d+ attempt=\d+ ::\s*(.*)$")  # the selftests runner's frames
_TEST_END = re.compile(r"^### (END|SELFTESTS done) ")
# kernel function in a report: "RIP: 0010:func+0x12/0x40", "pc : func+0x..", "in func+0x.."
_FUNC = re.compile(r"(?:RIP: \d+:|pc : |\bin |\bat )([A-Za-z_][A-Za-z0-9_.]*)\+0x[0-9a-f]+")

# (kind, pattern) in priority order: the first pattern that matches a line decides its kind.
_KINDS: list[tuple[str, re.Pattern[str]]] = [
    ("panic", re.compile(r"Kernel panic - not syncing: ?(.*)")),
    # without CONFIG_KALLSYMS (tinyconfig) the function is a raw address: "in 0xffffffff8138a063"
    ("kasan", re.compile(r"BUG: KASAN: ([\w-]+) in ([A-Za-z_][\w.]*|0x[0-9a-f]+)")),
    ("soft-lockup", re.compile(r"BUG: soft lockup")),
    ("hard-lockup", re.compile(r"Watchdog detected hard LOCKUP|hard LOCKUP on cpu")),
    ("rcu-stall", re.compile(r"rcu: INFO: \S+ (?:self-)?detected stalls?|rcu_\w+ detected stalls")),
    ("bug", re.compile(r"kernel BUG at ([^!\s]+)!?")),
    ("bug", re.compile(r"BUG: (.*)")),
    ("warning", re.compile(r"WARNING: (?:CPU: \d+ PID: \d+ at )?(.*)")),
    ("oops", re.compile(r"\bOops(?:: |\b)(.*)")),
]
# Page-table accessors and string helpers that do the bad read for their caller: a report "in ptep_get" is
# titled by the caller instead, as syzbot does with its list of frames to skip.
_ACCESSORS = re.compile(r"^(__)?(ptep|pmdp|pudp|p4dp|pgdp)_get(_lockless)?$|^(__)?(mem(cpy|move|set|cmp)|str\w*)$")
_FRAME = re.compile(r"^\s*([A-Za-z_][\w.]*)\+0x[0-9a-f]+/0x[0-9a-f]+")
_END = re.compile(r"^(-+\[ end trace|={20,}|---\[ end Kernel panic)")
# lines inside an open report that are part of it, not new findings
_ABSORBED = ("oops",)


@dataclass
class Console:
    userspace: bool = False  # the stress /init started
    result: str | None = None  # "pass" | "fail" | None (no RESULT line)
    scenarios: list[Scenario] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    running: str | None = None  # the scenario begun last (for a timeout: where it hung)
    selftest: str | None = None  # the selftest running (its command), while its frame is open
    last_line: str = ""
    page_size: int | None = None  # the guest's page size, as the stress init printed it


def clean_lines(text: str) -> list[str]:
    """Console text to lines: CR/LF normalised, control characters dropped, timestamps kept."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return [_CTRL.sub("", line) for line in text.split("\n")]


def _normalise(text: str) -> str:
    """Drop what changes between runs: addresses, numbers, pids, comm names in brackets."""
    text = re.sub(r"0x[0-9a-fA-F]+|\b[0-9a-f]{8,}\b", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\d+", "N", text)
    return re.sub(r"\s+", " ", text).strip(" :,")


def _function(lines: list[str]) -> str:
    for line in lines:
        m = _FUNC.search(line)
        if m:
            return m.group(1).split(".")[0]
    return "?"


def _guilty(func: str, excerpt: list[str]) -> str:
    """func, or if it is an accessor, the first caller in the call trace that is not one."""
    if not _ACCESSORS.match(func):
        return func
    frames = [m.group(1).split(".")[0] for m in map(_FRAME.match, excerpt) if m]
    below = frames[frames.index(func) + 1:] if func in frames else []
    return next((f for f in below if not _ACCESSORS.match(f)), func)


def _fingerprint(kind: str, m: re.Match[str], excerpt: list[str]) -> str:
    if kind == "kasan":
        func = "?" if m.group(2).startswith("0x") else _guilty(m.group(2).split(".")[0], excerpt)
        return f"kasan:{m.group(1)}:{func}"
    func = _function(excerpt)
    if kind == "panic":
        return f"panic:{_normalise(m.group(1))[:60]}"
    if kind == "warning":
        # "mm/rmap.c:1234 at try_to_unmap_one+0x..., CPU#1: init/70" (6.19+) or "... mm/rmap.c:1234 func+0x..."
        where = re.match(r"(\S+):\d+ (?:at )?(0x[0-9a-f]+|[A-Za-z_]\w*)", m.group(1))
        if where:  # the function; without kallsyms only the file names the place
            return f"warning:{where.group(1) if where.group(2).startswith('0x') else where.group(2)}"
        return f"warning:{_normalise(m.group(1))[:60]}:{func}"
    if kind == "bug":
        what = m.group(1)
        return f"bug:{_normalise(what)[:60]}:{func}"
    return f"{kind}:{func}"


def _classify(line: str) -> tuple[str, re.Match[str]] | None:
    for kind, pat in _KINDS:
        m = pat.search(line)
        if m:
            return kind, m
    return None


def parse(text: str) -> Console:
    con = Console()
    lines = clean_lines(text)
    bare = [_TS.sub("", line) for line in lines]
    open_until = -1  # index up to which the last finding's excerpt reaches
    for i, line in enumerate(bare):
        if line.strip():
            con.last_line = line.strip()
        if _USERSPACE.search(line):
            con.userspace = True
        if m := _BEGIN.match(line):
            con.running = m.group(1)
            continue
        if m := _STRESS.match(line):
            con.scenarios.append(Scenario(m.group(1), m.group(2).lower(), m.group(3).strip()))
            con.running = None
            continue
        if m := _RESULT.match(line):
            con.result = m.group(1).lower()
            continue
        if con.page_size is None and (m := _PAGE_SIZE.match(line)):
            con.page_size = int(m.group(1)[:9])
            continue
        if m := _TEST_BEGIN.match(line):
            con.selftest = m.group(1).split("[")[0].strip()  # a printk may have cut into it
            continue
        if _TEST_END.match(line):
            con.selftest = None
            continue
        hit = None if _END.match(line.strip()) else _classify(line)
        if hit is None:
            continue
        kind, match = hit
        if i <= open_until and kind in _ABSORBED:
            continue  # "Oops: ..." right after "BUG: unable to handle ..." is the same report
        end = i + 1
        while end < len(bare) and end <= i + EXCERPT_LINES:
            if _END.match(bare[end].strip()) and end > i + 1:
                end += 1
                break
            end += 1
        excerpt = bare[i:end]
        open_until = end - 1
        con.findings.append(Finding(kind, line.strip(), _fingerprint(kind, match, excerpt),
                                    "\n".join(excerpt).rstrip(), con.running, con.selftest))
    return con
