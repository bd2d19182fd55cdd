"""Rendering the review summary: pure functions over typed results (loaded from result.json), no processes."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jinja2
import pytest

from bot.report import verdict as report
from bot.report.verdict import verdict_digest
from bot.report.view import EXAMPLE_CONTEXT, Context, environment, render_examples
from bot.report.view import render as render_typed
from bot.report.view import view as view_typed
from bot.results import RevisionResult, SeriesSummary

EXAMPLES = Path(__file__).resolve().parents[2] / "templates" / "examples"
CTX = Context(operator="ops@example.org")


def example(name: str) -> dict:
    return json.loads((EXAMPLES / "inputs" / f"{name}.json").read_text())


def fresh() -> dict:
    """A revision straight after fetch: every later stage not run."""
    r = RevisionResult("c@x", 2, "[PATCH v2 0/1] mm: x", "A <a@x>", "2025-06-01T00:00:00+00:00", [], ["requested"])
    return r.to_json()


SERIES = {"slug": "s", "subject": "x", "author": "a", "requested": "c@x",
          "revisions": [{"version": 1, "message_id": "p@x", "found_by": "search"},
                        {"version": 2, "message_id": "c@x", "found_by": "requested"}]}


def typed(result: dict, series: dict | None = None) -> tuple[RevisionResult, SeriesSummary]:
    return RevisionResult.from_json(result), SeriesSummary.from_json(series or SERIES)


def render(result: dict, series: dict, ctx: Context, arches: list[str] | None = None, reply_id: str = "") -> str:
    """render() on result.json / series.json as written to disk."""
    return render_typed(*typed(result, series), ctx, arches, reply_id=reply_id)


def view(result: dict, series: dict, ctx: Context) -> dict:
    return view_typed(*typed(result, series), ctx)


def digest(slug: str, result: dict) -> str:
    return verdict_digest(SeriesSummary.from_json(SERIES | {"slug": slug}), RevisionResult.from_json(result))


def test_examples_are_up_to_date(tmp_path: Path) -> None:
    """templates/examples/*.txt are what `python -m bot.report.view --examples templates/examples` writes."""
    (tmp_path / "inputs").symlink_to(EXAMPLES / "inputs")
    written = render_examples(tmp_path, tmp_path)
    assert {p.name for p in written} == {"pass.txt", "new-warnings.txt", "stress-failure.txt", "apply-failure.txt",
                                         "selftest-failure.txt"}
    for p in written:
        hint = "regenerate: .venv/bin/python -m bot.report.view --examples templates/examples"
        assert p.read_text() == (EXAMPLES / p.name).read_text(), hint


@pytest.mark.parametrize("name", ["pass", "new-warnings", "stress-failure", "apply-failure", "selftest-failure"])
def test_prose_wrapped_at_72_code_and_logs_not(name: str) -> None:
    data = example(name)
    text = render(data["result"], data["series"], EXAMPLE_CONTEXT, data["arches"], reply_id="r@x")
    for line in text.splitlines():
        if len(line) > 72:  # only links, compiler output and console excerpts may be longer
            assert "https://" in line or line.startswith((">> ", "    ", "  x86_64: WARNING")), line
    assert "<html" not in text.lower()
    assert text.endswith("list; it will not mail you again.\n")
    assert "\n-- \n" in text  # signature separator


def test_passing_verdict() -> None:
    data = example("pass")
    first = render(data["result"], data["series"], CTX, data["arches"]).split("\n\n")[0]
    assert " ".join(first.split()) == "mm-review-bot: v3 applied, built on x86_64/arm64, boot + reclaim stress PASS"


def test_fresh_revision_says_what_did_not_run_and_nothing_about_it() -> None:
    text = render(fresh(), SERIES, CTX, ["x86_64", "arm64"])
    assert text.startswith("mm-review-bot: v2 not applied (apply not run)\n")
    body = text.split("\n-- \n")[0].lower()
    for word in ("built", "compiler", "warning", "boot", "stress", "console", "walk exits", "none"):
        assert word not in body, word  # stages that did not run are not summarised (least of all as "none")
    assert "bot check '<c@x>'" in text


def test_an_applied_revision_not_built_says_so() -> None:
    data = fresh()
    data["stages"]["apply"] = {"status": "ok", "detail": "1 patch applied"}
    text = render(data, SERIES, CTX)
    assert text.startswith("mm-review-bot: v2 applied, not built, not booted\n")
    assert "compiler" not in text and "New compiler warnings" not in text


def test_the_apply_failure_reply_says_why_and_nothing_about_builds_or_consoles() -> None:
    """The demo's real v5: patch 2 does not apply on the base it was tried on."""
    data = example("apply-failure")
    text = render(data["result"], data["series"], EXAMPLE_CONTEXT, data["arches"], reply_id="r@x")
    assert text.startswith("mm-review-bot: v5 does not apply (patch 2)\n\n")
    assert "apply failed: patch 2 'mm/rmap: count page table crossings of mlocked\nfolios' does not apply at" in text
    assert "base tried: 944843b7de71 (chosen by: branch:debian/7.2.13-1)" in text
    assert "base-commit 06fdf769ed4c74442a9b74f0d4227bc8e7efb622 (caller)" in text
    body = text.split("\n-- \n")[0]
    for word in ("build", "built", "boot", "console", "stress", "compiler", "config:", "warning", "skipped",
                 "not run", "x86_64:", "arm64:", "Reported-by", "Closes"):
        assert word not in body, word
    assert "try_to_unmap_one(): walk exits v4 -> v5" in text  # the walk diff ran (from the hunks): it is told
    assert len(text.splitlines()) < 32


def test_sections_with_nothing_to_report_are_left_out() -> None:
    data = example("pass")
    text = render(data["result"], data["series"], EXAMPLE_CONTEXT, data["arches"], reply_id="r@x")
    assert "  x86_64: built (11 s), booted (14 s), reclaim stress PASS 4/4\n" in text
    assert "  arm64:  built (6.9 s), booted (14 s), reclaim stress PASS 4/4\n" in text
    for gone in ("New compiler warnings", "console", "PASS\n  x86_64", "skipped", "not run", "Reported-by"):
        assert gone not in text, gone
    old = (EXAMPLES / "pass.txt").read_text()
    assert len(text.splitlines()) == len(old.splitlines()) < 45


def test_reproduce_is_one_short_line_per_arch_and_the_dashboard_link() -> None:
    data = example("new-warnings")
    text = render(data["result"], data["series"], EXAMPLE_CONTEXT, data["arches"], reply_id="r@x")
    block = text[text.index("Details, logs and configs:"):text.index("\n\n", text.index("Reproduce:"))]
    slug = data["series"]["slug"]
    assert block.splitlines() == [
        "Details, logs and configs:",
        f"  https://mm-bot.example.org/series/{slug}/index.html#v4",
        "Reproduce:",
        "  bot check '<20260126100000.4204-1-ada@example.org>'",
        f"  x86_64: https://mm-bot.example.org/series/{slug}/v4/reproduce-x86_64.sh",
        f"  arm64:  https://mm-bot.example.org/series/{slug}/v4/reproduce-arm64.sh",
    ]
    assert "make ARCH" not in text and "qemu-system" not in text


def test_without_a_dashboard_url_the_reply_says_where_the_files_are() -> None:
    data = example("pass")
    ctx = Context(dashboard_dir="/srv/bot/dashboard")
    text = render(data["result"], data["series"], ctx, data["arches"])
    slug = data["series"]["slug"]
    assert ("Details, logs and configs (files on the bot's host, not published):\n"
            f"  /srv/bot/dashboard/series/{slug}/index.html (section v3)\n") in text
    assert f"  x86_64: /srv/bot/dashboard/series/{slug}/v3/reproduce-x86_64.sh\n" in text
    assert "https://" not in text


@pytest.mark.parametrize("name", ["new-warnings", "stress-failure"])
def test_failures_carry_the_tags_a_fix_should_use(name: str) -> None:
    data = example(name)
    reply = data["result"]["stages"]["report"]["message_id"]
    text = render(data["result"], data["series"], EXAMPLE_CONTEXT, data["arches"], reply_id=reply)
    tail = text.split("\n-- \n")[0].splitlines()[-2:]
    assert tail == ["Reported-by: mm-review-bot <mm-review-bot@example.org>",
                    f"Closes: https://lore.kernel.org/linux-mm/{reply}/"]


@pytest.mark.parametrize("name", ["pass", "apply-failure"])
def test_no_tags_without_a_failure_a_fix_would_answer(name: str) -> None:
    data = example(name)
    text = render(data["result"], data["series"], EXAMPLE_CONTEXT, data["arches"], reply_id="r@x")
    assert "Reported-by:" not in text and "Closes:" not in text


FINDING = {
    "kind": "warning",
    "first_line": "WARNING: CPU: 2 PID: 61 at mm/rmap.c:1912 try_to_unmap_one+0x6c4/0x8f0",
    "fingerprint": "WARNING:mm/rmap.c:try_to_unmap_one",
    "excerpt": "------------[ cut here ]------------\n"
               "WARNING: CPU: 2 PID: 61 at mm/rmap.c:1912 try_to_unmap_one+0x6c4/0x8f0\n"
               "RIP: 0010:try_to_unmap_one+0x6c4/0x8f0\nCall Trace:\n <TASK>\n rmap_walk_anon+0x11e/0x230\n </TASK>",
    "preexisting": False,
}


def test_new_warnings_grouped_by_patch_with_arrows() -> None:
    data = example("new-warnings")  # the demo's real v4: an unused variable added by patch 3
    text = render(data["result"], data["series"], CTX, data["arches"])
    assert "1 new warning" in text.split("\n\n")[0].replace("\n", " ")
    section = text[text.index("New compiler warnings (1)"):]
    assert section.splitlines()[2:5] == [
        "[PATCH v4 3/3] mm/rmap: use walk_abort when an mlocked folio crosses a",
        "page table",
        ">> mm/rmap.c:2002: unused variable 'crossed' [-Wunused-variable]",
    ]
    assert "only]" not in section  # seen on both arches
    assert report.blamed_patch(RevisionResult.from_json(data["result"])) == 3


def test_a_warning_seen_on_one_arch_says_so() -> None:
    data = example("new-warnings")
    x86 = data["result"]["stages"]["build"]["x86_64"]
    x86["new_warnings"].append({"file": "mm/rmap.c", "line": 1790, "where": "mm/rmap.c:1790",
                                "message": "'f' defined but not used", "kind": "warning",
                                "patch": {"index": 3}})
    text = render(data["result"], data["series"], CTX, data["arches"])
    assert "2 new warnings" in text.split("\n\n")[0].replace("\n", " ")
    assert ">> mm/rmap.c:1790: 'f' defined but not used [x86_64 only]" in text


def test_stress_failure_and_walk_exit_change() -> None:
    data = example("stress-failure")  # the demo's real v2: the re-injected out-of-bounds batched unmap
    text = render(data["result"], data["series"], CTX, data["arches"])
    first = text.split("\n\n")[0].replace("\n", " ")
    assert "reclaim stress FAIL on x86_64" in first and "reclaim stress FAIL on arm64" in first
    assert ("Reclaim stress scenarios that failed:\n  x86_64  pte-table-crossing FAIL\n"
            "    mlocked pages past a page-table boundary") in text
    assert "lazyfree-pageout" not in text  # scenarios that passed: the per-arch line says 3/4
    assert ("try_to_unmap_one(): walk exits v1 -> v2\n  ~ goto walk_done   if (nr_pages == folio_nr_pages(folio))\n"
            "      ->   if (nr_pages > 1)") in text
    # a stress failure belongs to the series
    assert report.blamed_patch(RevisionResult.from_json(data["result"])) is None


def test_console_finding_excerpt_verbatim_and_missing_arch() -> None:
    data = example("stress-failure")
    data["result"]["stages"]["boot"]["x86_64"]["findings"] = [FINDING]
    del data["result"]["stages"]["build"]["arm64"]
    text = render(data["result"], data["series"], CTX, data["arches"])
    assert "    RIP: 0010:try_to_unmap_one+0x6c4/0x8f0\n" in text  # the excerpt verbatim, indented
    assert "  arm64:" not in text and "  x86_64: built (10 s)" in text  # arm64 was not built: not told


def test_walk_exits_unchanged_since_previous() -> None:
    data = example("stress-failure")["result"]
    for f in data["stages"]["walkdiff"]["functions"]:
        for e in f["exits"]:
            e["change"] = "unchanged"
    assert view(data, SERIES, CTX)["walkdiff"] == "walk exits unchanged since v1"


def test_unknown_keys_and_arches_are_kept_and_shown() -> None:
    data = fresh()
    data["stages"]["apply"] = {"status": "ok", "detail": "applied"}
    data["stages"]["build"] = {"x86_64": {"status": "failed", "detail": "make failed", "surprise": {"a": 1}},
                               "riscv": {"status": "ok", "detail": "?"}}
    data["stages"]["boot"] = {"x86_64": {"status": "ok", "detail": "", "findings": []}}
    data["stages"]["stress"] = {"x86_64": {"status": "error", "detail": "qemu died", "scenarios": []}}
    result, _ = typed(data)
    assert result.stages.build["x86_64"].extra == {"surprise": {"a": 1}}
    text = render(data, SERIES, CTX)
    first = " ".join(text.split("\n\n")[0].split())
    assert "build FAILED on x86_64" in first and "built on riscv" in first
    assert "  build x86_64:\n    make failed" in text
    assert "reclaim stress error on x86_64" in first


def test_digest_ignores_timings_but_not_verdicts() -> None:
    data = example("pass")["result"]
    same = copy.deepcopy(data)
    same["stages"]["build"]["x86_64"]["seconds"] = 1.0
    same["stages"]["report"] = {"status": "ok", "detail": "sent"}
    assert digest("s", data) == digest("s", same)
    worse = copy.deepcopy(data)
    worse["stages"]["stress"]["arm64"]["scenarios"][1]["verdict"] = "fail"
    assert digest("s", data) != digest("s", worse)
    assert digest("s", data) != digest("t", data)


def test_templates_are_strict() -> None:
    env = environment(CTX.templates)
    with pytest.raises(jinja2.UndefinedError):
        env.from_string("{{ no_such_key }}").render()
    with pytest.raises(jinja2.UndefinedError):  # every template only uses what view() provides
        env.get_template("review.txt.j2").render(**{k: v for k, v in view(fresh(), SERIES, CTX).items()
                                                    if k != "walkdiff"})


def test_footer_without_operator() -> None:
    assert "Questions, false positives: reply to this message." in render(fresh(), SERIES, Context())


def test_reproduce_line_is_shell_safe_with_a_hostile_message_id(tmp_path: Path) -> None:
    """The reply's `bot check ...` line is pasted into shells: a Message-ID with a payload must stay one word."""
    import subprocess

    data = fresh()
    data["message_id"] = "x'$(touch${IFS}PWNED)'`touch${IFS}PWNED2`\"@host"
    text = render(data, SERIES, CTX)
    (line,) = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("bot check ")]
    assert subprocess.run(["bash", "-n", "-c", line], timeout=30).returncode == 0
    out = subprocess.run(["bash", "-c", 'bot() { printf "%s\\n" "$@"; }; ' + line], cwd=tmp_path,
                         capture_output=True, text=True, timeout=30)
    assert out.stdout.splitlines() == ["check", f"<{data['message_id']}>"], out
    assert list(tmp_path.iterdir()) == []  # nothing ran


def test_files_not_compiled_are_named_never_hidden_under_no_warnings() -> None:
    data = example("pass")
    x86 = data["result"]["stages"]["build"]["x86_64"]
    arm = data["result"]["stages"]["build"]["arm64"]
    x86["coverage"] = [{"file": "mm/rmap.c", "compiled": True}, {"file": "mm/numa_emulation.c", "compiled": True}]
    arm["coverage"] = [{"file": "mm/rmap.c", "compiled": True},
                       {"file": "mm/numa_emulation.c", "compiled": False,
                        "reason": "needs CONFIG_NUMA_EMU, which this config does not set: x86 only"}]
    x86["new_warnings"] = [{"file": "mm/rmap.c", "line": 7, "where": "mm/rmap.c:7", "kind": "warning",
                            "message": "no previous prototype for 'f' [-Wmissing-prototypes]", "w1": True,
                            "patch": {"index": 1}}]
    text = render(data["result"], data["series"], CTX, data["arches"])
    first = " ".join(text.split("\n\n")[0].split())
    assert "1 new warning" in first and "1 touched file not compiled" in first
    assert ">> mm/rmap.c:7: no previous prototype for 'f' [-Wmissing-prototypes] [W=1] [x86_64 only]" in text
    assert ("Not compiled, so not checked (1):\n  mm/numa_emulation.c: not compiled on arm64: needs CONFIG_NUMA_EMU,"
            in text)
    x86["new_warnings"] = []
    text = render(data["result"], data["series"], CTX, data["arches"])
    assert "New compiler warnings: none in what was compiled." in text
    assert "New compiler warnings: none.\n" not in text
