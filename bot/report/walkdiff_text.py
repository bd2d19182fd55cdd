"""The walk-exit changes of a WalkdiffResult as the plain text of a reply (and of `bot walkdiff`)."""

from __future__ import annotations

import textwrap
from typing import Any

from bot.results import WalkdiffResult


def _guard(x: dict[str, Any] | None) -> str:
    if x is None:
        return ""
    cond = x["condition"]
    if cond == "unknown":
        return "if (<outside hunk>)"
    return f"if ({cond})" if cond else "always"


def _wrap(text: str, indent: str, width: int) -> list[str]:
    """Wrap at spaces; continuation lines are indented with blanks, never with the +/-/~ sign."""
    rest = " " * len(indent) + "    "
    return textwrap.wrap(text, width, initial_indent=indent, subsequent_indent=rest, break_on_hyphens=False) or [indent]


def _exit_lines(head: str, sign: str, old: str, new: str | None, width: int) -> list[str]:
    """`~ goto walk_done   if (old)   ->   if (new)` on one line when it fits, else `->` below."""
    one = f"  {sign} {head}   {old}" + (f"   ->   {new}" if new is not None else "")
    if len(one) <= width:
        return [one]
    lines = _wrap(f"{head}   {old}", f"  {sign} ", width)
    if new is not None:
        lines += _wrap(f"->   {new}", "      ", width)
    return lines


def render_text(stage: WalkdiffResult, width: int = 100) -> str:
    """The walkdiff paragraph of the email reply: one block per function, `+` added, `-` removed, `~` changed;
    then, for a fix, the block against the patch it fixes."""
    if not stage.ran:
        return "walk exits: not compared (walkdiff not run)"
    if stage.status != "ok":
        return f"walk exits: {stage.status}: {stage.detail}"
    return "\n".join(t for t in (_functions(stage, width), render_fixes(stage, width)) if t)


def render_fixes(stage: WalkdiffResult, width: int = 100) -> str:
    """"against the patch it fixes": per Fixes: line, where that patch was found and the exits against it, or
    in one line why not."""
    out: list[str] = []
    for fix in stage.fixes or []:
        if fix.status == "ok":
            where = (f"commit {(fix.found or '')[:12]} in the kernel tree" if fix.source == "git"
                     else f"v{fix.version} <{fix.found}> on the archive")
            out += _wrap(f"against the patch it fixes: {fix.line} ({where})", "", width)
            out.append(_functions(fix, width))
        else:  # one line, however long: it says one thing
            out.append(f"against the patch it fixes: {fix.line}: {fix.detail}")
    return "\n".join(out)


def _functions(stage: WalkdiffResult, width: int) -> str:
    against, rev = stage.against or "base", stage.revision or "this revision"
    out: list[str] = []
    for f in stage.functions or []:
        out.append(f"{f['name']}(): walk exits {against} -> {rev}")
        out += [ln for note in f.get("notes", []) for ln in _wrap(f"({note})", "  ", width)]
        shown = 0
        for e in f["exits"]:
            if e["change"] == "unchanged":
                continue
            shown += 1
            b, a = e["before"], e["after"]
            sign = {"added": "+", "removed": "-", "changed": "~"}[e["change"]]
            head = f"{e['kind']} {e['target']}" if e["kind"] in ("goto", "call") else e["target"]
            if e["kind"] == "call":
                head = f"{e['target']}()"
            if e["change"] == "changed":
                if b["target"] != a["target"]:
                    head = f"{e['kind']} {b['target']} -> {a['target']}"
                new = _guard(a) if b["condition"] != a["condition"] else None
                out += _exit_lines(head, sign, _guard(b), new, width)
            else:
                out += _exit_lines(head, sign, _guard(a or b), None, width)
            if e["change"] == "changed" and b["comment"] != a["comment"]:
                out += _wrap(f'comment: "{b["comment"]}" -> "{a["comment"]}"', "      ", width)
            elif e["change"] != "changed" and (a or b)["comment"]:
                out += _wrap(f'comment: "{(a or b)["comment"]}"', "      ", width)
            if e["change"] == "changed" and b["feeds"] != a["feeds"]:
                out += _wrap("feeds: " + "; ".join(b["feeds"]) + " -> " + "; ".join(a["feeds"]), "      ", width)
            elif e["change"] == "added" and a["feeds"]:
                out += _wrap("feeds: " + "; ".join(a["feeds"]), "      ", width)
        if not f["exits"]:
            out.append("  no walk exits in the code it changes")
        elif not shown:
            out.append(f"  walk exits unchanged ({len(f['exits'])})")
        if f.get("helpers_changed"):
            out += _wrap("helpers changed: " + ", ".join(f["helpers_changed"]), "  ", width)
    if stage.partial:
        out.append("(from the patch hunks only: guards outside them are not shown)")
    return "\n".join(out)
