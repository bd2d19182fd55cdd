"""The review summary: one plain-text reply per revision, rendered from its results with jinja2.

Everything here is pure: `render()` takes the revision's RevisionResult and the series' SeriesSummary and
returns the text; the sending lives in bot/report/deliver.py. `view()` hands the templates exactly the keys
they use; they run with StrictUndefined, so a template bug fails loudly instead of printing an empty field
into someone's inbox. The templates are found in [paths] templates (default: the top-level templates/).

    .venv/bin/python -m bot.report.view --examples templates/examples   # regenerate the committed examples
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from bot.report.verdict import new_warnings, per_arch, status_word, verdict_parts
from bot.report.walkdiff_text import render_fixes, render_text
from bot.results import RevisionResult, SeriesSummary, StageResult

DEFAULT_TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
WIDTH = 72
BOT_NAME = "mm-review-bot"
PASSING = ("pass", "passed", "ok")


@dataclass(frozen=True)
class Context:
    """What the reply says about the bot itself (from [report]), and where its templates are."""

    operator: str = ""
    tree: str = ""  # where bases come from, e.g. the mm.git URL
    list_address: str = "linux-mm@kvack.org"
    templates: Path = DEFAULT_TEMPLATES


def seconds_text(entry: StageResult | None) -> str:
    s = getattr(entry, "seconds", None)
    if isinstance(s, int | float) and not isinstance(s, bool):
        return f"{s:.0f} s" if s >= 10 else f"{s:.1f} s"
    return ""


def _command_text(cmd: str | None) -> str:
    """A command to paste; absolute paths (the bot's own files) shortened to their names."""
    return " ".join(Path(t).name if t.startswith("/") else t for t in (cmd or "").strip().split(" ")) if cmd else ""


def _patch_label(index: int | None, result: RevisionResult) -> str:
    for p in result.patches:
        if p.index == index:
            return p.subject
    return "(patch not identified)" if index is None else f"patch {index}"


def _wrap(text: str, indent: str = "", width: int = WIDTH) -> str:
    """Wrap prose at 72 columns; paragraphs kept; never for code or log excerpts."""
    return "\n".join(
        textwrap.fill(par, width, initial_indent=indent, subsequent_indent=indent, break_long_words=False,
                      break_on_hyphens=False) if par.strip() else ""
        for par in str(text).split("\n")
    )


def _walkdiff_text(result: RevisionResult) -> str:
    stage = result.stages.walkdiff
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


def _rows(result: RevisionResult, arches: list[str]) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """The stage table and the problems under it."""
    rows: list[dict[str, str]] = []
    problems: list[dict[str, str]] = []
    s = result.stages
    for name in ("fetch", "apply", "build", "boot", "stress", "walkdiff"):
        per: dict[str, StageResult] | None = getattr(s, name) if name in ("build", "boot", "stress") else None
        for a in (arches or ["-"]) if per is not None else ["-"]:
            entry = per.get(a) if per is not None else getattr(s, name)
            rows.append({"stage": name, "arch": a, "status": status_word(entry), "time": seconds_text(entry)})
            if entry is not None and entry.status in ("failed", "error"):
                where = f"{name} {a}" if per is not None else name
                problems.append({"where": where, "detail": _wrap(entry.detail, "    ")})
    return rows, problems


def _toolchains_and_commands(result: RevisionResult) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    toolchains = []
    for a, e in per_arch(result.stages.build).items():
        fragments = list(e.fragments or [])
        config = "tinyconfig" if fragments else ""  # the fragments go on top of tinyconfig
        toolchains.append({"arch": a, "compiler": e.compiler or "not recorded",
                           "config": " + ".join([c for c in [config] if c] + fragments) or "not recorded"})
    commands = []
    for stage_name in ("build", "boot", "stress"):
        for a, e in per_arch(getattr(result.stages, stage_name)).items():
            cmd = _command_text(getattr(e, "command", None))
            if cmd:
                commands.append({"what": f"{stage_name} ({a})", "command": cmd})
    return toolchains, commands


def _warnings(result: RevisionResult) -> list[dict[str, Any]]:
    by_patch: dict[int | None, list[str]] = {}
    builds = len(result.stages.build)
    for w in new_warnings(result):
        where = f"{w.file}:{w.line}" if w.line else w.file
        only = f" [{'/'.join(w.arches)} only]" if builds > 1 and len(w.arches) < builds else ""
        by_patch.setdefault(w.patch, []).append(f">> {where}: {w.message}{' [W=1]' if w.w1 else ''}{only}")
    return [{"patch": _patch_label(i, result), "lines": lines}
            for i, lines in sorted(by_patch.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))]


def not_compiled(result: RevisionResult) -> list[str]:
    """One line per touched C file a build did not compile, with the arches and why: never "no warnings"
    about code that was not built."""
    why: dict[str, dict[str, str]] = {}
    for arch, e in per_arch(result.stages.build).items():
        for c in e.coverage or []:
            if not c.compiled:
                why.setdefault(c.file, {})[arch] = c.reason or "not compiled"
    lines = []
    for file, per in why.items():
        reasons = set(per.values())
        if len(reasons) == 1:
            lines.append(f"  {file}: not compiled on {'/'.join(per)}: {reasons.pop()}")
        else:
            lines += [f"  {file}: not compiled on {a}: {r}" for a, r in per.items()]
    return lines


def _runtime(result: RevisionResult) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    scenarios = []
    for a, st in per_arch(result.stages.stress).items():
        for sc in st.scenarios or []:
            verdict = sc.verdict or "?"
            scenarios.append({"arch": a, "name": sc.name or "?", "verdict": verdict.upper(),
                              "detail": "" if verdict.lower() in PASSING else _wrap(sc.detail, "    ")})
    findings = []
    for a, e in per_arch(result.stages.boot).items():
        for f in e.findings or []:
            findings.append({"arch": a, "first_line": f.first_line or "(no first line)",
                             "preexisting": bool(f.preexisting),
                             "excerpt": [x.rstrip() for x in f.excerpt.splitlines()]})
    return scenarios, findings


def view(result: RevisionResult, series: SeriesSummary, ctx: Context, arches: list[str] | None = None
         ) -> dict[str, Any]:
    """One revision's results as exactly the keys the templates use."""
    s = result.stages
    all_arches = list(arches or [])
    for a in [*per_arch(s.build), *per_arch(s.boot), *per_arch(s.stress)]:
        if a not in all_arches:
            all_arches.append(a)
    rows, problems = _rows(result, all_arches)
    toolchains, commands = _toolchains_and_commands(result)
    warnings = _warnings(result)
    scenarios, findings = _runtime(result)
    previous = max((r.version for r in series.revisions if r.version < result.version), default=None)
    return {
        "verdict": _wrap(f"{BOT_NAME}: v{result.version} " + ", ".join(verdict_parts(result))),
        "version": result.version,
        "subject": result.subject,
        "author": result.author,
        "msgid": result.message_id,
        "patch_count": len(result.patches),
        "rows": rows,
        "problems": problems,
        "base": {
            "commit": (result.base.commit or "")[:12] or "none (not applied)",
            "source": result.base.source or "not chosen",
            "notes": [_wrap(n, "          ") for n in s.apply.base_notes or []],
        },
        "toolchains": toolchains,
        "reproduce": shlex.join(["bot", "check", f"<{result.message_id}>"]),  # pasted into a shell: quoted
        "commands": commands,
        "warnings": warnings,
        "warning_count": sum(len(w["lines"]) for w in warnings),
        "build_ran": bool(s.build),
        "not_compiled": not_compiled(result),
        "correctness_ran": bool(s.boot or s.stress),
        "scenarios": scenarios,
        "findings": findings,
        "walkdiff": _walkdiff_text(result),
        "previous": previous,
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
    env.filters["wrap"] = _wrap
    return env


def render(result: RevisionResult, series: SeriesSummary, ctx: Context, arches: list[str] | None = None,
           template: str = "review.txt.j2") -> str:
    """The reply body for one revision (pure: same inputs, same text)."""
    text = environment(ctx.templates).get_template(template).render(**view(result, series, ctx, arches))
    # Templates may leave runs of blank lines where a section was empty; mail wants at most one.
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip("\n") + "\n"


# ---- committed examples ----

EXAMPLE_CONTEXT = Context(operator="Ada Operator <mm-bot-admin@example.org>",
                          tree="https://git.kernel.org/pub/scm/linux/kernel/git/akpm/mm.git")


def render_examples(src: Path, dest: Path, ctx: Context = EXAMPLE_CONTEXT) -> list[Path]:
    """Render every src/inputs/<name>.json ({series, result, arches}) to dest/<name>.txt."""
    written = []
    for path in sorted((src / "inputs").glob("*.json")):
        data = json.loads(path.read_text())
        out = dest / f"{path.stem}.txt"
        dest.mkdir(parents=True, exist_ok=True)
        out.write_text(render(RevisionResult.from_json(data["result"]), SeriesSummary.from_json(data["series"]),
                              ctx, data.get("arches")))
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

