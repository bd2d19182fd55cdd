"""No rework: a repeat `bot check` reuses every stage result whose inputs are unchanged, a new revision runs
alone, `--rerun` forces, a config change reruns the stages that read it. Real archive, real b4 and git, the
real CLI, on a toy kernel tree."""

from __future__ import annotations

import json
import re
from pathlib import Path

from bot.demo.localinbox import LocalInbox
from bot.demo.writer import Patch, Revision, SeriesWriter
from tests.conftest import run_bot
from tests.integration.conftest import toy_tree, tree_config
from tests.mailgen import rmap_with

STAGES = "fetch,apply,walkdiff"


def deliver(inbox: LocalInbox, msgs: list) -> None:
    for msg in msgs:
        inbox.deliver(msg)
    inbox.wait_searchable(str(msgs[-1]["Message-ID"]).strip("<>"))


def post(writer: SeriesWriter, inbox: LocalInbox, v: int, cond: str) -> None:
    """Revision v of a series titled after the test (the session archive is shared by every test)."""
    title = f"mm: reused series {writer.msgid(0, 0).split('.')[0]}"
    rev = Revision(v, title, [Patch(f"mm/rmap: exit when {cond}", files={"mm/rmap.c": rmap_with(cond)})])
    deliver(inbox, writer.write(rev).messages())


def check(config: Path, target: str, *extra: str) -> str:
    """`bot check` (text output: progress on stderr); returns stderr + stdout."""
    proc = run_bot("check", target, "--config", str(config), "--stages", STAGES, *extra, cwd=config.parent)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr + proc.stdout


def ran(out: str) -> set[str]:
    """The `<stage>: v<N>` progress lines of stages that ran (not reused)."""
    return {m.group(1) for m in re.finditer(r"» (\w+: v\d+)\s*$", out, re.M)}


def reused(out: str) -> set[str]:
    return {m.group(1) for m in re.finditer(r"» (\w+: v\d+) reused \(inputs unchanged\)", out)}


def results(config: Path) -> dict[int, dict]:
    (series,) = (config.parent / "patchsets").glob("*/series.json")
    return {int(p.parent.name[1:]): json.loads(p.read_text()) for p in series.parent.glob("v*/result.json")}


def test_repeat_reuses_new_revision_runs_alone_rerun_forces(writer: SeriesWriter, inbox: LocalInbox,
                                                            tmp_path: Path) -> None:
    post(writer, inbox, 1, "nr_pages > 1")
    post(writer, inbox, 2, "nr_pages > 2")
    config = tree_config(tmp_path / "config.toml", inbox.url, toy_tree(writer, tmp_path))
    first = check(config, writer.msgid(2, 0))
    assert ran(first) == {"apply: v1", "apply: v2", "walkdiff: v1", "walkdiff: v2"} and not reused(first)
    made = results(config)
    for r in made.values():
        assert r["stages"]["apply"]["status"] == "ok" and r["stages"]["walkdiff"]["mode"] == "tree"
        assert set(r["stages"]["apply"]["inputs"]) == {"bot", "patches", "base", "config"}
    assert made[2]["stages"]["walkdiff"]["inputs"]["previous"]

    again = check(config, writer.msgid(2, 0))
    assert not ran(again) and reused(again) == {"apply: v1", "apply: v2", "walkdiff: v1", "walkdiff: v2"}
    assert "reused: 4 stage results whose inputs are unchanged" in again
    assert results(config) == made

    post(writer, inbox, 3, "nr_pages == 4")
    third = check(config, writer.msgid(3, 0))  # v3 is new: fetched, and the only revision that runs
    assert ran(third) == {"apply: v3", "walkdiff: v3"}
    assert reused(third) == {"apply: v1", "apply: v2", "walkdiff: v1", "walkdiff: v2"}

    forced = check(config, writer.msgid(3, 0), "--rerun", "walkdiff")
    assert ran(forced) == {"walkdiff: v1", "walkdiff: v2", "walkdiff: v3"}
    assert reused(forced) == {"apply: v1", "apply: v2", "apply: v3"}
    everything = check(config, writer.msgid(3, 0), "--rerun")
    assert len(ran(everything)) == 6 and "reusing" not in everything  # --rerun alone: fetch too


def test_a_config_change_reruns_the_stages_that_read_it(writer: SeriesWriter, inbox: LocalInbox,
                                                        tmp_path: Path) -> None:
    post(writer, inbox, 1, "nr_pages > 1")
    tree = toy_tree(writer, tmp_path)
    config = tree_config(tmp_path / "config.toml", inbox.url, tree)
    check(config, writer.msgid(1, 0))
    tree_config(config, inbox.url, tree, '[walkdiff]\nlabels = ["walk_done", "walk_abort"]\n')
    out = check(config, writer.msgid(1, 0))
    assert ran(out) == {"walkdiff: v1"} and reused(out) == {"apply: v1"}


def test_an_error_is_never_reused(writer: SeriesWriter, inbox: LocalInbox, tmp_path: Path) -> None:
    post(writer, inbox, 1, "nr_pages > 1")
    config = tree_config(tmp_path / "config.toml", inbox.url, tmp_path / "no-tree")
    first = check(config, writer.msgid(1, 0))
    assert ran(first) == {"apply: v1", "walkdiff: v1"}
    again = check(config, writer.msgid(1, 0))  # no kernel tree: apply is an error, tried again every time
    assert ran(again) == {"apply: v1"} and reused(again) == {"walkdiff: v1"}  # the hunks walk diff stands
    r = results(config)[1]["stages"]
    assert r["apply"]["status"] == "error" and r["walkdiff"]["mode"] == "hunks"
