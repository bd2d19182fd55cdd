"""The dashboard's pages from real pipeline results: tests/fixtures/demo-series/ is the demo series' last full
run (v1 clean, v2 the re-injected out-of-bounds unmap failing pte-table-crossing on both arches, v3 the fix,
v4 a new warning, v5 not applying), copied with scripts/fixture_from_run.py. No browser here (see
tests/integration/test_dashboard_browser.py): what the files say, where they are, what is escaped."""

from __future__ import annotations

import html.parser
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bot import dashboard
from bot.config import Config, LoreConfig, PathsConfig
from bot.dashboard import details, model
from bot.results.links import site_slug

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "demo-series"
DEMO = "20260105-mm-rmap-lazyfree-batched-unmap-cleanups"
HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'


def config_for(tmp_path: Path) -> Config:
    return Config(paths=PathsConfig(patchsets=tmp_path / "patchsets", dashboard=tmp_path / "site"),
                  lore=LoreConfig(url="https://lore.example.org", list="linux-mm"))


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    shutil.copytree(FIXTURE, tmp_path / "patchsets")
    return config_for(tmp_path)


def demo(cfg: Config) -> model.Series:
    series = model.load_series(cfg.paths.patchsets / DEMO)
    assert series is not None
    return series


def labels(series: model.Series) -> dict[int, dict[str, str]]:
    cols = model.columns(series.arches)
    out = {}
    for r in series.revisions:
        cells, verdict = model.row(r, cols)
        named = {f"{c.check} {c.arch}".strip(): x.label for c, x in zip(cols, cells, strict=True)}
        out[r.version] = {"verdict": verdict} | named
    return out


def test_matrix_cells_carry_the_demo_verdicts(cfg: Config) -> None:
    got = labels(demo(cfg))
    assert {v: got[v]["verdict"] for v in got} == {1: "pass", 2: "fail", 3: "pass", 4: "warn", 5: "fail"}
    assert got[2]["stress x86_64"] == got[2]["stress arm64"] == "FAIL 3/4"
    assert got[3]["stress x86_64"] == "PASS 4/4" and got[3]["boot arm64"] == "ok"
    assert got[4]["build x86_64"] == got[4]["build arm64"] == "1 warning"
    assert got[5]["apply"] == "FAIL" and got[5]["build x86_64"] == "skipped" and got[5]["stress arm64"] == "skipped"
    assert got[3]["walkdiff"] == "2 changed" and got[4]["walkdiff"] == "unchanged"
    assert got[3]["selftests x86_64"] == "not run"  # no selftest results in this run: never "ok"


def test_walk_exits_followed_across_revisions(cfg: Config) -> None:
    (f,) = details.walk_functions(demo(cfg).revisions)
    assert f.name == "try_to_unmap_one" and f.unchanged > 0
    # the mlock exit: walk_done until v3 made it walk_abort; v5 (from its hunks only) turned it back
    mlock = next(row for row in f.rows if row.get(3) and row[3].old_head == "goto walk_done")
    assert mlock[3].head == "goto walk_abort" and mlock[3].change == "changed"
    assert mlock[4].change == "unchanged" and mlock[5].old_head == "goto walk_abort" and mlock[5].change == "changed"
    batch = next(row for row in f.rows if row.get(2) and row[2].old_guard)
    assert (batch[2].old_guard, batch[2].guard) == ("if (nr_pages == folio_nr_pages(folio))", "if (nr_pages > 1)")
    assert (batch[3].old_guard, batch[3].guard) == ("if (nr_pages > 1)", "if (nr_pages == folio_nr_pages(folio))")


def test_site_has_pages_logs_scripts_and_links_that_resolve(cfg: Config) -> None:
    built = dashboard.build_site(cfg)
    root = cfg.paths.dashboard
    assert built.index == root / "index.html" and built.series == 1
    page = root / "series" / DEMO / "index.html"
    text = page.read_text()
    assert text.count('<section class="revision"') == 5 and "<svg" in text
    assert (root / "series" / DEMO / "v2" / "boot-x86_64.txt").read_bytes() == (
        FIXTURE / DEMO / "v2" / "logs" / "boot-x86_64.log").read_bytes()
    assert not (root / "series" / DEMO / "v5" / "reproduce-x86_64.sh").exists()  # v5 was never built
    for p in (root / "index.html", page):
        for href in Links.of(p.read_text()):
            if href.startswith("https://lore.example.org/linux-mm/"):
                continue
            path, _, anchor = href.partition("#")
            target = (p.parent / path).resolve() if path else p.resolve()
            assert target.is_file() and root.resolve() in target.parents, (p, href)
            assert not anchor or f'id="{anchor}"' in target.read_text(), (p, href)


def test_reproduce_script_is_valid_shell_with_the_recorded_commands(cfg: Config) -> None:
    dashboard.build_site(cfg)
    script = cfg.paths.dashboard / "series" / DEMO / "v2" / "reproduce-arm64.sh"
    text = script.read_text()
    assert subprocess.run(["sh", "-n", str(script)], timeout=30).returncode == 0
    assert "git checkout --detach 944843b7de7149e77a6de9be4e00a7a6e3a25451" in text
    assert "b4 shazam 20260112100000.4202-1-ada@example.org" in text
    assert "make ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu- O=build-arm64 -j$(nproc) Image" in text
    assert "qemu-system-aarch64 -M virt" in text


def test_hostile_subject_and_message_id_cannot_break_out_of_the_script(tmp_path: Path, cfg: Config) -> None:
    rpath = cfg.paths.patchsets / DEMO / "v3" / "result.json"
    data = json.loads(rpath.read_text())
    data["message_id"] = "x'$(touch PWNED)'`touch PWNED2`@h"
    rpath.write_text(json.dumps(data))
    spath = cfg.paths.patchsets / DEMO / "series.json"
    series = json.loads(spath.read_text())
    series["subject"] = "fine\ntouch PWNED3\r\n# and more"
    spath.write_text(json.dumps(series))
    dashboard.build_site(cfg)
    script = cfg.paths.dashboard / "series" / DEMO / "v3" / "reproduce-x86_64.sh"
    lines = script.read_text().splitlines()
    assert not any(ln.startswith("touch") for ln in lines)
    fake = tmp_path / "bin"
    fake.mkdir()
    for tool in ("git", "b4", "make", "qemu-system-x86_64"):  # stand-ins, so only the script's own words run
        (fake / tool).write_text("#!/bin/sh\necho \"$0 $*\" >> calls\n")
        (fake / tool).chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    subprocess.run(["sh", str(script)], cwd=work, env={"PATH": f"{fake}:/usr/bin:/bin"}, timeout=60, check=True)
    assert sorted(p.name for p in work.iterdir()) == ["calls"]  # nothing else was created
    assert f"b4 shazam {data['message_id']}" in (work / "calls").read_text()


class Links(html.parser.HTMLParser):
    """Every href/src of a page, and every tag and attribute name it has (what a browser would build)."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.tags: list[tuple[str, list[str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, [a for a, _ in attrs]))
        self.links += [v for a, v in attrs if a in ("href", "src") and v]

    @classmethod
    def of(cls, text: str) -> list[str]:
        p = cls()
        p.feed(text)
        return p.links


def test_mail_and_build_strings_are_escaped_and_paths_are_slugs(tmp_path: Path, cfg: Config) -> None:
    sdir = cfg.paths.patchsets / DEMO
    series = json.loads((sdir / "series.json").read_text())
    series |= {"subject": HOSTILE, "author": HOSTILE, "slug": "../../" + HOSTILE}
    (sdir / "series.json").write_text(json.dumps(series))
    r = json.loads((sdir / "v4" / "result.json").read_text())
    r["stages"]["build"]["x86_64"]["new_warnings"][0]["text"] = HOSTILE
    r["stages"]["boot"]["x86_64"]["findings"] = [{"kind": "warning", "first_line": HOSTILE, "fingerprint": "f",
                                                  "excerpt": "WARNING: x\n" + HOSTILE, "preexisting": False}]
    (sdir / "v4" / "result.json").write_text(json.dumps(r))
    dashboard.build_site(cfg)
    slug = site_slug(series["slug"])
    assert re.fullmatch(r"[a-z0-9-]+-[0-9a-f]{8}", slug), slug  # cleaned, with a hash of the original
    files = sorted(p.relative_to(cfg.paths.dashboard) for p in cfg.paths.dashboard.rglob("*") if p.is_file())
    assert all(str(f).startswith(("series/", "index.html", "style.css", "filter.js", "favicon.svg", ".lock"))
               for f in files)
    assert {f.parts[1] for f in files if f.parts[0] == "series"} == {slug}
    pages = {cfg.paths.dashboard / "index.html": [("script", ["src", "defer"])],  # filter.js, nothing else
             cfg.paths.dashboard / "series" / slug / "index.html": []}
    for page, scripts in pages.items():
        text = page.read_text()
        p = Links()
        p.feed(text)
        assert not [t for t in p.tags if t[0] == "img" or any(a.startswith("on") for a in t[1])], page
        assert [t for t in p.tags if t[0] == "script"] == scripts, page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in text
        assert '<meta http-equiv="Content-Security-Policy" content="default-src &#39;none&#39;; script-src ' \
               '&#39;self&#39;;' in text


def test_updating_one_series_rewrites_only_it_and_the_index(tmp_path: Path, cfg: Config) -> None:
    other = cfg.paths.patchsets / "20250601-mm-other-series-0badc0de"
    shutil.copytree(cfg.paths.patchsets / DEMO, other)
    series = json.loads((other / "series.json").read_text()) | {"slug": other.name, "subject": "mm: other"}
    (other / "series.json").write_text(json.dumps(series))
    dashboard.build_site(cfg)
    root = cfg.paths.dashboard
    before = {p: p.stat().st_mtime_ns for p in (root / "series" / DEMO).rglob("*")}
    index = (root / "index.html").read_text()
    assert index.index("mm: other") > index.index("lazyfree batched unmap")  # newest first (both 2026-02-02)...
    r = json.loads((other / "v5" / "result.json").read_text())
    r["date"] = "2026-03-01T10:00:00+00:00"  # ... until the other one gets a newer revision
    (other / "v5" / "result.json").write_text(json.dumps(r))
    page = dashboard.update_series(cfg, other.name)
    assert page == root / "series" / other.name / "index.html"
    assert {p: p.stat().st_mtime_ns for p in (root / "series" / DEMO).rglob("*")} == before
    index = (root / "index.html").read_text()
    assert index.index("mm: other") < index.index("lazyfree batched unmap")
    shutil.rmtree(other)
    dashboard.build_site(cfg)  # a series gone from patchsets/ is gone from the site
    assert not (root / "series" / other.name).exists()


def test_a_missing_series_is_bad_input(cfg: Config) -> None:
    from bot.errors import BadInput

    with pytest.raises(BadInput, match="no series 'nope'"):
        dashboard.update_series(cfg, "nope")


def test_plot_has_a_bar_per_revision_and_arch_that_was_timed(cfg: Config) -> None:
    from bot.dashboard import plot

    chart = plot.times_chart(demo(cfg).revisions, ["x86_64", "arm64"])
    assert [b.label for b in chart.bars] == [f"v{v} {a}" for v in (1, 2, 3, 4) for a in ("x86_64", "arm64")]
    assert chart.bars[0].text == "12 s + 8.8 s" and [s.css for s in chart.bars[0].segments] == ["build", "boot"]


def test_selftest_results_show_when_a_result_has_them(cfg: Config) -> None:
    rpath = cfg.paths.patchsets / DEMO / "v3" / "result.json"
    data = json.loads(rpath.read_text())
    data["stages"]["selftests"] = {
        "x86_64": {"status": "failed", "detail": "mm/ksm: 1 of 12 failed", "new_failures": ["ksm_functional_tests"],
                   "tests": [{"name": "ksm_functional_tests", "result": "fail"}, {"name": "cow", "result": "pass"}]},
        "arm64": {"status": "ok", "detail": "12 passed", "tests": [{"name": "cow", "result": "pass"},
                                                                  {"name": "rmap", "result": "skip"}]}}
    rpath.write_text(json.dumps(data))
    got = labels(demo(cfg))
    assert (got[3]["selftests x86_64"], got[3]["selftests arm64"], got[3]["verdict"]) == (
        "1 new FAIL", "PASS 2/2", "fail")
    dashboard.build_site(cfg)
    assert "mm/ksm: 1 of 12 failed" in (cfg.paths.dashboard / "series" / DEMO / "index.html").read_text()
