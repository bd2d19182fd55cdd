"""tools/testing/selftests/mm built for the VMs: statically, per arch, from one tree's own sources (the
revision's, or the base's), against that tree's uapi headers (`make headers`), in the build sandbox.

Cached under <cache>/selftests/<arch>-<key> (a build variant's are its base arch's: the same binaries), the
key being the git ids of every path the build reads (the
selftests, tools/include, the uapi headers), the compiler and the libraries: an unchanged selftests dir costs
nothing, and a series that does not touch them shares the base's binaries. A binary that does not build is
recorded with its first error (not hidden); libnuma, libcap and liburing (five tests need the first two) come
from Debian's -dev packages for the arch, downloaded into a private sysroot (sysroot.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
from pathlib import Path

from bot import proc, repo
from bot.arches import ARCHES
from bot.build.sysroot import LIBRARIES, ensure_sysroot
from bot.config import Config
from bot.errors import OperationalError
from bot.results import SelftestsBuild

log = logging.getLogger(__name__)

FORMAT = 2  # bump when what is built, or how, changes
MM = "tools/testing/selftests/mm"
# What the mm selftests' Makefile reads (pidfd.h includes ../clone3/; x86's check_cc.sh the trivial programs).
STAGED = (MM, "tools/testing/selftests/lib.mk", "tools/testing/selftests/kselftest.h",
          "tools/testing/selftests/kselftest_harness.h", "tools/testing/selftests/kselftest",
          "tools/testing/selftests/clone3", "tools/testing/selftests/pidfd", "tools/testing/selftests/x86",
          "tools/include", "tools/arch", "mm/gup_test.h", "lib/test_hmm_uapi.h", "include/vdso")
# What `make headers` reads: the uapi trees, the syscall tables behind the generated asm/unistd*.h, its scripts.
UAPI = ("include/uapi", "arch/{srcarch}/include/uapi", "arch/{srcarch}/entry/syscalls", "scripts/syscall.tbl",
        "scripts/headers_install.sh", "scripts/unifdef.c", "scripts/Makefile.asm-headers", "Makefile")
SRC, WORK, SYSROOT = "/src", "/work", "/sysroot"
PRINT_MK = "print-wanted:\n\t@echo WANTED: $(notdir $(TEST_GEN_PROGS) $(TEST_GEN_FILES))\n"
_FAILED_TARGET = re.compile(r"make(?:\[\d+\])?: \*\*\* \[[^\]]*?(?:/work/out/)([\w.+-]+)\] Error")
_ERROR = re.compile(r"\berror\b|cannot find -l|undefined reference", re.I)


def cache_dir(config: Config, arch: str, key: str) -> Path:
    return config.cache / "selftests" / f"{ARCHES[arch].base}-{key}"


def source_key(config: Config, arch: str, ref: str, compiler: str, sysroot: str) -> str:
    """What the binaries depend on: the sources' git ids at ref, the compiler, the libraries, FORMAT (not the
    kernel config: a build variant's key is its base arch's)."""
    a = ARCHES[ARCHES[arch].base]
    paths = [*STAGED, *(p.format(srcarch=a.srcarch) for p in UAPI)]
    ids = repo.tree_ids(Path(config.paths.kernel_tree), ref, paths)
    return hashlib.sha256(json.dumps([FORMAT, a.name, ids, compiler, sysroot]).encode()).hexdigest()[:16]


def build(config: Config, arch: str, ref: str, compiler: str, log_path: Path) -> SelftestsBuild:
    """The selftests of the tree at `ref`, from the cache or built now (checking `ref` out when it is not:
    `make headers` reads the work tree). Never raises for the tests' own build errors; OperationalError when
    the headers cannot be made. A build variant gets its base arch's (built and cached under the base)."""
    arch = ARCHES[arch].base
    sysroot, notes = ensure_sysroot(config, arch)
    stamp = (sysroot / ".complete").read_text() if sysroot else "none"
    key = source_key(config, arch, ref, compiler, stamp)
    out = cache_dir(config, arch, key)
    if (out / "build.json").is_file():
        cached = SelftestsBuild.from_json(json.loads((out / "build.json").read_text()))
        cached.seconds = 0.0
        return cached
    tree = Path(config.paths.kernel_tree)
    head = repo.git(tree, "rev-parse", "HEAD").stdout.strip()
    if head != repo.git(tree, "rev-parse", f"{ref}^{{commit}}").stdout.strip():
        repo.switch(config, ref)
    t0 = time.monotonic()
    work = out.with_name(f"{out.name}.tmp{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    (work / "out").mkdir(parents=True)
    repo.export_paths(tree, ref, list(STAGED), work / "stage")
    (work / "print.mk").write_text(PRINT_MK)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text("")
    res = SelftestsBuild(key, str(out / "out"), log=str(log_path), notes=notes)
    try:
        res.wanted, res.built, res.not_built = _make(config, arch, work, sysroot, log_path)
    finally:
        res.seconds = round(time.monotonic() - t0, 1)
    shutil.rmtree(work / "stage", ignore_errors=True)
    shutil.rmtree(work / "hdr", ignore_errors=True)
    shutil.copy2(log_path, work / "build.log")
    res.log = str(out / "build.log")
    (work / "build.json").write_text(json.dumps(res.to_json(), indent=1) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    os.replace(work, out)
    res.log = str(log_path)
    return res


def _box(config: Config, work: Path, sysroot: Path | None) -> proc.Sandbox:
    binds = [proc.Bind(Path(config.paths.kernel_tree), SRC), proc.Bind(work, WORK, writable=True)]
    if sysroot is not None:
        binds.append(proc.Bind(sysroot, SYSROOT))
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LC_ALL": "C"}
    return proc.Sandbox(binds=binds, env=env, cwd=WORK, memory_max=config.build.memory_max_mib << 20)


def _make(config: Config, arch: str, work: Path, sysroot: Path | None, log_path: Path
          ) -> tuple[list[str], list[str], dict[str, str]]:
    """headers, then the selftests' own Makefile with -k; (wanted, built, not built with the reason)."""
    a, cross = ARCHES[arch], config.arch_config(arch).cross_compile
    box = _box(config, work, sysroot)
    timeout = config.build.timeout
    headers = proc.run(["make", "-s", "-C", SRC, f"O={WORK}/hdr", f"ARCH={a.karch}", "headers"],
                       timeout=timeout, log=log_path, sandbox=box)
    if not headers.ok:
        why = "timeout" if headers.timed_out else f"make headers failed (see {log_path})"
        raise OperationalError(f"selftests for {arch}: {why}")
    inc = f" -I{SYSROOT}/usr/include" if sysroot else ""
    lib = f" -L{SYSROOT}/usr/lib/{a.triplet}" if sysroot else ""
    # -static in EXTRA_CFLAGS too: x86's protection_keys_* rules link with CFLAGS but not LDFLAGS; -s strips
    args = [f"ARCH={arch}", f"CROSS_COMPILE={cross}", f"CC={cross}gcc", f"EXTRA_CFLAGS=-static{inc}",
            f"LDFLAGS=-static -s{lib}", f"KHDR_INCLUDES=-isystem {WORK}/hdr/usr/include", f"OUTPUT={WORK}/out"]
    mm = f"{WORK}/stage/{MM}"
    listed = proc.run(["make", "-s", "-C", mm, "-f", "Makefile", "-f", f"{WORK}/print.mk", *args, "print-wanted"],
                      timeout=120, sandbox=box)
    wanted = next((ln.split(":", 1)[1].split() for ln in listed.stdout.splitlines() if ln.startswith("WANTED:")), [])
    jobs = config.build.jobs or os.cpu_count() or 1
    run = proc.run(["make", "-C", mm, "-k", f"-j{jobs}", *args], timeout=timeout, log=log_path, sandbox=box)
    built = sorted(p.name for p in (work / "out").iterdir() if p.is_file() and os.access(p, os.X_OK))
    text = log_path.read_text(errors="replace")
    reasons = failed_targets(text)
    why = "timeout" if run.timed_out else "not built"
    return wanted, built, {n: reasons.get(n, why) for n in wanted if n not in built}


def failed_targets(text: str) -> dict[str, str]:
    """binary -> the error that stopped it, from a `make -k` log: each `*** [.../out/<binary>] Error` line
    with the last compiler or linker error before it."""
    lines = text.splitlines()
    out: dict[str, str] = {}
    for i, line in enumerate(lines):
        m = _FAILED_TARGET.search(line)
        if not m or m.group(1) in out:
            continue
        before = [ln.strip() for ln in lines[max(0, i - 40):i] if _ERROR.search(ln) and "***" not in ln]
        mine = [ln for ln in before if m.group(1) in ln]
        out[m.group(1)] = (mine or before or [line.strip()])[-1][:300]
    return out


__all__ = ["LIBRARIES", "build", "cache_dir", "failed_targets", "source_key"]
