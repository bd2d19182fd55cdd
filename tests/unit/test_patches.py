"""bot/patches.py, the one patch model: subjects through b4, diffs through unidiff, am-ready mboxes."""

from __future__ import annotations

import pytest

from bot.errors import BadInput
from bot.patches import (
    DiffError,
    clean_subject,
    diff_problem,
    is_series_root,
    parse_diff,
    parse_mbox,
    parse_subject,
    touched_paths,
)

HUNK = "@@ -1,3 +1,3 @@ static bool try_to_unmap_one(struct folio *folio,\n a\n-b\n+c\n d\n"
DIFF = f"diff --git a/mm/rmap.c b/mm/rmap.c\nindex 1234567..89abcde 100644\n--- a/mm/rmap.c\n+++ b/mm/rmap.c\n{HUNK}"


@pytest.mark.parametrize("subject, revision, counter, expected, clean", [
    ("[PATCH v2 3/4] mm: x", 2, 3, 4, "mm: x"),
    ("[PATCHv3 0/2] mm: x", 3, 0, 2, "mm: x"),
    ("[RFC PATCH v2 1/1] mm: [not a prefix]", 2, 1, 1, "mm: [not a prefix]"),
    ("[PATCH mm-new v5 02/12] mm:\n folded", 5, 2, 12, "mm: folded"),
    ("[PATCH] mm: lone", 1, 1, 1, "mm: lone"),
])
def test_subjects_read_as_b4_reads_them(subject: str, revision: int, counter: int, expected: int,
                                        clean: str) -> None:
    s = parse_subject(subject)
    assert (s.revision, s.counter, s.expected) == (revision, counter, expected)
    assert clean_subject(subject) == clean


def test_series_roots() -> None:
    assert is_series_root("[PATCH 0/3] mm: x") and is_series_root("[PATCH] mm: lone")
    assert not is_series_root("[PATCH 2/3] mm: x") and not is_series_root("Re: [PATCH 0/3] mm: x")
    assert not is_series_root("[GIT PULL] mm") and not is_series_root("mm: no brackets")


def test_diff_files_preimage_and_hunks() -> None:
    (f,) = parse_diff("commit message\n---\n mm/rmap.c | 2 +-\n\n" + DIFF + "-- \n2.47.2\n")
    assert (f.old, f.new, f.preimage, f.binary) == ("mm/rmap.c", "mm/rmap.c", "1234567", False)
    (h,) = f.hunks
    assert (h.old_start, h.old_len, h.new_start, h.new_len, h.func) == (1, 3, 1, 3, "try_to_unmap_one")
    assert h.header == "@@ -1,3 +1,3 @@ static bool try_to_unmap_one(struct folio *folio,"
    assert h.lines == [(" ", "a"), ("-", "b"), ("+", "c"), (" ", "d")]


def test_new_deleted_renamed_binary() -> None:
    new = "diff --git a/mm/n.c b/mm/n.c\nnew file mode 100644\nindex 0000000..1111111\n--- /dev/null\n" \
          "+++ b/mm/n.c\n@@ -0,0 +1 @@\n+x\n"
    gone = "diff --git a/mm/g.c b/mm/g.c\ndeleted file mode 100644\nindex 2222222..0000000\n--- a/mm/g.c\n" \
           "+++ /dev/null\n@@ -1 +0,0 @@\n-x\n"
    moved = "diff --git a/mm/a.c b/mm/b.c\nsimilarity index 100%\nrename from mm/a.c\nrename to mm/b.c\n"
    binary = "diff --git a/mm/x.bin b/mm/x.bin\nindex 3333333..4444444 100644\nGIT binary patch\nliteral 1\n" \
             "Ic${V!0000\n\n"
    n, g, m, b = parse_diff(new + gone + moved + binary)
    assert (n.old, n.new, n.preimage) == (None, "mm/n.c", None)
    assert (g.old, g.new, g.preimage) == ("mm/g.c", None, "2222222")
    assert (m.old, m.new, m.hunks) == ("mm/a.c", "mm/b.c", [])
    assert [h.header for h in n.hunks + g.hunks] == ["@@ -0,0 +1 @@", "@@ -1 +0,0 @@"]
    assert b.binary and b.new == "mm/x.bin"
    assert touched_paths(new + moved) == ["mm/n.c", "mm/a.c", "mm/b.c"]


def test_rename_lines_win_over_the_diff_git_line() -> None:
    """git apply obeys `rename to`, so the path checks must see it, whatever `diff --git` claims."""
    (f,) = parse_diff("diff --git a/mm/rmap.c b/mm/rmap.c\nrename from mm/rmap.c\nrename to ../outside.c\n")
    assert f.new == "../outside.c"


def test_a_removed_line_that_looks_like_a_header_stays_a_line() -> None:
    (f,) = parse_diff("--- a/x.c\n+++ b/x.c\n@@ -1,3 +1,2 @@\n a\n--- /etc/passwd\n b\n")
    assert f.hunks[0].lines == [(" ", "a"), ("-", "-- /etc/passwd"), (" ", "b")]


def test_truncated_hunk_is_an_error_that_says_where() -> None:
    cut = DIFF[: DIFF.index("+c")]
    assert diff_problem(cut) == "hunk at line 5 of the diff for mm/rmap.c ends early (message truncated?)"
    with pytest.raises(DiffError, match="ends early"):
        touched_paths(DIFF.replace(" d\n", ""))
    assert diff_problem(DIFF) is None
    assert diff_problem("no diff at all\n") is None and touched_paths("I forgot the diff.\n--- \n2.39\n") == []


def mail(subject: str, body: str, msgid: str) -> str:
    return f"From x Thu Jan  1 00:00:00 1970\nMessage-ID: <{msgid}>\nSubject: {subject}\n\n{body}\n\n"


def test_mbox_in_counter_order_cover_apart_replies_and_resends_left_out() -> None:
    box = (mail("[PATCH v2 0/2] cover", "blurb\n\nbase-commit: 0123456789abcdef\n", "c@x")
           + mail("[PATCH v2 2/2] mm: second", DIFF.replace("+c", "+two"), "p2@x")
           + mail("Re: [PATCH v2 1/2] mm: first", "> " + DIFF, "r@x")
           + mail("[PATCH v2 1/2] mm: first", DIFF, "p1@x")
           + mail("[PATCH v2 1/2] mm: first, again", DIFF.replace("+c", "+again"), "p1b@x"))
    series = parse_mbox(box.encode())
    assert [(p.index, p.subject, p.message_id) for p in series.patches] == [
        (1, "mm: first", "p1@x"), (2, "mm: second", "p2@x")]
    assert series.cover is not None and series.base_commit == "0123456789abcdef"
    assert series.paths() == ["mm/rmap.c"] and "+two" in series.bodies()[1]
    assert series.patches[0].raw.startswith(b"Message-ID: <p1@x>")


def test_mbox_with_a_broken_patch_or_none_is_bad_input(tmp_path) -> None:
    with pytest.raises(BadInput, match="patch 1 'mm: cut': hunk at line 5"):
        parse_mbox(mail("[PATCH] mm: cut", DIFF[: DIFF.index("+c")], "a@x").encode())
    with pytest.raises(BadInput, match="holds no patches"):
        parse_mbox(mail("[PATCH 0/1] cover only", "blurb", "c@x").encode())
    with pytest.raises(BadInput, match="cannot read mbox"):
        parse_mbox(tmp_path / "missing.mbx")


@pytest.mark.parametrize("value", [
    "=?utf-8?q?Troll=0ABcc:_x?= <t@example.org>",  # an encoded CR/LF in the name
    "=?utf-8?b?DQo9P3V0Zi04P3E/eD0wQXk/PQ==?= <t@example.org>",  # decodes to CR LF and another encoded CR/LF
])
def test_a_hostile_from_header_becomes_readable_for_b4(value: str) -> None:
    import email
    import email.policy

    import b4

    from bot.patches import sanitize_headers

    raw = f"From: {value}\nMessage-ID: <h@x>\nSubject: [PATCH] x\n\nbody\n".encode()
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert sanitize_headers(msg) == ["From"]
    assert "t@example.org" in str(msg["from"]) and "\n" not in str(msg["from"])
    b4.LoreMessage(msg)  # b4 reads every From: header: it must not raise
