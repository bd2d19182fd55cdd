"""`bot b4-check` driven by b4's own check runner (b4.review.checks, real b4 0.16), the commands set with
per-process git config, on messages from the test archive: what `b4 review` then shows for a reviewed
revision, one not reviewed yet (and queued, then reviewed by the daemon), a failing one, and bad input."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import b4.review.checks as checks

from bot.demo.localinbox import LocalInbox
from bot.demo.writer import Edit, Patch, Revision, SeriesWriter
from tests.conftest import BOT, run_bot
from tests.integration.b4run import b4_checks, by_id, thread, tools, toy_tree, tree_config
from tests.mailgen import rmap_with

STAGES = "fetch,apply,walkdiff,report"
DASHBOARD = 'dashboard_url = "https://mm-bot.example.org/"\n'


def patches(cond: str, tag: str) -> list[Patch]:
    return [Patch(f"mm/rmap: stop the walk when {cond}", files={"mm/rmap.c": rmap_with(cond)}),
            Patch(f"mm: a note for {tag}", files={"mm/note.c": f"/* {tag} */\n"})]


def review(config: Path, msgid: str) -> dict:
    proc = run_bot("check", msgid, "--config", str(config), "--stages", STAGES, "--json", cwd=config.parent)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_reviewed_revision_as_b4_review_shows_it(tmp_path: Path, inbox: LocalInbox, post,
                                                 writer: SeriesWriter) -> None:
    v1 = writer.write(Revision(1, "mm: b4 review", patches("nr_pages > 1", "v1"))).messages()
    v2 = writer.write(Revision(2, "mm: b4 review", patches("nr_pages == folio_nr_pages(folio)", "v2"),
                               reply_to=writer.msgid(1, 0))).messages()
    post(v1 + v2)
    tree = toy_tree(writer, tmp_path / "kernel-tree")
    config = tree_config(tmp_path, inbox, tree, "[report]\n" + DASHBOARD)
    slug = review(config, writer.msgid(2, 0))["series"]["slug"]
    msgs = by_id(thread(inbox, writer.msgid(2, 0)))
    p1, p2, cover = writer.msgid(2, 1), writer.msgid(2, 2), writer.msgid(2, 0)
    with b4_checks(config, tmp_path / "home") as (perpatch, series):
        assert perpatch == [f"{BOT} b4-check --config {config}"]
        assert series == [f"{BOT} b4-check --series --config {config}"]
        got = checks.run_perpatch_checks([(p1, msgs[p1]), (p2, msgs[p2]), (writer.msgid(1, 1),
                                          msgs[writer.msgid(1, 1)])], perpatch, str(tree))
        whole = tools(checks.run_series_checks((cover, msgs[cover]), series, str(tree)))
    one, two, old = tools(got[p1]), tools(got[p2]), tools(got[writer.msgid(1, 1)])
    assert set(one) == {"mm-bot", "mm-bot/apply", "mm-bot/walk-exits"}  # build and boot were not run
    walk = one["mm-bot/walk-exits"]
    assert walk["status"] == "warn"
    assert "try_to_unmap_one(): goto walk_done if (nr_pages > 1) -> if (nr_pages == folio_nr_pages(folio))" in \
        walk["summary"]
    assert walk["summary"].startswith("1 walk exit(s) changed v1 -> v2")
    assert one["mm-bot/apply"]["status"] == "pass" and "applied on base-commit" in one["mm-bot/apply"]["summary"]
    bot = one["mm-bot"]
    assert bot["status"] == "warn"
    assert bot["summary"].startswith("mm-review-bot: v2 applied, not built, not booted")
    assert "try_to_unmap_one(): walk exits v1 -> v2" in bot["details"]  # the whole review, as it would be posted
    assert bot["url"] == f"https://mm-bot.example.org/series/{slug}/index.html"
    # patch 2 does not touch a walk function: its row stays green
    assert two["mm-bot/walk-exits"] == {**two["mm-bot/walk-exits"], "status": "pass",
                                        "summary": "touches no walk function"}
    assert two["mm-bot"]["status"] == "pass"
    # v1 against the base: shown, not flagged
    assert old["mm-bot/walk-exits"]["status"] == "pass"
    assert "changed base -> v1" in old["mm-bot/walk-exits"]["summary"]
    assert whole["mm-bot/walk-exits"]["status"] == "warn" and whole["mm-bot"]["status"] == "warn"


def test_not_reviewed_then_queued(tmp_path: Path, inbox: LocalInbox, post, writer: SeriesWriter) -> None:
    """Nothing for b4 to cache; with --queue the daemon's next round reviews it, and b4 asking again gets it."""
    post(writer.write(Revision(1, "mm: not reviewed yet", patches("nr_pages > 2", "q"))).messages())
    tree = toy_tree(writer, tmp_path / "kernel-tree")
    config = tree_config(tmp_path, inbox, tree, f'[daemon]\nstages = {json.dumps(STAGES.split(","))}\n'
                         'patterns = ["mm/"]\n')
    msgs = by_id(thread(inbox, writer.msgid(1, 0)))
    ids = [writer.msgid(1, 1), writer.msgid(1, 2)]
    with b4_checks(config, tmp_path / "home") as (perpatch, series):
        assert checks.run_perpatch_checks([(m, msgs[m]) for m in ids], perpatch, str(tree)) == {m: [] for m in ids}
    with b4_checks(config, tmp_path / "home", queue=True) as (perpatch, series):
        assert checks.run_perpatch_checks([(m, msgs[m]) for m in ids], perpatch, str(tree)) == {m: [] for m in ids}
        assert checks.run_series_checks((writer.msgid(1, 0), msgs[writer.msgid(1, 0)]), series, str(tree)) == []
    db = sqlite3.connect(tmp_path / "patchsets" / "bot.sqlite3")
    assert {r[0]: r[1] for r in db.execute("SELECT message_id, state FROM revisions")} == {
        m: "seen" for m in [*ids, writer.msgid(1, 0)]}
    daemon = run_bot("daemon", "--once", "--config", str(config), cwd=tmp_path)
    assert daemon.returncode == 0, daemon.stderr
    rows = {r[0]: r[1] for r in db.execute("SELECT message_id, state FROM revisions")}
    assert rows[writer.msgid(1, 0)] == "done" and rows[ids[0]] == rows[ids[1]] == "ignored"
    with b4_checks(config, tmp_path / "home") as (perpatch, series):
        got = checks.run_perpatch_checks([(m, msgs[m]) for m in ids], perpatch, str(tree))
    assert tools(got[ids[0]])["mm-bot/apply"]["status"] == "pass"
    assert tools(got[ids[0]])["mm-bot"]["summary"].startswith("mm-review-bot: v1 applied")


def test_failing_revision(tmp_path: Path, inbox: LocalInbox, post, writer: SeriesWriter) -> None:
    upstream = Edit("mm/rmap.c", "\tbool ret = true;\n", "\tbool ret = true; /* upstream */\n")
    bad = [Patch("mm: a note first", files={"mm/note.c": "/* first */\n"}),
           Patch("mm/rmap: build on upstream work", edits=[Edit("mm/rmap.c", "/* upstream */", "/* ours */")])]
    post(writer.write(Revision(1, "mm: does not apply", bad, fake_base=[upstream])).messages())
    tree = toy_tree(writer, tmp_path / "kernel-tree")
    config = tree_config(tmp_path, inbox, tree)
    review(config, writer.msgid(1, 0))
    msgs = by_id(thread(inbox, writer.msgid(1, 0)))
    ids = [writer.msgid(1, 1), writer.msgid(1, 2)]
    with b4_checks(config, tmp_path / "home") as (perpatch, series):
        got = checks.run_perpatch_checks([(m, msgs[m]) for m in ids], perpatch, str(tree))
        whole = tools(checks.run_series_checks((writer.msgid(1, 0), msgs[writer.msgid(1, 0)]), series, str(tree)))
    first, second = tools(got[ids[0]]), tools(got[ids[1]])
    assert first["mm-bot/apply"]["status"] == "pass"
    assert first["mm-bot/apply"]["summary"] == "applies (patch 2/2 does not)"
    assert second["mm-bot/apply"]["status"] == "fail"
    assert "patch 2 'mm/rmap: build on upstream work' does not apply at mm/rmap.c" in \
        second["mm-bot/apply"]["summary"]
    assert second["mm-bot"]["status"] == "fail" and whole["mm-bot"]["status"] == "fail"
    assert whole["mm-bot"]["summary"].startswith("mm-review-bot: v1 does not apply (patch 2)")
    assert whole["mm-bot/apply"]["status"] == "fail"


def test_bad_input_is_one_fail_entry(tmp_path: Path, inbox: LocalInbox, writer: SeriesWriter) -> None:
    tree = toy_tree(writer, tmp_path / "kernel-tree")
    config = tree_config(tmp_path, inbox, tree)
    msg = writer.write(Revision(1, "mm: no id", patches("x", "y"))).messages()[1]
    del msg["Message-ID"]
    with b4_checks(config, tmp_path / "home") as (perpatch, _):
        got = checks.run_perpatch_checks([("no-id", msg)], perpatch, str(tree))
    assert got == {"no-id": [{"tool": "mm-bot", "status": "fail", "url": "", "details": "",
                              "summary": "bad input: the message has no Message-ID header"}]}
    for stdin, why in ((b"", "stdin is empty"), (b"\x00\x01 just bytes\n\n", "no header fields"),
                       (b"Subject: hi\nMessage-ID: not an id\n\nx\n", "Message-ID is not one")):
        proc = subprocess.run([BOT, "b4-check", "--config", str(config)], input=stdin, capture_output=True,
                              timeout=60)
        assert proc.returncode == 1, proc
        (entry,) = json.loads(proc.stdout)
        assert entry["status"] == "fail" and why in entry["summary"], entry
        assert b"Traceback" not in proc.stderr and proc.stderr.decode().startswith("bot: ")


def test_the_reviewed_message_path_imports_no_heavy_library(tmp_path: Path) -> None:
    """What keeps `bot b4-check` fast for b4 (bench/b4check.py has the figures): answering from results on
    disk imports neither b4, pygit2, tree-sitter, jinja2 nor rich."""
    from bot.results import ReportResult, RevisionRef, SeriesSummary, save_revision, write_json_atomic
    from tests.unit.test_b4check import PATCH, revision

    outbox = tmp_path / "patchsets" / "outbox" / "new" / "reply"
    outbox.parent.mkdir(parents=True)
    outbox.write_bytes(b"Content-Type: text/plain\n\nmm-review-bot: v2 applied\n")
    save_revision(tmp_path / "patchsets" / "s" / "v2" / "result.json",
                  revision(report=ReportResult("ok", "dry-run", outbox=str(outbox))))
    write_json_atomic(tmp_path / "patchsets" / "s" / "series.json", SeriesSummary(
        "s", "x", "a", "cover@example.org", [RevisionRef(2, "cover@example.org", "requested")],
        message_ids=["cover@example.org", "p1@example.org"]).to_json())
    (tmp_path / "config.toml").write_text('[paths]\npatchsets = "patchsets"\n')
    probe = ("import sys, runpy; sys.argv = ['bot', 'b4-check', '--config', sys.argv[1]]\n"
             "try:\n    runpy.run_module('bot.cli', run_name='__main__')\nexcept SystemExit:\n    pass\n"
             "heavy = {'b4', 'pygit2', 'tree_sitter', 'tree_sitter_c', 'jinja2', 'rich', 'unidiff', 'httpx'}\n"
             "print(sorted({m.split('.')[0] for m in sys.modules} & heavy), file=sys.stderr)\n")
    proc = subprocess.run([str(Path(BOT).with_name("python")), "-c", probe, str(tmp_path / "config.toml")],
                          input=PATCH, capture_output=True, timeout=60)
    entries = json.loads(proc.stdout)
    assert entries[0]["summary"] == "mm-review-bot: v2 applied"
    assert proc.stderr.decode().strip().splitlines()[-1] == "[]"
