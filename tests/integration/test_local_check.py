"""`bot check --mbox FILE` and `bot check --range BASE..TIP`: local patches through the same pipeline, nothing
posted, the same verdicts as the archive path; a real `b4 prep` branch whose v1 went out with a real `b4 send`
(to the test's SMTP server and archive) gives v1, from its sent/ tag (without it: from the bot's review of
that posting, by the Message-ID in b4's tracking data), as the previous revision."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from bot.demo.localinbox import LocalInbox
from bot.demo.writer import Revision, SeriesWriter
from bot.report import verdict_parts
from bot.results import RevisionResult
from tests.conftest import BOT, run_bot
from tests.integration.b4run import git_config_env, toy_tree, tree_config
from tests.integration.test_b4check import STAGES, patches

B4 = str(Path(BOT).with_name("b4"))  # the venv's b4, the version the bot pins
V1, V2 = "nr_pages > 1", "nr_pages == folio_nr_pages(folio)"


def check(config: Path, *target: str, as_json: bool = True) -> subprocess.CompletedProcess[str]:
    proc = run_bot("check", *target, "--config", str(config), "--stages", STAGES, *(["--json"] if as_json else []),
                   cwd=config.parent)
    assert proc.returncode == 0, proc.stderr
    return proc


def verdicts(out: dict) -> dict[int, tuple]:
    """What a review says of each revision: apply, base, the walk exits and what they are compared with."""
    res = {}
    for r in out["revisions"]:
        w = r["stages"]["walkdiff"]
        res[r["version"]] = (r["stages"]["apply"]["status"], r["base"]["commit"], w["status"], w.get("against"),
                             json.dumps(w.get("functions"), sort_keys=True),
                             ", ".join(verdict_parts(RevisionResult.from_json(r))))
    return res


def author_config(tmp: Path, inbox: LocalInbox, tree: Path, port: int) -> Path:
    """Replies would go to the author over SMTP: a local check must still send nothing."""
    return tree_config(tmp, inbox, tree, f'[report]\nmode = "author"\nsmtp_host = "127.0.0.1"\nsmtp_port = {port}\n'
                       'smtp_retries = 0\n')


def test_mbox_gives_the_archive_verdicts_and_sends_nothing(tmp_path: Path, inbox: LocalInbox, post,
                                                             writer: SeriesWriter, smtp) -> None:
    _, port, rec = smtp
    v1 = writer.write(Revision(1, "mm: local mbox", patches(V1, "m1")))
    v2 = writer.write(Revision(2, "mm: local mbox", patches(V2, "m2"), reply_to=writer.msgid(1, 0)))
    post(v1.messages() + v2.messages())
    tree = toy_tree(writer, tmp_path / "kernel-tree")
    (tmp_path / "archive").mkdir()
    archive = verdicts(json.loads(check(tree_config(tmp_path / "archive", inbox, tree), writer.msgid(2, 0)).stdout))
    local = tmp_path / "local"
    local.mkdir()
    config = author_config(local, inbox, tree, port)
    for rev in (v1, v2):
        (local / f"v{rev.version}.mbx").write_text(rev.mbox())
    before = len(rec.received)
    first = json.loads(check(config, "--mbox", str(local / "v1.mbx")).stdout)
    out = json.loads(check(config, "--mbox", str(local / "v2.mbx")).stdout)
    assert verdicts(first)[1] == archive[1]
    assert verdicts(out) == archive  # v1, checked before, is v2's previous revision
    assert out["revisions"][1]["stages"]["walkdiff"]["against"] == "v1"
    assert out["series"]["slug"].startswith("local-") and out["series"]["local"].startswith("--mbox ")
    assert out["revisions"][1]["stages"]["report"]["detail"].startswith("dry-run: reply written to")
    assert len(rec.received) == before  # [report] mode = "author", and still nothing sent
    text = check(config, "--mbox", str(local / "v2.mbx"), as_json=False).stdout
    assert "mm-review-bot: v2 applied, not built, not booted" in text  # the review, on stdout
    assert "try_to_unmap_one(): walk exits v1 -> v2" in text
    assert f"bot check --mbox {local / 'v2.mbx'}" in text  # how to rerun it, not a Message-ID never posted
    series = json.loads((local / "patchsets" / out["series"]["slug"] / "series.json").read_text())
    assert series["message_ids"] == []  # never mistaken for a posting


def b4(repo: Path, env: dict[str, str], *args: str, stdin: str = "") -> str:
    proc = subprocess.run([B4, *args], cwd=repo, env=env,
                          input=stdin, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def git(repo: Path, env: dict[str, str], *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True,
                          timeout=60).stdout


def am(repo: Path, env: dict[str, str], rev) -> None:
    """The author's commits: the posting's patches (not its cover letter) applied with git am."""
    for mail in rev.mails[1:]:
        subprocess.run(["git", "am", "-q"], cwd=repo, env=env, input=mail, text=True, check=True, timeout=60)


def test_range_of_a_b4_prep_branch_after_b4_send(tmp_path: Path, inbox: LocalInbox, post, writer: SeriesWriter,
                                                 smtp) -> None:
    host, port, rec = smtp
    v1 = writer.write(Revision(1, "mm: prep branch", patches(V1, "p1")))
    v2 = writer.write(Revision(2, "mm: prep branch", patches(V2, "p2"), reply_to=writer.msgid(1, 0)))
    post(v1.messages() + v2.messages())
    tree = toy_tree(writer, tmp_path / "kernel-tree")
    (tmp_path / "archive").mkdir()
    archive = verdicts(json.loads(check(tree_config(tmp_path / "archive", inbox, tree), writer.msgid(2, 0)).stdout))
    author = toy_tree(writer, tmp_path / "author")  # the author's own clone
    env = git_config_env({"sendemail.smtpserver": host, "sendemail.smtpserverport": str(port),
                          "b4.midmask": f"{inbox.url}/linux-mm/%s"}, tmp_path / "home")  # type: ignore[attr-defined]
    b4(author, env, "prep", "-n", "rmap-walk", "-f", "master")
    am(author, env, v1)
    sent = len(rec.received)
    b4(author, env, "send", "--to", "linux-mm@kvack.org", "--no-sign", stdin="\n\n\n")
    assert len(rec.received) == sent + 3  # b4 sent v1: cover letter and two patches
    tags = git(author, env, "tag", "--list", "sent/*").split()
    assert len(tags) == 1 and tags[0].endswith("-v1"), tags
    cover = git(author, env, "log", "--format=%H", "--fixed-strings", "--grep=b4-submit-tracking", "-1").strip()
    git(author, env, "reset", "-q", "--hard", cover)  # v2: the patches redone on the same cover letter
    am(author, env, v2)
    local = tmp_path / "local"
    local.mkdir()
    config = author_config(local, inbox, tree, port)
    out = json.loads(check(config, "--range", "master..HEAD", "--repo", str(author)).stdout)
    assert [r["version"] for r in out["revisions"]] == [1, 2]
    assert out["revisions"][0]["found_by"] == [f"local tag {tags[0]}"]
    assert out["revisions"][1]["found_by"] == ["local range master..HEAD"]
    got = verdicts(out)
    assert got[2][:5] == archive[2][:5]  # apply, base, and the walk exits against v1
    assert got[1][:2] == archive[1][:2]  # v1 applied for the comparison only
    assert out["revisions"][0]["stages"]["walkdiff"]["status"] == "not_run"
    assert out["revisions"][1]["subject"].startswith("[PATCH v2 0/2] ")
    assert len(rec.received) == sent + 3  # the check sent nothing
    # without its sent/ tag, v1 is still known: the tracking data has its Message-ID, and the bot reviewed it
    git(author, env, "tag", "-d", tags[0])
    tracking = json.loads("{" + git(author, env, "log", "-1", "--format=%B", "HEAD~2").split("{", 1)[1])
    (posted,) = tracking["series"]["history"]["v1"]
    check(config, posted.strip("<>"))
    again = json.loads(check(config, "--range", "master..HEAD", "--repo", str(author)).stdout)
    assert [r["version"] for r in again["revisions"]] == [1, 2]
    assert again["revisions"][0]["found_by"][0].startswith("posted v1, reviewed in ")
    assert verdicts(again)[2][:5] == archive[2][:5]
