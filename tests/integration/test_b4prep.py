"""`bot b4-check --prep` run by real `b4 prep --check` on a real b4 prep branch: the walk exit a patch changes
and, once the base is built (warm), the compiler warning a patch adds, each on its own patch's line. The kernel
tree is a tiny fake one whose Makefile has the targets the build stage calls (built for real, gcc in bwrap)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import BOT, run_bot
from tests.integration.b4run import git_config_env
from tests.mailgen import BASE_RMAP, rmap_with
from tests.unit.test_build import HELLO, MAKEFILE, MERGE, NEW

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None or shutil.which("gcc") is None,
                                reason="needs bwrap and gcc")
B4 = str(Path(BOT).with_name("b4"))


def git(repo: Path, env: dict[str, str], *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True,
                          timeout=60).stdout.strip()


def commit(repo: Path, env: dict[str, str], files: dict[str, str], subject: str) -> None:
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git(repo, env, "add", "-A")
    git(repo, env, "commit", "-q", "-m", subject)


def prep_check(author: Path, env: dict[str, str], config: Path) -> dict[str, list[str]]:
    """`b4 prep --check`, no cache: per patch subject, the findings b4 printed under it."""
    run = {**env, "GIT_CONFIG_COUNT": str(int(env["GIT_CONFIG_COUNT"]) + 1)}
    n = env["GIT_CONFIG_COUNT"]
    run[f"GIT_CONFIG_KEY_{n}"] = "b4.prep-perpatch-check-cmd"
    run[f"GIT_CONFIG_VALUE_{n}"] = f"{BOT} b4-check --prep --config {config}"
    proc = subprocess.run([B4, "prep", "--check", "--no-cache"], cwd=author, env=run, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out: dict[str, list[str]] = {}
    current = ""
    for line in re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr).splitlines():
        if m := re.match(r"^\S+ [0-9a-f]{12}: (.*)$", line):
            current = m.group(1)
            out[current] = []
        elif line.startswith("  ") and current:
            out[current].append(line.strip())
    return out


def test_b4_prep_check_shows_walk_exits_then_warnings_when_warm(tmp_path: Path) -> None:
    env = git_config_env({}, tmp_path / "home")
    tree = tmp_path / "kernel-tree"
    tree.mkdir()
    git(tree, env, "init", "-q", "-b", "master")
    commit(tree, env, {"Makefile": MAKEFILE, "scripts/kconfig/merge_config.sh": MERGE, "hello.c": HELLO,
                       "other.c": "int g(void) { return 1; }\n", "mm/rmap.c": BASE_RMAP}, "base")
    (tree / "scripts/kconfig/merge_config.sh").chmod(0o755)
    git(tree, env, "commit", "-q", "-a", "-m", "exec")
    author = tmp_path / "author"
    git(tmp_path, env, "clone", "-q", str(tree), str(author))
    subprocess.run([B4, "prep", "-n", "warn", "-f", "master"], cwd=author, env=env, check=True, capture_output=True,
                   timeout=120)
    commit(author, env, {"mm/rmap.c": rmap_with("folio_test_anon(folio) && nr_pages > 1")},
           "mm/rmap: stop the walk after a batch")
    commit(author, env, {"hello.c": NEW}, "hello: count what crossed")
    config = tmp_path / "config.toml"
    config.write_text(f'[paths]\nkernel_tree = "{tree}"\npatchsets = "patchsets"\ncache = "cache"\n'
                      '[tree]\nsource = "git"\nbranches = ["master"]\n[build]\ntimeout = 120.0\n'
                      '[daemon]\narches = ["x86_64"]\n')
    cold = prep_check(author, env, config)
    walk = ("● bot: walk exit changed: try_to_unmap_one(): goto walk_done if (folio_test_anon(folio)) -> "
            "if (folio_test_anon(folio) && nr_pages > 1)")
    # b4 lists a patch without findings with nothing under it ("Success" in its count)
    assert cold == {"mm/rmap: stop the walk after a batch": [walk], "hello: count what crossed": []}
    # `bot check --range` of the branch builds its base once: from then on the build dir is warm
    cover = git(author, env, "log", "--format=%H", "--fixed-strings", "--grep=b4-submit-tracking", "-1")
    built = run_bot("check", "--range", f"{cover}~1..HEAD", "--repo", str(author), "--config", str(config),
                    "--stages", "fetch,apply,build", "--arch", "x86_64", "--json", cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    warm = prep_check(author, env, config)
    assert warm["mm/rmap: stop the walk after a batch"] == [walk]
    (line,) = warm["hello: count what crossed"]
    assert line.startswith("● bot: new warning (x86_64): hello.c:4: unused variable 'crossed'"), line
