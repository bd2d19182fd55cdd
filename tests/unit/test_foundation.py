"""Config, Message-ID parsing, the patch model's checks, and the result contract: no processes."""

from __future__ import annotations

import json
import os
from dataclasses import fields
from pathlib import Path

import pytest

from bot import config as configmod
from bot.errors import UsageError
from bot.fetch.archive import b4_environment, parse_msgid
from bot.fetch.saved import slugify
from bot.patches import diff_problem as check_diff
from bot.results import (
    BuildResult,
    PatchInfo,
    RevisionResult,
    StageResult,
    load_revision,
    save_revision,
    write_json_atomic,
)

REPO = Path(__file__).resolve().parents[2]


def test_shipped_config_is_valid_and_matches_the_defaults() -> None:
    """config.toml documents every section with its defaults: a key changed in one place shows here."""
    cfg = configmod.load(REPO / "config.toml")
    for f in fields(configmod.Config):
        if f.name not in ("paths", "source"):
            assert getattr(cfg, f.name) == f.default_factory(), f.name  # type: ignore[misc]
    text = (REPO / "config.toml").read_text()
    assert all(f"[{f.name}]" in text for f in fields(configmod.Config) if f.name not in ("source", "arch"))
    assert all(f"[arch.{a}]" in text for a in configmod.ARCHES)
    assert cfg.paths.patchsets == REPO / "patchsets"
    assert cfg.paths.templates == REPO / "templates" and cfg.cache == REPO / ".cache"


def test_config_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = tmp_path / "a.toml"
    a.write_text('[lore]\nlist = "from-a"\n')
    b = tmp_path / "b.toml"
    b.write_text('[lore]\nlist = "from-env"\ntimeout = 3\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BOT_CONFIG", str(b))
    assert configmod.load(a).lore.list == "from-a"
    cfg = configmod.load()
    assert cfg.lore.list == "from-env" and cfg.lore.timeout == 3.0
    monkeypatch.delenv("BOT_CONFIG")
    (tmp_path / "config.toml").write_text('[paths]\npatchsets = "ps"\n')
    assert configmod.load().paths.patchsets == tmp_path / "ps"


@pytest.mark.parametrize("text, message", [
    ('[lore]\nurll = "x"\n', "unknown key 'urll' in [lore]"),
    ('[lores]\n', "unknown section [lores]"),
    ('[lore]\ntimeout = "slow"\n', "[lore] timeout must be float"),
    ('[tree]\nbranches = "master"\n', "[tree] branches must be a list of str"),
    ('[lore]\nretries = true\n', "[lore] retries must be int"),
    ('[lore\n', "config:"),
    ('[build]\ncross_compile_arm64 = "x-"\n',
     "[build] cross_compile_arm64 has moved: write it as [arch.arm64] cross_compile"),
    ('[boot]\nqemu_x86_64 = "q"\n', "write it as [arch.x86_64] qemu"),
    ('[daemon]\nbackoff = 2.0\n', "write it as [lore] backoff"),
    ('[arch.riscv]\nqemu = "q"\n', "unknown architecture [arch.riscv]"),
    ('[arch.arm64]\nqemuu = "q"\n', "unknown key 'qemuu' in [arch.arm64]"),
])
def test_config_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(UsageError, match=None) as e:
        configmod.load(path)
    assert message in str(e.value)


def test_arch_tables_override_only_what_they_name(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[arch.arm64]\nboot_timeout = 60\n[paths]\ntemplates = "mine"\n')
    with pytest.raises(UsageError, match=r"\[paths\] templates: no review.txt.j2 in .*/mine"):
        configmod.load(path)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "review.txt.j2").write_text("{{ verdict }}\n")
    cfg = configmod.load(path)
    assert cfg.arch_config("arm64").boot_timeout == 60.0
    assert cfg.arch_config("arm64").cross_compile == "aarch64-linux-gnu-"  # the arm64 default, kept
    assert cfg.arch_config("x86_64") == configmod.DEFAULT_ARCH["x86_64"]
    assert cfg.paths.templates == tmp_path / "mine"
    path.write_text("[lore]\nretries = 0\n")  # no [paths] templates: the shipped ones
    assert configmod.load(path).paths.templates == REPO / "templates"


def test_missing_explicit_config_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        configmod.load(tmp_path / "nope.toml")


@pytest.mark.parametrize("text", [
    "20250214093015.51024-4-21cnbao@gmail.com",
    "<20250214093015.51024-4-21cnbao@gmail.com>",
    " <20250214093015.51024-4-21cnbao@gmail.com> ",
    "id:20250214093015.51024-4-21cnbao@gmail.com",
    "https://lore.kernel.org/linux-mm/20250214093015.51024-4-21cnbao@gmail.com/",
    "https://lore.kernel.org/all/20250214093015.51024-4-21cnbao%40gmail.com/T/#u",
    "https://patch.msgid.link/20250214093015.51024-4-21cnbao@gmail.com",
])
def test_parse_msgid(text: str) -> None:
    assert parse_msgid(text) == "20250214093015.51024-4-21cnbao@gmail.com"


@pytest.mark.parametrize("text", ["", "no-at-sign", "two words@x", "https://lore.kernel.org/linux-mm/"])
def test_parse_msgid_rejects(text: str) -> None:
    with pytest.raises(UsageError):
        parse_msgid(text)


GOOD = """\
diff --git a/mm/rmap.c b/mm/rmap.c
--- a/mm/rmap.c
+++ b/mm/rmap.c
@@ -1,4 +1,4 @@ static int f(void)
 a

-b
+c
 d
\\ No newline at end of file
--\x20
2.39.5
"""


def test_check_diff_accepts_a_whole_patch() -> None:
    assert check_diff(GOOD) is None


def test_check_diff_finds_a_cut_hunk() -> None:
    cut = GOOD[: GOOD.index("+c")]
    assert check_diff(cut) == "hunk at line 4 of the diff for mm/rmap.c ends early (message truncated?)"
    assert "ends early" in (check_diff(GOOD.replace(" d\n", "")) or "")


def test_slugify() -> None:
    assert slugify("mm: Support batched unmap for lazyfree large folios!") == (
        "mm-support-batched-unmap-for-lazyfree-large-folios")
    assert slugify("???") == "series"
    assert len(slugify("x" * 200)) == 60


def test_b4_environment_ignores_the_users_git_config(tmp_path: Path) -> None:
    cfg = configmod.Config(lore=configmod.LoreConfig(url="http://127.0.0.1:8080/", list="linux-mm"),
                           paths=configmod.PathsConfig(cache=tmp_path))
    env = b4_environment(cfg)
    assert env["GIT_CONFIG_GLOBAL"] == os.devnull and env["GIT_CONFIG_NOSYSTEM"] == "1"
    pairs = {env[f"GIT_CONFIG_KEY_{i}"]: env[f"GIT_CONFIG_VALUE_{i}"] for i in range(int(env["GIT_CONFIG_COUNT"]))}
    assert pairs["b4.midmask"] == "http://127.0.0.1:8080/linux-mm/%s"
    assert pairs["b4.searchmask"] == "http://127.0.0.1:8080/linux-mm/?x=m&t=1&q=%s"
    assert env["XDG_CACHE_HOME"] == str(tmp_path)


def test_result_round_trip_and_atomic_write(tmp_path: Path) -> None:
    r = RevisionResult("m@x", 2, "[PATCH v2 0/1] s", "A <a@x>", "2025-01-01T00:00:00+00:00",
                       [PatchInfo(1, "[PATCH v2 1/1] s", "p@x")], ["search:subject+author"])
    r.stages.set("build", {"arm64": BuildResult("ok", "built", seconds=3.5)})
    path = tmp_path / "v2" / "result.json"
    save_revision(path, r)
    data = json.loads(path.read_text())
    assert data["schema_version"] == 2
    assert data["stages"]["build"]["arm64"] == {"status": "ok", "detail": "built", "seconds": 3.5}
    assert data["stages"]["fetch"] == {"status": "not_run", "detail": "not run"}
    back = load_revision(path)
    assert back == r
    assert back is not None and back.stages.build["arm64"].seconds == 3.5
    assert back.stages.fetch.status == "not_run" and not back.stages.fetch.ran
    assert sorted(p.name for p in path.parent.iterdir()) == ["result.json"]  # no temp file left
    with pytest.raises(TypeError):
        write_json_atomic(path, {"x": object()})
    assert json.loads(path.read_text())["version"] == 2  # the failed write left the old file whole
    assert sorted(p.name for p in path.parent.iterdir()) == ["result.json"]


def test_schema_1_result_still_loads(tmp_path: Path) -> None:
    """A result.json written before schema_version: "stage not run" becomes not_run, unknown keys are kept."""
    old = {"message_id": "m@x", "version": 1, "subject": "s", "author": "a", "date": "d", "patches": [],
           "found_by": ["requested"], "base": {"commit": "abc", "source": "base-commit"},
           "stages": {"fetch": {"status": "ok", "detail": "1 patch", "cover": True, "later_key": 1},
                      "apply": {"status": "skipped", "detail": "stage not run"},
                      "build": {"x86_64": {"status": "ok", "detail": "b", "new_warnings": [
                          {"file": "mm/a.c", "line": 3, "where": "mm/a.c:3", "kind": "warning", "message": "m",
                           "text": "t", "patch": {"index": 1, "subject": "s", "commit": "c"}}]}},
                      "walkdiff": {"status": "skipped", "detail": "touches no walk function (f)"}}}
    path = tmp_path / "result.json"
    path.write_text(json.dumps(old))
    r = load_revision(path)
    assert r is not None
    assert r.stages.apply.status == "not_run"
    assert r.stages.walkdiff.status == "skipped"  # a real skip stays a skip
    (w,) = r.stages.build["x86_64"].new_warnings or []
    assert w.patch is not None and w.patch.index == 1 and w.line == 3
    assert r.stages.fetch.cover is True and r.stages.fetch.extra == {"later_key": 1}
    assert r.to_json()["stages"]["fetch"]["later_key"] == 1  # written back as it came


def test_stage_status_is_checked() -> None:
    with pytest.raises(ValueError):
        StageResult("passed", "x")  # type: ignore[arg-type]
