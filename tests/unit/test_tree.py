"""bot/tree/sources.py without network: source=git against a local bare remote, source=debian from a seeded cache."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

import pygit2
import pytest

from bot import repo
from bot.apt import PrivateApt, deb_version
from bot.config import Config, PathsConfig, TreeConfig
from bot.errors import OperationalError
from bot.tree import sources as kt
from tests.unit.gitrepo import commit, git


@pytest.fixture
def remote(tmp_path: Path) -> str:
    """A bare 'mm.git' with branches mm-new (two commits) and master, reachable by file:// URL."""
    work = tmp_path / "upstream"
    work.mkdir()
    git(work, "init", "-q", "-b", "master")
    commit(work, {"mm/rmap.c": "one\n", "Makefile": "all:\n"}, "base")
    git(work, "checkout", "-q", "-b", "mm-new")
    commit(work, {"mm/rmap.c": "one\ntwo\n"}, "newer")
    git(tmp_path, "clone", "-q", "--bare", str(work), str(tmp_path / "mm.git"))
    return f"file://{tmp_path / 'mm.git'}"


def git_config(tmp_path: Path, remote: str, branches: list[str]) -> Config:
    return Config(
        paths=PathsConfig(kernel_tree=tmp_path / "kernel-tree"),
        tree=TreeConfig(source="git", remote=remote, branches=branches),
    )


def test_git_setup_fetches_shallow_then_is_a_noop(tmp_path, remote):
    cfg = git_config(tmp_path, remote, ["mm-new", "master"])
    first = kt.setup(cfg)
    assert not first.noop and set(first.branches) == {"mm-new", "master"}
    assert pygit2.Repository(str(tmp_path / "kernel-tree")).is_shallow
    assert (tmp_path / "kernel-tree/mm/rmap.c").read_text() == "one\ntwo\n"  # first branch checked out
    branches = repo.base_branches(cfg, pygit2.Repository(str(tmp_path / "kernel-tree")))
    assert [b for b, _ in branches] == ["mm-new", "master"]
    second = kt.setup(cfg)
    assert second.noop and second.branches == first.branches
    assert "nothing to do" in second.summary()


def test_git_setup_missing_branch_is_one_clear_error(tmp_path, remote):
    with pytest.raises(OperationalError, match="couldn't find remote ref|no branch"):
        kt.setup(git_config(tmp_path, remote, ["mm-new", "mm-unstable"]))


def test_unknown_source(tmp_path):
    cfg = Config(paths=PathsConfig(kernel_tree=tmp_path / "t"), tree=TreeConfig(source="svn"))
    with pytest.raises(OperationalError, match="source must be"):
        kt.setup(cfg)


def test_private_apt_never_points_at_system_sources(tmp_path):
    apt = PrivateApt(tmp_path / "apt", "http://deb.debian.org/debian", "unstable")
    opts = " ".join(apt.opts())
    assert f"Dir::Etc::SourceList={tmp_path}/apt/sources.list" in opts
    assert "Dir::Etc::SourceParts=/dev/null" in opts and f"Dir::State={tmp_path}/apt/state" in opts
    assert apt.sources.read_text() == (
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian unstable main\n"
    )


def test_version_helpers():
    assert deb_version(Path("linux-source-7.2_7.2.13-1_all.deb")) == "7.2.13-1"
    assert deb_version(Path("linux-source-7.2_1%3a7.2~rc1-1_all.deb")) == "1:7.2~rc1-1"
    assert kt.branch_for("1:7.2~rc1-1") == "debian/1%7.2_rc1-1"


def fake_linux_source_deb(tmp_path: Path, version: str) -> Path:
    """A tiny linux-source-7.2 .deb shaped like Debian's: usr/src/linux-source-7.2.tar.xz inside."""
    src = tmp_path / "pkgsrc" / "linux-source-7.2"
    (src / "mm").mkdir(parents=True)
    (src / "mm/rmap.c").write_text("int x;\n")
    (src / "Makefile").write_text("all:\n")
    (src / ".gitignore").write_text("*.o\n/*\n")  # like Debian's: ignores everything at the top level
    root = tmp_path / "pkgroot"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "usr/src").mkdir(parents=True)
    subprocess.run(
        ["tar", "-cJf", str(root / "usr/src/linux-source-7.2.tar.xz"), "-C", str(src.parent), "linux-source-7.2"],
        check=True,
        timeout=60,
    )
    (root / "DEBIAN/control").write_text(
        f"Package: linux-source-7.2\nVersion: {version}\nArchitecture: all\nMaintainer: x <x@example.org>\n"
        "Description: fake\n"
    )
    deb = tmp_path / "cache/debs" / f"linux-source-7.2_{version}_all.deb"
    deb.parent.mkdir(parents=True)
    subprocess.run(["dpkg-deb", "-Zxz", "--build", str(root), str(deb)], check=True, timeout=60, capture_output=True)
    return deb


def test_debian_setup_from_cached_deb_forced_add_reproducible_and_idempotent(tmp_path, monkeypatch):
    fake_linux_source_deb(tmp_path, "7.2.13-1")
    cfg = Config(paths=PathsConfig(kernel_tree=tmp_path / "kernel-tree", cache=tmp_path / "cache"))
    first = kt.setup(cfg)  # the cached .deb means no apt at all
    assert list(first.branches) == ["debian/7.2.13-1"]
    assert [a.split()[0] for a in first.actions] == ["extracted", "imported", "checked"]
    tree = tmp_path / "kernel-tree"
    c = pygit2.Repository(str(tree)).branches.local["debian/7.2.13-1"].peel(pygit2.Commit)
    assert sorted(e.name for e in c.tree) == [".gitignore", "Makefile", "mm"]  # ignored files still imported
    assert "7.2.13-1" in c.message and c.author.email == repo.BOT_EMAIL
    assert (tree / "mm/rmap.c").read_text() == "int x;\n"
    assert (tmp_path / "cache/src/7.2.13-1/.complete").exists()
    again = kt.setup(cfg)
    assert again.noop and again.branches == first.branches
    # A second tree from the same cache: no re-extraction, and the very same commit id.
    other = kt.setup(replace(cfg, paths=replace(cfg.paths, kernel_tree=tmp_path / "tree2")))
    assert [a.split()[0] for a in other.actions] == ["imported", "checked"]
    assert other.branches == first.branches


def test_debian_package_gone_names_what_is_available(tmp_path, monkeypatch):
    monkeypatch.setattr(PrivateApt, "update", lambda self: None)
    monkeypatch.setattr(PrivateApt, "candidate", lambda self, p: {"linux-source-7.3": "7.3.1-1"}.get(p))
    monkeypatch.setattr(PrivateApt, "available", lambda self, prefix: ["linux-source-7.3"])
    cfg = Config(paths=PathsConfig(kernel_tree=tmp_path / "kernel-tree", cache=tmp_path / "cache"))
    with pytest.raises(
        OperationalError, match=r"linux-source-7.2 is not in .* available: linux-source-7.3 \(7.3.1-1\)"
    ):
        kt.setup(cfg)
