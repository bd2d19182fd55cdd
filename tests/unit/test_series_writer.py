"""bot/demo/writer.py on a toy tree: each way of shaping a posting does what it says, reproducibly."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pygit2
import pytest

from bot.demo.writer import (
    LORE,
    Edit,
    Patch,
    Revision,
    SeriesWriter,
    handmade_mail,
    tagged,
)
from bot.errors import OperationalError

RMAP = "".join(f"line {i} of rmap\n" for i in range(1, 41))
TWO = (
    Patch("mm/rmap: one", edits=(Edit("mm/rmap.c", "line 10 of rmap\n", "line 10 changed\n"),)),
    Patch("mm: note", files={"mm/sub/note.c": "/* note */\n"}),
)


def toy(tmp_path: Path, name: str = "w", **options: object) -> SeriesWriter:
    options.setdefault("msgid", tagged(name))
    return SeriesWriter.on_files({"mm/rmap.c": RMAP}, tmp_path / name, **options)


def header(mail: str, name: str) -> str | None:
    """A header's unfolded value, from the header block only."""
    head = mail.partition("\n\n")[0]
    found = re.search(rf"^{name}: (.*(?:\n[ \t].*)*)", head, re.M | re.I)
    return " ".join(found.group(1).split()) if found else None


def subjects(mails: list[str]) -> list[str]:
    return [header(m, "Subject") or "" for m in mails]


@pytest.mark.parametrize(
    ("version", "prefix", "cover", "numbered", "want"),
    [
        (1, None, True, True, ["[PATCH 0/2] mm: t", "[PATCH 1/2] mm/rmap: one", "[PATCH 2/2] mm: note"]),
        (2, None, True, True, ["[PATCH v2 0/2] mm: t", "[PATCH v2 1/2] mm/rmap: one", "[PATCH v2 2/2] mm: note"]),
        (1, "PATCH v{v}", True, True, ["[PATCH v1 0/2] mm: t", "[PATCH v1 1/2] mm/rmap: one",
                                       "[PATCH v1 2/2] mm: note"]),
        (2, "PATCHv{v}", False, True, ["[PATCHv2 1/2] mm/rmap: one", "[PATCHv2 2/2] mm: note"]),
        (3, "RFC PATCH v{v}", True, True, ["[RFC PATCH v3 0/2] mm: t", "[RFC PATCH v3 1/2] mm/rmap: one",
                                           "[RFC PATCH v3 2/2] mm: note"]),
        (3, "PATCH", False, True, ["[PATCH 1/2] mm/rmap: one", "[PATCH 2/2] mm: note"]),  # no version at all
    ],
)
def test_subject_prefixes(tmp_path, version, prefix, cover, numbered, want):
    posting = toy(tmp_path).write(Revision(version, "mm: t", TWO, prefix=prefix, cover=cover, numbered=numbered))
    assert subjects(posting.mails) == want


def test_a_lone_patch_numbered_or_not(tmp_path):
    w = toy(tmp_path)
    assert subjects(w.write(Revision(1, "", TWO[:1], cover=False)).mails) == ["[PATCH 1/1] mm/rmap: one"]
    assert subjects(w.write(Revision(2, "", TWO[:1], cover=False, numbered=False)).mails) == [
        "[PATCH v2] mm/rmap: one"
    ]


def test_cover_letter_headers_and_ids(tmp_path):
    w = toy(tmp_path, author="Ada Lovelace <ada@example.org>", cc=("Andrew <akpm@example.org>",))
    p = w.write(Revision(1, "mm: title", TWO, blurb="Why the series.\n"))
    cover, one, two = p.mails
    assert p.msgids == ["w.v1.0@example.org", "w.v1.1@example.org", "w.v1.2@example.org"]
    assert [header(m, "Message-ID") for m in p.mails] == [f"<{i}>" for i in p.msgids]
    assert header(cover, "In-Reply-To") is None and header(cover, "References") is None
    for m in (one, two):
        assert header(m, "In-Reply-To") == header(m, "References") == "<w.v1.0@example.org>"
    assert all(m.startswith("From 0000000000000000000000000000000000000000 ") for m in p.mails)
    assert [header(m, "Date") for m in p.mails] == [f"Mon, 05 Jan 2026 10:00:0{i} +0000" for i in range(3)]
    assert header(cover, "From") == "Ada Lovelace <ada@example.org>" and header(cover, "To") == "linux-mm@kvack.org"
    assert header(cover, "Cc") == "Andrew <akpm@example.org>"
    body = cover.partition("\n\n")[2]
    assert body.startswith("Why the series.\n\n") and "*** " not in cover
    assert f"base-commit: {w.base}\n" in cover and p.base == str(w.base)
    assert "+++ b/mm/sub/note.c" in two and "line 10 changed" in one


def test_threaded_reroll_and_coverless_threading(tmp_path):
    w = toy(tmp_path)
    w.write(Revision(1, "mm: t", TWO))
    cover, one, _ = w.write(Revision(2, "mm: t", TWO, reply_to=w.msgid(1, 0))).mails
    assert header(cover, "In-Reply-To") == header(cover, "References") == "<w.v1.0@example.org>"
    assert header(one, "In-Reply-To") == "<w.v2.0@example.org>"
    assert header(one, "References") == "<w.v1.0@example.org> <w.v2.0@example.org>"
    one, two = w.write(Revision(3, "", TWO, cover=False)).mails
    assert header(one, "Message-ID") == "<w.v3.1@example.org>" and header(one, "In-Reply-To") is None
    assert header(two, "In-Reply-To") == header(two, "References") == "<w.v3.1@example.org>"
    one, two = w.write(Revision(4, "", TWO, cover=False, reply_to="w.v3.1@example.org")).mails
    assert header(one, "In-Reply-To") == "<w.v3.1@example.org>"
    assert header(two, "References") == "<w.v3.1@example.org> <w.v4.1@example.org>"


def test_change_id_goes_next_to_base_commit_or_above_the_signature(tmp_path):
    w = toy(tmp_path)
    cover, one, _ = w.write(Revision(1, "mm: t", TWO, change_id="20260105-t-1234")).mails
    assert f"base-commit: {w.base}\nchange-id: 20260105-t-1234\n" in cover and "change-id" not in one
    one, two = w.write(Revision(2, "", TWO, cover=False, base_commit=False, change_id="20260105-t-1234")).mails
    assert one.endswith("\nchange-id: 20260105-t-1234\n-- \n2.47.2\n\n") and "change-id" not in two
    assert "base-commit" not in one


def test_arrow_changelog_links_every_earlier_cover(tmp_path):
    w = toy(tmp_path)
    w.write(Revision(1, "mm: first", TWO))
    w.write(Revision(2, "mm: second", TWO, changes="renamed", changelog="arrow"))
    cover = w.write(Revision(3, "mm: third", TWO, blurb="Blurb.\n", changes="again", changelog="arrow")).mails[0]
    assert cover.partition("\n\n")[2].startswith(
        "Blurb.\n\nChanges:\n"
        f"v2 -> v3: again\n  {LORE}/w.v2.0@example.org/\n"
        f"v1 -> v2: renamed\n  {LORE}/w.v1.0@example.org/\n\n"
    )
    assert header(cover, "Subject") == "[PATCH v3 0/2] mm: third"  # renamed between revisions


def test_plain_changelog_links_the_previous_posting_only(tmp_path):
    w = toy(tmp_path, lore="https://lore.kernel.org/all")
    w.write(Revision(1, "mm: t", TWO))
    w.write(Revision(2, "", TWO, cover=False))
    cover = w.write(Revision(3, "mm: t", TWO, changes="fixed", changelog="plain")).mails[0]
    assert "\nChanges since v2:\n - fixed\n\nv2: https://lore.kernel.org/all/w.v2.1@example.org/\n" in cover
    assert "w.v1.0" not in cover


def test_changelog_without_cover_letter_goes_below_the_dashes(tmp_path):
    w = toy(tmp_path)
    w.write(Revision(1, "", TWO[:1], cover=False))
    one = w.write(Revision(2, "", TWO[:1], cover=False, changes="x", changelog="plain")).mails[0]
    msg, _, rest = one.partition("\n---\n")
    assert "Changes since" not in msg
    assert rest.startswith(f"Changes since v1:\n - x\n\nv1: {LORE}/w.v1.1@example.org/\n\n mm/rmap.c | 2 +-")
    with pytest.raises(ValueError, match="changelog form"):
        w.write(Revision(3, "", TWO[:1], changelog="links"))


def test_omitted_patch(tmp_path):
    p = toy(tmp_path).write(Revision(1, "mm: gap", (*TWO, Patch("mm: more", files={"mm/more.c": "x\n"})), omit=[2]))
    assert p.msgids == ["w.v1.0@example.org", "w.v1.1@example.org", "w.v1.3@example.org"]
    assert [s.split("]")[0] for s in subjects(p.mails)] == ["[PATCH 0/3", "[PATCH 1/3", "[PATCH 3/3"]


def test_truncated_patch(tmp_path):
    whole = toy(tmp_path, "a").write(Revision(1, "mm: t", TWO)).mails
    cut = toy(tmp_path, "b").write(Revision(1, "mm: t", TWO, truncate=1)).mails
    body, full = cut[1].partition("\n\n")[2], whole[1].partition("\n\n")[2]
    assert "@@ " in body and body.endswith("\n") and full.startswith(body[:-1]) and len(body) < len(full)
    assert "\n-- \n" not in body
    assert cut[2].partition("\n\n")[2] == whole[2].partition("\n\n")[2]


def test_reproducible_and_dated_a_week_apart(tmp_path):
    def run(name: str) -> list[str]:
        w = toy(tmp_path, name, msgid=tagged("same"), signoff=True)
        return [w.write(Revision(v, "mm: t", TWO, changes="c", changelog="arrow")).mbox() for v in (1, 2)]

    first, again = run("x"), run("y")
    assert first == again
    assert "Date: Mon, 12 Jan 2026 10:00:00 +0000" in first[1]
    assert "\nSigned-off-by: Ada Lovelace <ada@example.org>\n---\n" in first[0]


def test_fake_base_claims_a_commit_the_reader_does_not_have(tmp_path):
    w = toy(tmp_path)
    p = w.write(Revision(1, "mm: t", TWO[:1], fake_base=(Edit("mm/rmap.c", "line 12", "line twelve"),)))
    assert p.base != str(w.base) and f"base-commit: {p.base}\n" in p.mails[0]
    upstream = w.repo[p.base].peel(pygit2.Commit)
    assert str(upstream.parents[0].id) == str(w.base)
    assert "line twelve" in w.repo[upstream.tree["mm/rmap.c"].id].data.decode()


def test_edits_after_an_anchor_and_missing_text(tmp_path):
    w = toy(tmp_path)
    p = w.write(Revision(1, "", (Patch("x", edits=(Edit("mm/rmap.c", "of rmap", "OF RMAP", after="line 30 "),)),),
                         cover=False))
    assert "-line 30 of rmap\n+line 30 OF RMAP\n" in p.mails[0]
    with pytest.raises(OperationalError, match="no longer has the text"):
        w.write(Revision(2, "", (Patch("y", edits=(Edit("mm/rmap.c", "no such line", "z"),)),)))


def test_patch_author_non_ascii_and_binary(tmp_path):
    w = toy(tmp_path)
    blob = Patch("mm: firmware", "", files={"fw/blob.bin": bytes(range(256))}, author="Zoë Ångström <zoe@example.org>")
    cover, patch = w.write(Revision(1, "mm: t", (blob,))).mails
    assert header(patch, "From") == "=?utf-8?b?Wm/DqyDDhW5nc3Ryw7Zt?= <zoe@example.org>"
    assert header(cover, "From") == "Ada Lovelace <ada@example.org>"
    assert "GIT binary patch" in patch and "Zoë Ångström (1):" in cover
    (msg,) = w.write(Revision(2, "", (blob,), cover=False)).messages()
    assert str(msg["From"]) == "Zoë Ångström <zoe@example.org>" and msg["Subject"] == "[PATCH v2 1/1] mm: firmware"


def test_on_tree_borrows_objects_and_leaves_the_tree_alone(tmp_path):
    tree = tmp_path / "tree"
    env = {"GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1", "PATH": "/usr/bin:/bin"}
    subprocess.run(["git", "init", "-q", "-b", "main", str(tree)], check=True, env=env)
    (tree / "mm").mkdir()
    (tree / "mm/rmap.c").write_text(RMAP)
    ident = ["-c", "user.name=T", "-c", "user.email=t@example.org"]
    subprocess.run(["git", "-C", str(tree), "add", "."], check=True, env=env)
    subprocess.run(["git", "-C", str(tree), *ident, "commit", "-qm", "base"], check=True, env=env)
    objects = sorted(p for p in (tree / ".git/objects").rglob("*") if p.is_file())
    w = SeriesWriter.on_tree(tree, "main", tmp_path / "author")
    p = w.write(Revision(1, "mm: t", TWO))
    assert p.base == str(pygit2.Repository(str(tree)).revparse_single("main").id)
    assert sorted(p for p in (tree / ".git/objects").rglob("*") if p.is_file()) == objects
    assert [b for b in pygit2.Repository(str(tree)).branches.local] == ["main"]


def test_handmade_mail():
    assert handmade_mail("[PATCH] x", "body\n", "Jane Dev <jane@example.org>") == (
        "From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\nFrom: Jane Dev <jane@example.org>\n"
        "Date: Mon, 05 Jan 2026 10:00:00 +0000\nSubject: [PATCH] x\n\nbody\n\n"
    )
