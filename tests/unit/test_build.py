"""The build stage on a tiny fake kernel tree: a Makefile with the targets bot/build/ calls, built for real
(gcc / aarch64-linux-gnu-gcc) in the sandbox. Covers new-warning detection and attribution, failures,
timeouts, a missing cross compiler and a missing ccache."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from bot import build
from bot.build import kconfig
from bot.build.builder import Builder
from bot.config import DEFAULT_ARCH, BuildConfig, Config, PathsConfig
from bot.results import AppliedCommit, ApplyResult, PatchInfo, RevisionResult
from tests.stages import run_stage

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None or shutil.which("gcc") is None,
                                reason="needs bwrap and gcc")

MAKEFILE = """\
O ?= .
IMG_x86_64 := arch/x86/boot/bzImage
IMG_arm64 := arch/arm64/boot/Image
tinyconfig:
\tmkdir -p $(O) && echo CONFIG_TINY=y > $(O)/.config
olddefconfig:
\t@echo olddefconfig
clean:
\trm -f $(O)/*.o
bzImage Image: $(O)/hello.o $(O)/other.o
\t@if [ -f hang ]; then sleep 600; fi
\tmkdir -p $(O)/$(dir $(IMG_$(ARCH)))
\tcat $^ > $(O)/$(IMG_$(ARCH))
$(O)/%.o: %.c
\t$(CC) -Wall -c $(CURDIR)/$< -o $@
"""
MERGE = """#!/bin/sh
# fake merge_config.sh -m -O DIR BASE FRAGMENTS...: concatenate; its temp file in the cwd, as the real one
shift; shift; dir=$1; shift; base=$1; shift
tmp=$(mktemp ./.tmp.config.XXXXXXXXXX) || exit 1
cat "$base" "$@" > "$tmp" && mv "$tmp" "$dir/.config"
"""
HELLO = "int f(void)\n{\n\tint old;\n\treturn 0;\n}\n"


def git(tree: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "GIT_CONFIG_GLOBAL": os.devnull}
    return subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True, check=True, env=env,
                          timeout=60).stdout.strip()


def commit(tree: Path, files: dict[str, str], msg: str) -> str:
    for name, text in files.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text(text)
    git(tree, "add", "-A")
    git(tree, "commit", "-q", "-m", msg)
    return git(tree, "rev-parse", "HEAD")


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A fake tree with a base commit; the cache (build dirs, ccache, base warnings) under tmp_path."""
    tree = tmp_path / "tree"
    tree.mkdir()
    git(tree, "init", "-q", "-b", "base")
    base = commit(tree, {"Makefile": MAKEFILE, "scripts/kconfig/merge_config.sh": MERGE, "hello.c": HELLO,
                         "other.c": "int g(void) { return 1; }\n"}, "base")
    (tree / "scripts/kconfig/merge_config.sh").chmod(0o755)
    git(tree, "commit", "-q", "-a", "-m", "exec")
    base = git(tree, "rev-parse", "HEAD")
    return tree, base, tmp_path


def series(tree: Path, base: str, patches: list[dict[str, str]]) -> tuple[str, list[AppliedCommit]]:
    git(tree, "checkout", "-q", "-b", "review/t/v1", base)
    commits = [AppliedCommit(i, f"patch {i}", commit(tree, p, f"patch {i}")) for i, p in enumerate(patches, 1)]
    git(tree, "checkout", "-q", "base")
    return "review/t/v1", commits


def revision(branch: str, base: str, commits: list[AppliedCommit]) -> RevisionResult:
    r = RevisionResult("m@x", 1, "s", "a", "d", [PatchInfo(c.index, c.subject, "") for c in commits], [])
    r.base.commit = base
    r.stages.apply = ApplyResult("ok", "applied", branch=branch, commits=commits)
    return r


def cfg(tree: Path, tmp: Path, arm64_cross: str | None = None, **build_kw) -> Config:
    arches = dict(DEFAULT_ARCH)
    if arm64_cross is not None:
        arches["arm64"] = replace(arches["arm64"], cross_compile=arm64_cross)
    return Config(paths=PathsConfig(kernel_tree=tree, patchsets=tmp / "patchsets", cache=tmp / "cache"),
                  build=BuildConfig(**{"timeout": 120.0, **build_kw}), arch=arches)


ARCHES = ["x86_64", "arm64"] if shutil.which("aarch64-linux-gnu-gcc") else ["x86_64"]
# A line added above the base's warning moves it (not new); patch 2 adds a new one.
MOVED = "/* a comment */\n" + HELLO
NEW = "int f(void)\n{\n\tint old;\n\tint crossed;\n\treturn 0;\n}\n"


def test_new_warning_attributed_to_its_patch(env):
    tree, base, tmp = env
    branch, commits = series(tree, base, [{"hello.c": MOVED}, {"hello.c": "/* a comment */\n" + NEW}])
    r = revision(branch, base, commits)
    config = cfg(tree, tmp)
    run_stage(build.run_stage, config, r, ARCHES)
    for arch in ARCHES:
        st = r.stages.build[arch]
        assert st.status == "ok", st
        new = st.new_warnings or []
        assert [(w.file, w.line, w.text) for w in new] == [("hello.c", 5, "int crossed;")], new
        assert "unused variable 'crossed'" in new[0].message
        assert new[0].patch is not None and new[0].patch.index == 2
        assert st.image and st.config and st.base_image
        assert Path(st.image).is_file() and Path(st.config).is_file() and Path(st.base_image).is_file()
        assert st.compiler and st.fragments and st.fragments[0] == "common.config"
        # counted although the series' ccache is read-only
        assert st.ccache is not None and st.ccache["misses"] >= 1, st.ccache
        assert (tmp / "patchsets/t/v1/logs" / f"build-{arch}.log").is_file()
    assert git(tree, "rev-parse", "--abbrev-ref", "HEAD") == branch  # back on the revision
    # The base's warnings are cached: a second revision does not rebuild the base.
    cached = list((tmp / "cache/build/warnings").glob("*.json"))
    assert len(cached) == len(ARCHES)


def test_only_moved_warning_is_not_new(env):
    tree, base, tmp = env
    branch, commits = series(tree, base, [{"hello.c": MOVED}])
    r = revision(branch, base, commits)
    run_stage(build.run_stage, cfg(tree, tmp), r, ["x86_64"])
    st = r.stages.build["x86_64"]
    assert st.status == "ok" and st.new_warnings == [], st


def test_broken_revision_reports_error_and_other_arch_builds(env):
    if len(ARCHES) < 2:
        pytest.skip("needs aarch64-linux-gnu-gcc")
    tree, base, tmp = env
    branch, commits = series(tree, base, [{"hello.c": "int f(void)\n{\n\treturn 0\n}\n"}])
    # Patch 2 makes arm64 compile a good file instead, so only x86_64 breaks.
    mk = MAKEFILE.replace("\t$(CC) -Wall -c $(CURDIR)/$< -o $@\n",
                          "\tif [ $(ARCH) = x86_64 ]; then $(CC) -c $(CURDIR)/$< -o $@; "
                          "else echo 'int f(void){return 0;}' | $(CC) -x c -c - -o $@; fi\n")
    git(tree, "checkout", "-q", branch)
    commit(tree, {"Makefile": mk}, "arch-specific")
    commits.append(AppliedCommit(2, "patch 2", git(tree, "rev-parse", "HEAD")))
    git(tree, "checkout", "-q", "base")
    r = revision(branch, base, commits)
    run_stage(build.run_stage, cfg(tree, tmp), r, ARCHES)
    x86 = r.stages.build["x86_64"]
    assert x86.status == "failed", x86
    assert x86.detail.startswith("hello.c:3: error: expected ';'"), x86.detail
    assert x86.error is not None and (x86.error.file, x86.error.line) == ("hello.c", 3)
    assert 0 < len(x86.log_tail or []) <= 50
    assert r.stages.build["arm64"].status == "ok"


def test_hanging_build_times_out(env):
    tree, base, tmp = env
    branch, commits = series(tree, base, [{"hang": "x\n"}])
    r = revision(branch, base, commits)
    run_stage(build.run_stage, cfg(tree, tmp, timeout=5.0), r, ["x86_64"])
    st = r.stages.build["x86_64"]
    assert st.status == "error" and "timeout" in st.detail, st
    assert "killed: timeout" in (tmp / "patchsets/t/v1/logs/build-x86_64.log").read_text()


def test_missing_cross_compiler_names_the_package(env):
    tree, base, tmp = env
    branch, commits = series(tree, base, [{"hello.c": MOVED}])
    r = revision(branch, base, commits)
    run_stage(build.run_stage, cfg(tree, tmp, arm64_cross="no-such-cross-"), r, ["x86_64", "arm64"])
    arm = r.stages.build["arm64"]
    assert arm.status == "error"
    assert "no-such-cross-gcc" in arm.detail and "gcc-aarch64-linux-gnu" in arm.detail
    assert r.stages.build["x86_64"].status == "ok"


def test_without_ccache_still_builds_with_a_note(env):
    tree, base, tmp = env
    branch, commits = series(tree, base, [{"hello.c": NEW}])
    r = revision(branch, base, commits)
    run_stage(build.run_stage, cfg(tree, tmp, ccache="no-such-ccache"), r, ["x86_64"])
    st = r.stages.build["x86_64"]
    assert st.status == "ok", st
    assert any("ccache" in n and "without" in n for n in st.notes or [])
    assert len(st.new_warnings or []) == 1
    assert "CC=gcc" in (tmp / "patchsets/t/v1/logs/build-x86_64.log").read_text()


def test_apply_not_ok_skips(env):
    tree, base, tmp = env
    r = revision("x", base, [])
    r.stages.apply = ApplyResult("failed", "patch 1 does not apply")
    run_stage(build.run_stage, cfg(tree, tmp), r, ["x86_64", "arm64"])
    for arch in ("x86_64", "arm64"):
        assert r.stages.build[arch].status == "skipped"
        assert "apply failed" in r.stages.build[arch].detail


def test_dropped_option_is_an_error(env, monkeypatch):
    tree, base, tmp = env
    frag = tmp / "frags"
    frag.mkdir()
    for f in kconfig.KCONFIG_DIR.glob("*.config"):
        shutil.copy(f, frag / f.name)
    monkeypatch.setattr(kconfig, "KCONFIG_DIR", frag)
    mk = MAKEFILE.replace("olddefconfig:\n\t@echo olddefconfig\n",
                          "olddefconfig:\n\tsed -i /CONFIG_ZRAM=/d $(O)/.config\n")
    git(tree, "checkout", "-q", "base")
    base = commit(tree, {"Makefile": mk}, "drop zram")
    branch, commits = series(tree, base, [{"hello.c": MOVED}])
    r = revision(branch, base, commits)
    run_stage(build.run_stage, cfg(tree, tmp), r, ["x86_64"])
    st = r.stages.build["x86_64"]
    assert st.status == "error" and "CONFIG_ZRAM=y" in st.detail, st


def test_series_cannot_write_the_tree_the_ccache_or_the_shared_build_dir(env):
    """A patch's Makefile runs with only its own copy of the build dir writable: planting a file in the source
    tree (e.g. a .git hook), the shared ccache or the build dir that later builds start from fails or dies
    with the copy; the base build dir and the tree stay as they were."""
    tree, base, tmp = env
    hostile = MAKEFILE.replace("\t@if [ -f hang ]", "\t-touch /src/.git/hooks/post-checkout /ccache/planted\n"
                               "\ttouch $(O)/planted\n\t@if [ -f hang ]")
    branch, commits = series(tree, base, [{"Makefile": hostile}])
    r = revision(branch, base, commits)
    run_stage(build.run_stage, cfg(tree, tmp), r, ["x86_64"])
    st = r.stages.build["x86_64"]
    assert st.log and st.build_dir
    log = Path(st.log).read_text()
    assert st.status == "ok", st
    assert "touch: cannot touch '/src/.git/hooks/post-checkout': Read-only file system" in log, log
    assert "touch: cannot touch '/ccache/planted': Read-only file system" in log, log
    assert not (tree / ".git/hooks/post-checkout").exists() and not (tmp / "cache/ccache/planted").exists()
    series_dir = Path(st.build_dir)
    trusted = Builder(cfg(tree, tmp), "x86_64", tree).dir
    assert series_dir != trusted and (series_dir / "planted").exists() and not (trusted / "planted").exists()
