"""The review summary: one plain-text reply per revision, rendered from its results with jinja2.

Everything here is pure: `render()` takes the revision's RevisionResult and the series' SeriesSummary and
returns the text; the sending lives in bot/report/deliver.py. `view()` hands the templates exactly the keys
they use; they run with StrictUndefined, so a template bug fails loudly instead of printing an empty field
into someone's inbox. The templates are found in [paths] templates (default: the top-level templates/).
The reply carries the verdict and the few lines that matter; everything else is on the dashboard it links to.

    .venv/bin/python -m bot.report.view --examples templates/examples   # regenerate the committed examples
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from bot.report import sections
from bot.report.sections import WIDTH, wrap
from bot.report.walkdiff_text import render_fixes, render_text
from bot.results import RevisionResult, SeriesSummary
from bot.results.links import lore_link, reproduce_arches, reproduce_name, revision_file, series_page
from bot.results.verdict import verdict_parts

DEFAULT_TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
BOT_NAME = "mm-review-bot"


@dataclass(frozen=True)
class Context:
    """What the reply says about the bot itself (from [report], [lore], [paths]), and where its templates are."""

    operator: str = ""
    tree: str = ""  # where bases come from, e.g. the mm.git URL
    list_address: str = "linux-mm@kvack.org"
    templates: Path = DEFAULT_TEMPLATES
    reporter: str = ""  # the bot's From:, for Reported-by
    inbox_url: str = ""  # the list on the archive, for Closes: links
    dashboard_url: str = ""  # where the dashboard is served; "" = not published
    dashboard_dir: str = ""  # where its files are on the bot's host (said when there is no URL)


def _walkdiff_text(result: RevisionResult) -> str:
    stage = result.stages.walkdiff
    if not stage.ran:
        return ""  # not compared: nothing to report
    if stage.status == "ok":
        functions = stage.functions or []
        changed = any(e.get("change") != "unchanged" for f in functions for e in f.get("exits", [])) or any(
            f.get("notes") for f in functions)
        fixes = "\n" + render_fixes(stage, width=WIDTH) if stage.fixes else ""
        if not changed and (stage.against or "base") != "base":
            return f"walk exits unchanged since {stage.against}" + fixes
        if not changed:
            return "walk exits unchanged from the base" + fixes
    return render_text(stage, width=WIDTH)


def links(result: RevisionResult, series: SeriesSummary, ctx: Context) -> dict[str, Any]:
    """Where the details are (the dashboard page, or its files on the bot's host) and the per-arch scripts."""
    page = series_page(series.slug)
    scripts = [(a, revision_file(series.slug, result.version, reproduce_name(a))) for a in reproduce_arches(result)]
    if ctx.dashboard_url:
        base = ctx.dashboard_url.rstrip("/") + "/"
        return {"details": f"{base}{page}#v{result.version}", "published": True,
                "scripts": [{"arch": a, "where": base + path} for a, path in scripts]}
    root = (ctx.dashboard_dir.rstrip("/") + "/") if ctx.dashboard_dir else ""
    return {"details": f"{root}{page} (section v{result.version})", "published": False,
            "scripts": [{"arch": a, "where": root + path} for a, path in scripts]}


def trailers(result: RevisionResult, ctx: Context, reply_id: str) -> list[str]:
    """Reported-by/Closes for a fix of a failure (as the kernel test robot asks), pointing at this reply."""
    if not sections.failed(result) or not ctx.reporter:
        return []
    out = [f"Reported-by: {ctx.reporter}"]
    if reply_id and ctx.inbox_url:
        out.append(f"Closes: {lore_link(ctx.inbox_url, reply_id)}")
    return out


def view(result: RevisionResult, series: SeriesSummary, ctx: Context, arches: list[str] | None = None,
         reply_id: str = "") -> dict[str, Any]:
    """One revision's results as exactly the keys the templates use (arches: kept for callers; the reply
    speaks of the arches that ran)."""
    del arches
    warnings = sections.warnings(result)
    scenarios, findings = sections.runtime(result)
    return {
        "verdict": wrap(f"{BOT_NAME}: v{result.version} " + ", ".join(verdict_parts(result))),
        "version": result.version,
        "subject": result.subject,
        "author": result.author,
        "msgid": result.message_id,
        "apply_failure": sections.apply_failure(result),
        "arch_lines": sections.arch_lines(result),
        "problems": sections.problems(result),
        "base": {
            "commit": (result.base.commit or "")[:12],
            "source": result.base.source or "",
            "notes": [wrap(n, "          ") for n in sections.base_notes(result)],
        },
        "toolchains": sections.toolchains(result),
        # pasted into a shell: quoted; a local check (not posted) is rerun the way it was run
        "reproduce": shlex.join(["bot", "check", *(shlex.split(series.local) if series.local else
                                                   [f"<{result.message_id}>"])]),
        "links": links(result, series, ctx),
        "trailers": trailers(result, ctx, reply_id),
        "warnings": warnings,
        "warning_count": sum(len(w["lines"]) for w in warnings),
        "not_compiled": sections.not_compiled(result),
        "scenarios": scenarios,
        "findings": findings,
        "selftests": sections.selftests(result),
        "walkdiff": _walkdiff_text(result),
        "operator": ctx.operator,
        "tree": ctx.tree,
        "list_address": ctx.list_address,
    }


def environment(templates: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # plain text mail, never HTML
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["wrap"] = wrap
    return env


def render(result: RevisionResult, series: SeriesSummary, ctx: Context, arches: list[str] | None = None,
           template: str = "review.txt.j2", reply_id: str = "") -> str:
    """The reply body for one revision (pure: same inputs, same text); reply_id is its own Message-ID."""
    text = environment(ctx.templates).get_template(template).render(**view(result, series, ctx, arches, reply_id))
    # Templates leave runs of blank lines where a section was empty; mail wants at most one.
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip("\n") + "\n"


# ---- committed examples ----

EXAMPLE_CONTEXT = Context(operator="Ada Operator <mm-bot-admin@example.org>",
                          tree="https://git.kernel.org/pub/scm/linux/kernel/git/akpm/mm.git",
                          reporter="mm-review-bot <mm-review-bot@example.org>",
                          inbox_url="https://lore.kernel.org/linux-mm",
                          dashboard_url="https://mm-bot.example.org/")


def render_examples(src: Path, dest: Path, ctx: Context = EXAMPLE_CONTEXT) -> list[Path]:
    """Render every src/inputs/<name>.json ({series, result, arches}) to dest/<name>.txt (the reply's own
    Message-ID is the one the run recorded)."""
    written = []
    for path in sorted((src / "inputs").glob("*.json")):
        data = json.loads(path.read_text())
        out = dest / f"{path.stem}.txt"
        dest.mkdir(parents=True, exist_ok=True)
        result = RevisionResult.from_json(data["result"])
        out.write_text(render(result, SeriesSummary.from_json(data["series"]), ctx, data.get("arches"),
                              reply_id=result.stages.report.message_id or ""))
        written.append(out)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.report.view", description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=Path, required=True, help="directory holding inputs/*.json")
    args = parser.parse_args(argv)
    for path in render_examples(args.examples, args.examples):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
