"""The dashboard in a real browser: Debian's headless Chromium (Selenium, Debian's chromedriver), the pages
written by the real `bot dashboard` from real pipeline results — tests/fixtures/demo-series/ is the demo
series' last full run (v1 clean, v2 failing pte-table-crossing on both arches, v3 the fix, v4 a new
warning, v5 not applying), copied with scripts/fixture_from_run.py — loaded from file:// and from
`bot dashboard --serve`. And a hostile series posted to the real archive: its markup stays text.

The series page's screenshot is kept in $BOT_TEST_ARTIFACTS (default .cache/test-artifacts/).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.demo import browser
from bot.demo.localinbox import LocalInbox
from bot.demo.writer import Patch, Revision, set_headers
from tests.conftest import BOT, bot_env, run_bot, write_config
from tests.mailgen import rmap_with, toy_writer

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "demo-series"
DEMO = "20260105-mm-rmap-lazyfree-batched-unmap-cleanups"
OTHER = "20251201-mm-other-series-0badc0de"
ARTIFACTS = Path(os.environ.get("BOT_TEST_ARTIFACTS", REPO / ".cache" / "test-artifacts"))
HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    why = browser.missing()
    if why:
        pytest.fail(f"the dashboard's browser tests need Chromium: {why}")
    with browser.chromium(tmp_path_factory.mktemp("chromium-profile")) as driver:
        yield driver


def site_from_fixture(tmp_path: Path) -> Path:
    """patchsets/ with the demo series and a second one (the demo's v1..v3 only, newest passing), then the
    real `bot dashboard`; returns the config."""
    shutil.copytree(FIXTURE, tmp_path / "patchsets")
    other = tmp_path / "patchsets" / OTHER
    shutil.copytree(tmp_path / "patchsets" / DEMO, other)
    series = json.loads((other / "series.json").read_text())
    series |= {"slug": OTHER, "subject": "[PATCH v3 0/2] mm: another series", "author": "Bob <bob@example.org>",
               "revisions": series["revisions"][:3]}
    (other / "series.json").write_text(json.dumps(series))
    config = write_config(tmp_path / "config.toml", "https://lore.example.org")
    proc = run_bot("dashboard", "--config", str(config), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{tmp_path.resolve()}/dashboard/index.html (2 series, ")
    return config


def errors(driver: Any) -> list[dict[str, Any]]:
    """Console errors since the last call (CSP violations, failed loads, script errors)."""
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def visible_series(driver: Any) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('tbody.series')).filter(g => !g.hidden)"
        ".map(g => g.querySelector('th a').textContent)")


def matrix(driver: Any) -> dict[str, list[str]]:
    """The series page's matrix: row id -> the cells' text."""
    rows = driver.execute_script(
        "return Array.from(document.querySelectorAll('#matrix tbody tr')).map(tr =>"
        " [tr.id, Array.from(tr.querySelectorAll('td')).map(td => td.textContent.trim())])")
    return dict(rows)  # in the page's order


def links(driver: Any) -> list[str]:
    return driver.execute_script("return Array.from(document.querySelectorAll('[href],[src]'))"
                                 ".map(e => e.href || e.src)")


def set_filter(driver: Any, verdict: str, text: str) -> list[str]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element(By.ID, "filter-verdict")).select_by_value(verdict)
    box = driver.find_element(By.ID, "filter-text")
    box.clear()
    if text:
        box.send_keys(text)
    return visible_series(driver)


def test_every_page_loads_clean_with_the_demo_verdicts_and_every_link_resolves(tmp_path: Path, chromium) -> None:
    config = site_from_fixture(tmp_path)
    root = config.parent / "dashboard"
    chromium.get((root / "index.html").as_uri())
    assert errors(chromium) == []
    assert visible_series(chromium) == ["[PATCH v3 0/3] mm/rmap: lazyfree batched unmap cleanups",
                                        "[PATCH v3 0/2] mm: another series"]  # newest first
    pages, seen = [root / "index.html"], set()
    while pages:
        page = pages.pop()
        if page in seen:
            continue
        seen.add(page)
        chromium.get(page.as_uri())
        assert errors(chromium) == [], page
        for url in links(chromium):
            if url.startswith("https://lore.example.org/linux-mm/"):
                continue  # the messages on the archive
            parts = urllib.parse.urlsplit(url)
            target = Path(urllib.parse.unquote(parts.path))
            assert parts.scheme == "file" and target.is_file(), (page, url)
            assert root.resolve() in target.resolve().parents, (page, url)
            if parts.fragment:
                assert f'id="{parts.fragment}"' in target.read_text(), (page, url)
            if target.suffix == ".html":
                pages.append(target)
    assert {p.relative_to(root).as_posix() for p in seen} == {
        "index.html", f"series/{DEMO}/index.html", f"series/{OTHER}/index.html"}

    chromium.get((root / "series" / DEMO / "index.html").as_uri())
    cells = matrix(chromium)
    # verdict, apply, build x86_64/arm64, boot x2, stress x2, selftests x2, walk exits
    assert cells["matrix-v2"] == ["fail", "applied", "ok", "ok", "ok", "ok", "FAIL 3/4", "FAIL 3/4",
                                  "not run", "not run", "1 changed"]
    assert cells["matrix-v3"][:8] == ["pass", "applied", "ok", "ok", "ok", "ok", "PASS 4/4", "PASS 4/4"]
    assert cells["matrix-v4"][:4] == ["warn", "applied", "1 warning", "1 warning"]
    assert cells["matrix-v5"][:3] == ["fail", "FAIL", "skipped"]
    assert list(cells) == ["matrix-v5", "matrix-v4", "matrix-v3", "matrix-v2", "matrix-v1"]
    colours = chromium.execute_script(
        "return ['matrix-v2', 'matrix-v3'].map(id => getComputedStyle("
        "document.querySelectorAll('#' + id + ' td')[6]).backgroundColor)")
    assert colours[0] != colours[1]  # FAIL and PASS look different, besides saying so
    text = chromium.find_element("tag name", "body").text
    assert "unused variable 'crossed' [-Wunused-variable]" in text and "int crossed;" in text
    assert "mlocked pages past a page-table boundary read back as zeroes" in text
    shot = browser.full_page_png(chromium, (root / "series" / DEMO / "index.html").as_uri(),
                                 ARTIFACTS / "dashboard-series.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
    assert errors(chromium) == []


def test_the_filter_by_verdict_and_by_text(tmp_path: Path, chromium) -> None:
    config = site_from_fixture(tmp_path)
    chromium.get((config.parent / "dashboard" / "index.html").as_uri())
    demo, other = "[PATCH v3 0/3] mm/rmap: lazyfree batched unmap cleanups", "[PATCH v3 0/2] mm: another series"
    assert set_filter(chromium, "fail", "") == [demo]  # its newest revision, v5, does not apply
    assert set_filter(chromium, "pass", "") == [other]  # its newest is v3
    assert set_filter(chromium, "", "BOB@") == [other]  # the author, any case
    assert set_filter(chromium, "", "20260202100000.4205-1") == [demo]  # a Message-ID of v5
    assert set_filter(chromium, "warn", "") == []
    assert chromium.find_element("id", "filter-count").text == "0 of 2 series"
    assert set_filter(chromium, "", "") == [demo, other]
    assert errors(chromium) == []


def test_served_on_localhost(tmp_path: Path, chromium) -> None:
    config = site_from_fixture(tmp_path)
    proc = subprocess.Popen([BOT, "dashboard", "--serve", "--port", "0", "--config", str(config)],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=bot_env())
    try:
        url = ""
        deadline = time.monotonic() + 60
        while not url and time.monotonic() < deadline and proc.stdout is not None:
            line = proc.stdout.readline()
            if line.startswith("serving "):
                url = line.split()[1]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/index.html"), proc.stderr
        chromium.get(url)
        assert errors(chromium) == []
        assert len(visible_series(chromium)) == 2
        assert set_filter(chromium, "pass", "") == ["[PATCH v3 0/2] mm: another series"]
        base = url.removesuffix("index.html")
        with urllib.request.urlopen(f"{base}series/{DEMO}/v2/boot-x86_64.txt", timeout=30) as r:
            assert r.headers["Content-Type"].startswith("text/plain") and r.headers["X-Content-Type-Options"]
            assert b"STRESS pte-table-crossing FAIL" in r.read()
        with urllib.request.urlopen(f"{base}series/{DEMO}/v2/reproduce-x86_64.sh", timeout=30) as r:
            assert r.read().startswith(b"#!/bin/sh\n")
        chromium.get(f"{base}series/{DEMO}/index.html")
        assert errors(chromium) == [] and matrix(chromium)["matrix-v3"][0] == "pass"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_hostile_subject_author_and_console_line_stay_text(tmp_path: Path, inbox: LocalInbox, chromium) -> None:
    """A series posted to the real archive with markup in its subject and author name, reviewed by the real
    `bot check`; its boot result then gets a console finding whose lines carry markup too (what the boot stage
    records from a console). Nothing of it is live on any page."""
    writer = toy_writer(tmp_path, "hostile-dashboard")
    posting = writer.write(Revision(1, f"mm/rmap: {HOSTILE}", [
        Patch(f"mm/rmap: {HOSTILE}", files={"mm/rmap.c": rmap_with("nr_pages > 1")})], cover=False))
    name = base64.b64encode(HOSTILE.encode()).decode()  # an encoded-word: any bytes fit in a display name
    for m in posting.mails:
        inbox.deliver(set_headers(m, {"From": f"=?utf-8?b?{name}?= <evil@example.org>"}).encode())
    inbox.wait_searchable(posting.msgids[-1])
    config = write_config(tmp_path / "config.toml", inbox.url)  # type: ignore[attr-defined]
    proc = run_bot("check", posting.msgids[-1], "--config", str(config), "--stages", "fetch,report", "--json",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    slug, (rev,) = out["series"]["slug"], out["revisions"]
    assert HOSTILE in rev["subject"] and HOSTILE in rev["author"]  # the markup came through as data
    rdir = tmp_path / "patchsets" / slug / "v1"
    (rdir / "logs").mkdir()
    (rdir / "logs" / "boot-x86_64.log").write_text(f"Linux version 7.2\n{HOSTILE}\nRESULT: PASS\n")
    result = json.loads((rdir / "result.json").read_text())
    result["stages"]["boot"] = {"x86_64": {
        "status": "ok", "detail": f"booted; {HOSTILE}", "log": str(rdir / "logs" / "boot-x86_64.log"),
        "findings": [{"kind": "warning", "first_line": f"WARNING: {HOSTILE}", "fingerprint": "x",
                      "excerpt": f"WARNING: at mm/rmap.c:1\n{HOSTILE}", "preexisting": False}]}}
    (rdir / "result.json").write_text(json.dumps(result))
    built = run_bot("dashboard", "--config", str(config), cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    root = tmp_path / "dashboard"
    pages = [root / "index.html", *sorted(root.glob("series/*/index.html"))]
    assert len(pages) == 2 and pages[1].parent.name == slug
    for page in pages:
        chromium.get(page.as_uri())
        live = chromium.execute_script(
            "return {scripts: Array.from(document.scripts).map(s => s.src.split('/').pop()),"
            " imgs: document.images.length,"
            " handlers: Array.from(document.querySelectorAll('*')).filter(e => Array.from(e.attributes)"
            ".some(a => a.name.startsWith('on'))).length}")  # an alert() would have made this call raise
        assert live == {"scripts": ["filter.js"] if page.name == "index.html" and page.parent == root else [],
                        "imgs": 0, "handlers": 0}, page
        assert HOSTILE in chromium.find_element("tag name", "body").text  # shown, as text
        assert errors(chromium) == [], page  # no script was even attempted (the CSP would have said so)
    log = (root / "series" / slug / "v1" / "boot-x86_64.txt").read_text()
    assert HOSTILE in log  # the full console, byte for byte, as plain text beside the page


def test_bad_usage_and_an_unwritable_site_are_one_line(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.toml", "https://lore.example.org")
    usage = run_bot("dashboard", "--port", "8017", "--config", str(config), cwd=tmp_path)
    assert usage.returncode == 2 and usage.stderr == "bot: --port goes with --serve\n"
    (tmp_path / "dashboard").write_text("a file where the site should be\n")
    blocked = run_bot("dashboard", "--config", str(config), cwd=tmp_path)
    assert blocked.returncode == 3 and "Traceback" not in blocked.stderr
    assert blocked.stderr.startswith(f"bot: cannot write the dashboard at {tmp_path.resolve()}/dashboard: ")
    assert len(blocked.stderr.splitlines()) == 1
