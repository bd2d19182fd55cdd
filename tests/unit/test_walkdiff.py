"""walkdiff: walk exits of try_to_unmap_one() and friends, revision against revision.

Real data: the v4 "batched unmap for lazyfree large folios" thread in ../shared/lore. Synthetic data: small
kernel-style files modelled on try_to_unmap_one(), diffed in-process into patch emails (no processes).
"""

# ruff: noqa: E101  (the C samples are kernel style: tabs, then spaces to align)
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import pytest

from bot.config import WalkdiffConfig
from bot.patches import parse_mbox
from bot.report.walkdiff_text import render_text
from bot.results import WalkdiffResult as StageResult
from bot.walkdiff import walkdiff_hunks as hunks_of_bodies
from bot.walkdiff import walkdiff_tree
from bot.walkdiff.exits import analyse_source
from bot.walkdiff.fragments import analyse_fragment


def patch_bodies(mbox: bytes) -> list[str]:
    return parse_mbox(mbox).bodies()


def walkdiff_hunks(mbox: bytes | list[str], prev: bytes | list[str] | None, config: WalkdiffConfig,
                   **kw: str) -> StageResult:
    """Hunks mode on mboxes (or patch bodies), as the stage reads them."""
    def bodies(m: bytes | list[str]) -> list[str]:
        return patch_bodies(m) if isinstance(m, bytes) else m

    return hunks_of_bodies(bodies(mbox), bodies(prev) if prev is not None else None, config, **kw)

LORE = Path(__file__).resolve().parents[2].parent / "shared" / "lore" / "barry-lazyfree-v4.mbox"
CFG = WalkdiffConfig()

# ---- synthetic revisions of mm/rmap.c ----

HELPER_V1 = """\
static inline bool can_batch(struct folio *folio, pte_t *ptep)
{
	if (!folio_test_anon(folio) || folio_test_swapbacked(folio))
		return false;
	return true;
}
"""

HELPER_V2 = """\
static inline bool can_batch(struct folio *folio, pte_t *ptep)
{
	int max_nr = folio_nr_pages(folio);

	if (!folio_test_anon(folio) || folio_test_swapbacked(folio))
		return false;
	return folio_pte_batch(folio, ptep, max_nr) == max_nr;
}
"""

OTHER = """\
static int other_helper(int x)
{
	return x + 1;
}
"""

UNMAP = """\
static bool try_to_unmap_one(struct folio *folio, struct vm_area_struct *vma,
		     unsigned long address, void *arg)
{
	struct mm_struct *mm = vma->vm_mm;
	DEFINE_FOLIO_VMA_WALK(pvmw, folio, vma, address, 0);
	enum ttu_flags flags = (enum ttu_flags)(long)arg;
	unsigned long nr_pages = 1;
	bool ret = true;
	int i;

	while (page_vma_mapped_walk(&pvmw)) {
		pte_t pteval = ptep_get(pvmw.pte);

		if (!pvmw.pte) {
			if (unmap_huge_pmd_locked(vma, pvmw.address, pvmw.pmd, folio))
				goto walk_done;
			if (flags & TTU_SPLIT_HUGE_PMD) {
				split_huge_pmd_locked(vma, pvmw.address, pvmw.pmd, false);
				goto walk_abort;
			}
		}

		if (folio_test_large(folio) && can_batch(folio, pvmw.pte))
			nr_pages = folio_nr_pages(folio);

		for (i = 0; i < nr_pages; i++) {
			if (pte_dirty(pteval))
				break;
		}

		switch (flags) {
		case TTU_SYNC:
			break;
		default:
			break;
		}

		if (folio_test_dirty(folio)) {
			set_ptes(mm, address, pvmw.pte, pteval, nr_pages);
			folio_set_swapbacked(folio);
			goto REDIRTY_LABEL;
		}

		folio_put(folio);
EXIT_LINES		continue;
walk_abort:
		ret = false;
walk_done:
		page_vma_mapped_walk_done(&pvmw);
		break;
	}
	return ret;
}
"""

EXIT_V1 = """\
		/* We have already batched the entire folio */
		if (nr_pages > 1)
			goto walk_done;
"""

EXIT_V2 = """\
		/*
		 * If we are sure that we batched the entire folio,
		 * we can stop the walk.
		 */
		if (nr_pages == folio_nr_pages(folio))
			goto walk_done;
"""


def rmap(exit_lines: str = "", helper: str = HELPER_V1, other: str = OTHER, redirty: str = "walk_done") -> str:
    body = UNMAP.replace("EXIT_LINES", exit_lines).replace("REDIRTY_LABEL", redirty)
    return f"#include <linux/rmap.h>\n\n{helper}\n{other}\n{body}"


BASE = rmap()
V1 = rmap(EXIT_V1)
V2 = rmap(EXIT_V2, HELPER_V2)
V3 = rmap(EXIT_V2, HELPER_V2, redirty="walk_abort")


def git_diff(path: str, old: str, new: str) -> str:
    """A git-style diff whose hunk headers name the enclosing function, as git does for the kernel."""
    a, b = old.splitlines(), new.splitlines()
    out = [f"diff --git a/{path} b/{path}", f"--- a/{path}", f"+++ b/{path}"]
    for line in list(difflib.unified_diff(a, b, lineterm="", n=3))[2:]:
        if line.startswith("@@"):
            start = int(line.split()[1].lstrip("-").split(",")[0])
            heads = [s for s in a[: max(start - 1, 0)] if (s[:1].isalpha() or s[:1] == "_") and "(" in s]
            func = heads[-1] if heads else ""  # like the kernel's `*.c diff=cpp`: no labels
            line = f"{line} {func}".rstrip()
        out.append(line)
    return "\n".join(out) + "\n"


def mbox(version: int, diffs: list[str]) -> bytes:
    """An am-ready mbox: one message per patch, like b4 am writes."""
    msgs = []
    for i, diff in enumerate(diffs, 1):
        msgs.append(
            f"From walkdiff@test Thu Jan  1 00:00:00 1970\nFrom: Dev <dev@example.org>\n"
            f"Subject: [PATCH v{version} {i}/{len(diffs)}] mm: patch {i}\n\n"
            f"Body.\n\nSigned-off-by: Dev <dev@example.org>\n---\n{diff}-- \n2.39.5\n\n"
        )
    return "".join(msgs).encode()


def fn(stage: StageResult, name: str = "try_to_unmap_one") -> dict[str, Any]:
    return next(f for f in stage.functions if f["name"] == name)


def changed(f: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in f["exits"] if e["change"] != "unchanged"]


# ---- the real v4 thread ----


@pytest.fixture(scope="module")
def v4() -> StageResult:
    return walkdiff_hunks(LORE.read_bytes(), None, CFG, revision="v4")


def test_v4_only_patch_messages_are_used() -> None:
    bodies = patch_bodies(LORE.read_bytes())
    assert len(bodies) == 4  # 1/4..4/4; the cover letter and the Re: replies with quoted diffs are not
    assert "can_batch_unmap_folio_ptes" in bodies[2] and "unmap_huge_pmd_locked" in bodies[3]


def test_v4_patch3_nr_pages_walk_done(v4: StageResult) -> None:
    assert v4.status == "ok" and v4.mode == "hunks" and v4.partial is True
    f = fn(v4)
    assert f["parse_errors"] is False
    done = [e for e in f["exits"] if e["after"] and e["after"]["condition"] == "nr_pages > 1"]
    assert len(done) == 1
    e = done[0]
    assert (e["change"], e["kind"], e["target"]) == ("added", "goto", "walk_done")
    assert e["after"]["comment"] == "We have already batched the entire folio"
    feeds = " | ".join(e["after"]["feeds"])
    assert "nr_pages = folio_nr_pages(folio)" in feeds and "can_batch_unmap_folio_ptes" in feeds
    assert "can_batch_unmap_folio_ptes" in f["helpers_changed"]


def test_v4_patch4_pmd_mapped_thp(v4: StageResult) -> None:
    f = fn(v4)
    pmd = [e for e in f["exits"] if e["after"] and "folio_test_swapbacked" in e["after"]["condition"]]
    by_target = {e["target"]: e for e in pmd}
    done, abort = by_target["walk_done"], by_target["walk_abort"]
    assert done["change"] == "changed" and done["what"] == ["condition"]
    assert done["before"]["condition"] == "!pvmw.pte && unmap_huge_pmd_locked(vma, pvmw.address, pvmw.pmd, folio)"
    assert done["after"]["condition"] == (
        "!pvmw.pte && folio_test_anon(folio) && !folio_test_swapbacked(folio)"
        " && unmap_huge_pmd_locked(vma, pvmw.address, pvmw.pmd, folio)"
    )
    assert abort["change"] == "added"
    assert abort["after"]["condition"] == "!pvmw.pte && folio_test_anon(folio) && !folio_test_swapbacked(folio)"
    assert abort["after"]["comment"].startswith("unmap_huge_pmd_locked has either already marked")
    # the helper patch 4/4 rewrote in mm/huge_memory.c, and the one it calls
    assert f["helpers_changed"][-2:] == ["unmap_huge_pmd_locked", "__discard_anon_folio_pmd_locked"]


def test_v4_guard_outside_hunk_is_unknown(v4: StageResult) -> None:
    # patch 1/4's hunk starts deep inside `if (!folio_test_swapbacked(folio)) {`: the trailing
    # `goto discard` is guarded by code the hunk does not show
    f = fn(v4)
    discard = [e for e in f["exits"] if e["target"] == "discard" and e["after"]]
    assert [e["after"]["condition"] for e in discard] == ["unknown"]
    text = render_text(v4)
    assert "goto walk_done   if (nr_pages > 1)" in text
    assert "if (<outside hunk>)" in text and "(from the patch hunks only" in text


# ---- synthetic revisions, tree mode ----


def test_tree_v1_against_base_adds_walk_done() -> None:
    r = walkdiff_tree({"mm/rmap.c": BASE}, {"mm/rmap.c": V1}, CFG, against="base", revision="v1")
    f = fn(r)
    assert [(e["change"], e["target"], e["after"]["condition"]) for e in changed(f)] == [
        ("added", "walk_done", "nr_pages > 1")
    ]
    assert changed(f)[0]["after"]["feeds"] == [
        "unsigned long nr_pages = 1",
        "if (folio_test_large(folio) && can_batch(folio, pvmw.pte)) nr_pages = folio_nr_pages(folio)",
    ]


def test_tree_condition_change_same_target() -> None:
    r = walkdiff_tree({"mm/rmap.c": V1}, {"mm/rmap.c": V2}, CFG, against="v1", revision="v2")
    f = fn(r)
    (e,) = changed(f)
    assert (e["change"], e["kind"], e["target"]) == ("changed", "goto", "walk_done")
    assert e["before"]["condition"] == "nr_pages > 1"
    assert e["after"]["condition"] == "nr_pages == folio_nr_pages(folio)"
    assert set(e["what"]) == {"condition", "comment"}
    assert f["helpers_changed"] == ["can_batch"]
    text = render_text(r)
    assert "try_to_unmap_one(): walk exits v1 -> v2" in text
    assert "~ goto walk_done   if (nr_pages > 1)   ->   if (nr_pages == folio_nr_pages(folio))" in text
    assert 'comment: "We have already batched the entire folio" -> "If we are sure' in text


def test_tree_target_change_walk_done_to_walk_abort() -> None:
    r = walkdiff_tree({"mm/rmap.c": V2}, {"mm/rmap.c": V3}, CFG, against="v2", revision="v3")
    (e,) = changed(fn(r))
    assert (e["change"], e["what"]) == ("changed", ["target"])
    assert (e["before"]["target"], e["after"]["target"], e["target"]) == ("walk_done", "walk_abort", "walk_abort")
    assert e["after"]["condition"] == "folio_test_dirty(folio)"
    assert "~ goto walk_done -> walk_abort   if (folio_test_dirty(folio))" in render_text(r)


def test_tree_exit_model() -> None:
    f = analyse_source(V3, CFG.labels)["try_to_unmap_one"]
    got = [(e.kind, e.target, e.condition) for e in f.exits]
    assert got == [
        ("goto", "walk_done", "!pvmw.pte && unmap_huge_pmd_locked(vma, pvmw.address, pvmw.pmd, folio)"),
        ("goto", "walk_abort", "!pvmw.pte && flags & TTU_SPLIT_HUGE_PMD"),
        ("goto", "walk_abort", "folio_test_dirty(folio)"),
        ("goto", "walk_done", "nr_pages == folio_nr_pages(folio)"),
        ("call", "page_vma_mapped_walk_done", ""),
        ("break", "walk loop", ""),  # the inner for/switch breaks are not walk exits
    ]
    assert f.parse_errors is False


def test_tree_unchanged_and_skipped() -> None:
    r = walkdiff_tree({"mm/rmap.c": V2}, {"mm/rmap.c": V2}, CFG, touched=["try_to_unmap_one"], revision="v3")
    assert r.status == "ok" and "walk exits unchanged" in render_text(r)
    other = rmap(EXIT_V2, HELPER_V2, other=OTHER.replace("x + 1", "x + 2"))
    s = walkdiff_tree({"mm/rmap.c": V2}, {"mm/rmap.c": other}, CFG, against="v2", revision="v3")
    assert s.status == "skipped" and "touches no walk function (other_helper)" in s.detail
    assert "walk exits: skipped" in render_text(s)


# ---- synthetic revisions, hunks mode ----


def test_hunks_condition_change_same_target() -> None:
    v1 = mbox(1, [git_diff("mm/rmap.c", BASE, V1)])
    # v2 in two patches: the helper first, then the exit, so the replay must stack them
    mid = rmap(EXIT_V1, HELPER_V2)
    v2 = mbox(2, [git_diff("mm/rmap.c", BASE, mid), git_diff("mm/rmap.c", mid, V2)])
    first = walkdiff_hunks(v1, None, CFG, revision="v1")
    assert [(e["change"], e["after"]["condition"]) for e in changed(fn(first))] == [("added", "nr_pages > 1")]
    r = walkdiff_hunks(v2, v1, CFG, revision="v2", against="v1")
    f = fn(r)
    (e,) = changed(f)
    assert (e["change"], e["target"]) == ("changed", "walk_done")
    assert (e["before"]["condition"], e["after"]["condition"]) == ("nr_pages > 1", "nr_pages == folio_nr_pages(folio)")
    assert f["helpers_changed"] == []  # the call to can_batch() feeding nr_pages is outside every hunk
    assert r.partial is True and r.against == "v1"


def test_hunks_target_change_walk_done_to_walk_abort() -> None:
    v2 = mbox(2, [git_diff("mm/rmap.c", BASE, V2)])
    v3 = mbox(3, [git_diff("mm/rmap.c", BASE, V3)])
    r = walkdiff_hunks(v3, v2, CFG, revision="v3", against="v2")
    (e,) = changed(fn(r))
    assert (e["change"], e["before"]["target"], e["after"]["target"]) == ("changed", "walk_done", "walk_abort")
    assert e["after"]["condition"] == "folio_test_dirty(folio)"


def test_hunks_if_before_hunk_gives_unknown() -> None:
    long_if = V2.replace(
        "\t\t\tfolio_set_swapbacked(folio);\n",
        "\t\t\tfolio_set_swapbacked(folio);\n\t\t\ta();\n\t\t\tb();\n\t\t\tc();\n",
    )
    changed_goto = long_if.replace(
        "goto walk_done;\n\t\t}\n\n\t\tfolio_put", "goto walk_abort;\n\t\t}\n\n\t\tfolio_put"
    )
    r = walkdiff_hunks(mbox(3, [git_diff("mm/rmap.c", long_if, changed_goto)]), None, CFG, revision="v3")
    conds = {(e["change"], e["target"]): (e["before"] or e["after"])["condition"] for e in changed(fn(r))}
    assert conds == {("removed", "walk_done"): "unknown", ("added", "walk_abort"): "unknown"}


# ---- bad inputs ----


def test_parse_errors_reported_and_other_functions_kept() -> None:
    broken = V2.replace("\t\tfolio_put(folio);\n", "\t\tfolio_put(folio) +* / ;;; ) ]\n")
    r = walkdiff_tree({"mm/rmap.c": V1}, {"mm/rmap.c": broken}, CFG, against="v1", revision="v2")
    f = fn(r)
    assert f["parse_errors"] is True and any("could not parse" in n for n in f["notes"])
    assert any(e["after"] and e["after"]["target"] == "walk_abort" for e in f["exits"])
    assert r.status == "ok"


def test_rename_and_move_are_reported() -> None:
    renamed = V2.replace("try_to_unmap_one(", "try_to_unmap_one_batched(")
    r = walkdiff_tree({"mm/rmap.c": V2}, {"mm/rmap.c": renamed}, CFG, against="v2", revision="v3")
    (f,) = r.functions or []
    assert f["name"] == "try_to_unmap_one_batched" and f["renamed_from"] == "try_to_unmap_one"
    assert all(e["change"] == "unchanged" for e in f["exits"])
    moved = walkdiff_tree(
        {"mm/rmap.c": V2},
        {"mm/rmap.c": rmap(helper=HELPER_V2).split("static bool")[0], "mm/unmap.c": V2},
        CFG,
        against="v2",
        revision="v3",
        touched=["try_to_unmap_one"],
    )
    g = fn(moved)
    assert g["moved_from"] == "mm/rmap.c" and g["file"] == "mm/unmap.c"
    assert "moved from mm/rmap.c to mm/unmap.c" in render_text(moved)


def test_label_removed_altogether() -> None:
    no_abort = V3.replace("walk_abort:\n\t\tret = false;\n", "").replace("goto walk_abort;", "goto walk_done;")
    r = walkdiff_tree({"mm/rmap.c": V3}, {"mm/rmap.c": no_abort}, CFG, against="v3", revision="v4")
    f = fn(r)
    assert "label walk_abort removed" in f["notes"]
    assert sorted((e["change"], e["before"]["target"], e["after"]["target"]) for e in changed(f)) == [
        ("changed", "walk_abort", "walk_done"),
        ("changed", "walk_abort", "walk_done"),
    ]


def test_for_each_macro_loop() -> None:
    src = """
static void sg_walk(struct scatterlist *sgl, int n)
{
	struct scatterlist *sg;
	int i, j;

	for_each_sg(sgl, sg, n, i) {
		if (!sg)
			break;
		for (j = 0; j < n; j++)
			if (j == i)
				break;
		if (sg_is_last(sg))
			goto out;
	}
out:
	return;
}
"""
    f = analyse_source(src, CFG.labels)["sg_walk"]
    assert f.has_walk_loop and f.parse_errors is False
    assert [(e.kind, e.target, e.condition) for e in f.exits] == [
        ("break", "walk loop", "!sg"),
        ("goto", "out", "sg_is_last(sg)"),
    ]


def test_kernel_macros_still_find_functions() -> None:
    src = "static __always_inline bool f(void)\n{\n\tguard(spinlock)(&l);\n\treturn true;\n}\n" + V2
    funcs = analyse_source(src, CFG.labels)
    assert {"f", "can_batch", "other_helper", "try_to_unmap_one"} <= set(funcs)


def test_fragment_starting_mid_condition() -> None:
    frag = "\t\t    folio))\n\t\t\tgoto walk_done;\n\t\tif (x) {\n\t\t\tgoto walk_abort;\n"
    m = analyse_fragment(frag, "try_to_unmap_one", 100, CFG.labels)
    assert [(e.target, e.condition, e.line) for e in m.exits] == [
        ("walk_done", "unknown", 101),
        ("walk_abort", "x", 103),
    ]


def test_garbage_mbox_is_skipped_not_crashing() -> None:
    r = walkdiff_hunks(b"From x\nSubject: hello\n\nnot a patch\n", None, CFG)
    assert r.status == "skipped"


def test_patch_subjects_cover_replies_and_resends() -> None:
    diff = git_diff("mm/rmap.c", BASE, V1)

    def msg(subject: str, body: str) -> str:
        return f"From x Thu Jan  1 00:00:00 1970\nSubject: {subject}\n\n{body}\n\n"

    box = (
        msg("[RFC PATCH v2 0/2] cover", diff)
        + msg("[RFC PATCH v2 2/2] second", diff.replace("nr_pages > 1", "nr_pages > 2"))
        + msg("Re: [RFC PATCH v2 1/2] first", "> " + diff)
        + msg("[RFC PATCH v2 1/2] first", diff)
        + msg("[RFC PATCH v2 1/2] first (sent twice)", diff.replace("nr_pages > 1", "nr_pages > 3"))
    )
    bodies = patch_bodies(box.encode())
    assert len(bodies) == 2 and "nr_pages > 1" in bodies[0] and "nr_pages > 2" in bodies[1]


def test_fragment_ending_in_a_label_parses() -> None:
    m = analyse_fragment("\t\tif (nr_pages > 1)\n\t\t\tgoto walk_done;\n\t\tcontinue;\nwalk_abort:", "f", 1, CFG.labels)
    assert m.parse_errors is False and [e.condition for e in m.exits] == ["nr_pages > 1"]


def test_v4_patch1_else_if_is_negated(v4: StageResult) -> None:
    # patch 1/4: `if (dirty && !droppable) { ...; goto walk_abort; } else if (ref_count != 1 + map_count) { ... }`
    aborts = [e["after"]["condition"] for e in fn(v4)["exits"] if e["after"] and e["target"] == "walk_abort"]
    assert "folio_test_dirty(folio) && !(vma->vm_flags & VM_DROPPABLE)" in aborts
    assert "!(folio_test_dirty(folio) && !(vma->vm_flags & VM_DROPPABLE)) && ref_count != 1 + map_count" in aborts


def test_comment_only_change_above_an_exit_is_a_change() -> None:
    before = """static bool try_to_unmap_one(struct folio *folio)
{
\twhile (page_vma_mapped_walk(&pvmw)) {
\t\t/* We batched the whole folio. */
\t\tif (nr_pages == folio_nr_pages(folio))
\t\t\tgoto walk_done;
\t}
walk_done:
\treturn true;
}
"""
    after = before.replace("/* We batched the whole folio. */", "/* We batched the whole folio; never past a table. */")
    stage = walkdiff_tree({"mm/rmap.c": before}, {"mm/rmap.c": after}, WalkdiffConfig())
    assert stage.status == "ok", stage.detail
    (ex,) = stage.functions[0]["exits"]
    assert ex["change"] == "changed" and ex["before"]["condition"] == ex["after"]["condition"]
    assert ex["before"]["comment"] == "We batched the whole folio."
    assert ex["after"]["comment"] == "We batched the whole folio; never past a table."
