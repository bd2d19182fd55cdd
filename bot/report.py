"""The review summary: one plain-text reply per revision, rendered from its result.json.

Everything here is pure: `render()` takes the revision's result.json dict and the series summary
(series.json) and returns the text; the sending lives in bot/post.py. The build/boot/stress keys
are young, so `view()` reads them defensively (only `status` and `detail` are promised) and hands
the templates a normalised dict: the templates run with StrictUndefined, so a template bug fails
loudly instead of printing an empty field into someone's inbox.

    .venv/bin/python -m bot.report --examples templates/examples   # regenerate the committed examples
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shlex
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from bot.config import ARCHES
from bot.walkdiff import render_text

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
WIDTH = 72
BOT_NAME = "mm-review-bot"
PASSING = ("pass", "passed", "ok")


@dataclass(frozen=True)
class Context:
    """What the reply says about the bot itself (from [report])."""

    operator: str = ""
    mode: str = "dry-run"
    tree: str = ""  # where bases come from, e.g. the mm.git URL
    list_address: str = "linux-mm@kvack.org"


# ---- reading result.json defensively ----


def _dict(x: Any) -> dict[str, Any]:
    return x if isinstance(x, dict) else {}


def _list(x: Any) -> list[Any]:
    return x if isinstance(x, list) else []


def _str(x: Any) -> str:
    return "" if x is None else str(x)


def _per_arch(result: dict[str, Any], stage: str) -> dict[str, dict[str, Any]]:
    """stages.<stage> as {arch: entry}, arches in the bot's order, entries without a status dropped."""
    entries = {a: e for a, e in _dict(_dict(result.get("stages")).get(stage)).items()
               if isinstance(e, dict) and "status" in e}
    return dict(sorted(entries.items(), key=lambda kv: (ARCHES.index(kv[0]) if kv[0] in ARCHES else 99, kv[0])))


def _single(result: dict[str, Any], stage: str) -> dict[str, Any]:
    entry = _dict(_dict(result.get("stages")).get(stage))
    return entry if "status" in entry else {"status": "skipped", "detail": "stage not run"}


def _not_run(entry: dict[str, Any]) -> bool:
    return entry.get("status") == "skipped" and entry.get("detail") in ("stage not run", "", None)


def status_word(entry: dict[str, Any] | None) -> str:
    if not entry or _not_run(entry):
        return "not run"
    return {"ok": "ok", "failed": "FAILED", "error": "error", "skipped": "skipped"}.get(_str(entry["status"]),
                                                                                    _str(entry["status"]))


def seconds_text(entry: dict[str, Any] | None) -> str:
    s = _dict(entry).get("seconds")
    if isinstance(s, int | float) and not isinstance(s, bool):
        return f"{s:.0f} s" if s >= 10 else f"{s:.1f} s"
    return ""


def _command_text(cmd: Any) -> str:
    """A command to paste; absolute paths (the bot's own files) shortened to their names."""
    if isinstance(cmd, str):
        return " ".join(Path(t).name if t.startswith("/") else t for t in cmd.strip().split(" "))
    if isinstance(cmd, list) and all(isinstance(c, str) for c in cmd):
        return shlex.join([Path(c).name if c.startswith("/") else c for c in cmd])
    return _str(cmd).strip()


def patch_index(value: Any, patches: list[dict[str, Any]]) -> int | None:
    """The 1-based patch a finding names: an index, "3/4", {"index": 3}, a subject or a Message-ID."""
    if isinstance(value, dict):
        value = value.get("index", value.get("message_id", value.get("subject")))
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = _str(value).strip()
    m = re.fullmatch(r"(\d+)(?:/\d+)?", text)
    if m:
        return int(m.group(1))
    for p in patches:
        if text and text.strip("<>") in (p.get("message_id"), p.get("subject")):
            return int(p["index"])
    return None


def _patch_label(index: int | None, patches: list[dict[str, Any]]) -> str:
    for p in patches:
        if p.get("index") == index:
            return _str(p.get("subject"))
    return "(patch not identified)" if index is None else f"patch {index}"


def new_warnings(result: dict[str, Any]) -> list[dict[str, Any]]:
    """stages.build.<arch>.new_warnings, the same warning on two arches listed once with both arches."""
    patches = _list(result.get("patches"))
    seen: dict[tuple[str, str, str], dict[str, Any]] = {}
    for arch, entry in _per_arch(result, "build").items():
        for w in _list(entry.get("new_warnings")):
            if not isinstance(w, dict):
                continue
            line = _str(w.get("line"))
            if w.get("column") is not None:
                line += f":{w['column']}"
            key = (_str(w.get("file")), line, _str(w.get("message")).strip())
            if key not in seen:
                seen[key] = {"file": key[0], "line": key[1], "message": key[2], "arches": [],
                             "patch": patch_index(w.get("patch"), patches)}
            seen[key]["arches"].append(arch)
    return list(seen.values())


# ---- the verdict ----


def _arches_text(arches: list[str]) -> str:
    return "/".join(arches)


def verdict_parts(result: dict[str, Any]) -> list[str]:
    """The first line's clauses, honest about stages that did not run."""
    parts: list[str] = []
    apply = _single(result, "apply")
    patch = _dict(apply.get("patch")).get("index")
    parts.append({"ok": "applied", "failed": "does not apply" + (f" (patch {patch})" if patch else "")}.get(
        apply["status"], "not applied (apply " + status_word(apply) + ")"))
    build = _per_arch(result, "build")
    ok = [a for a, e in build.items() if e["status"] == "ok"]
    bad = [a for a, e in build.items() if e["status"] == "failed"]
    other = [a for a, e in build.items() if e["status"] not in ("ok", "failed")]
    if not build:
        parts.append("not built")
    if ok:
        parts.append(f"built on {_arches_text(ok)}")
    if bad:
        parts.append(f"build FAILED on {_arches_text(bad)}")
    if other:
        parts.append(f"not built on {_arches_text(other)}")
    warnings = new_warnings(result)
    if warnings:
        parts.append(f"{len(warnings)} new warning{'s' if len(warnings) != 1 else ''}")
    boot, stress = _per_arch(result, "boot"), _per_arch(result, "stress")
    arches = [a for a in ARCHES if a in boot or a in stress] + sorted((boot.keys() | stress.keys()) - set(ARCHES))
    if not arches:
        parts.append("not booted")
    passed, notes = [], []
    for a in arches:
        b, s = boot.get(a), stress.get(a)
        if b is not None and b["status"] == "failed":
            notes.append(f"boot FAILED on {a}")
        elif b is not None and b["status"] != "ok":
            notes.append(f"not booted on {a}")
        elif s is None or _not_run(s):
            notes.append(f"booted on {a}, stress not run")
        elif s["status"] == "ok":
            passed.append(a)
        elif s["status"] == "failed":
            notes.append(f"reclaim stress FAIL on {a}")
        else:
            notes.append(f"reclaim stress {status_word(s)} on {a}")
    if passed:
        parts.append("boot + reclaim stress PASS" + ("" if not notes else f" on {_arches_text(passed)}"))
    parts += notes
    found = [f for a, e in boot.items() for f in _list(e.get("findings")) if isinstance(f, dict)
             and not f.get("preexisting")]
    if found:
        parts.append(f"{len(found)} new console finding{'s' if len(found) != 1 else ''}")
    return parts


def verdict_facts(result: dict[str, Any]) -> dict[str, Any]:
    """What a reply says, without timings or paths: equal facts mean the same reply (one send)."""
    return {
        "version": result.get("version"),
        "apply": _single(result, "apply")["status"],
        "build": {a: e["status"] for a, e in _per_arch(result, "build").items()},
        "warnings": sorted((w["file"], w["line"], w["message"]) for w in new_warnings(result)),
        "boot": {a: [e["status"], sorted(_str(_dict(f).get("fingerprint") or _dict(f).get("first_line"))
                                        for f in _list(e.get("findings")))]
                 for a, e in _per_arch(result, "boot").items()},
        "stress": {a: [e["status"], sorted((_str(_dict(s).get("name")), _str(_dict(s).get("verdict")))
                                          for s in _list(e.get("scenarios")))]
                   for a, e in _per_arch(result, "stress").items()},
        "walkdiff": render_text(_single(result, "walkdiff")),
    }


def verdict_digest(series: dict[str, Any], result: dict[str, Any]) -> str:
    text = json.dumps([series.get("slug"), verdict_facts(result)], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def blamed_patch(result: dict[str, Any]) -> int | None:
    """The one patch every finding belongs to (then the reply goes under it), else None (the cover)."""
    patches = _list(result.get("patches"))
    blamed: set[int | None] = set()
    apply = _single(result, "apply")
    if apply["status"] == "failed":
        blamed.add(patch_index(apply.get("patch"), patches))
    blamed.update(w["patch"] for w in new_warnings(result))
    for e in _per_arch(result, "boot").values():
        if e["status"] not in ("ok", "skipped"):
            blamed.add(None)
        blamed.update(patch_index(f.get("patch"), patches) for f in _list(e.get("findings"))
                      if isinstance(f, dict) and not f.get("preexisting"))
    for e in _per_arch(result, "stress").values():
        if e["status"] not in ("ok", "skipped"):
            blamed.add(None)
    if any(e["status"] == "failed" for e in _per_arch(result, "build").values()) and not new_warnings(result):
        blamed.add(None)
    if len(blamed) == 1 and None not in blamed and len(patches) > 1:
        return blamed.pop()
    return None


# ---- the view the templates see ----


def _wrap(text: str, indent: str = "", width: int = WIDTH) -> str:
    """Wrap prose at 72 columns; paragraphs kept; never for code or log excerpts."""
    return "\n".join(
        textwrap.fill(par, width, initial_indent=indent, subsequent_indent=indent, break_long_words=False,
                      break_on_hyphens=False) if par.strip() else ""
        for par in _str(text).split("\n")
    )


def _walkdiff_text(result: dict[str, Any], previous: int | None) -> str:
    stage = _single(result, "walkdiff")
    if _not_run(stage):
        return "walk exits: not compared (walkdiff not run)"
    if stage["status"] == "ok":
        changed = any(e.get("change") != "unchanged" for f in _list(stage.get("functions"))
                      for e in _list(_dict(f).get("exits"))) or any(_dict(f).get("notes")
                                                                   for f in _list(stage.get("functions")))
        if not changed and stage.get("against", "base") != "base":
            return f"walk exits unchanged since {stage['against']}"
        if not changed:
            return "walk exits unchanged from the base"
    return render_text(stage, width=WIDTH)


def view(result: dict[str, Any], series: dict[str, Any], ctx: Context, arches: list[str] | None = None
         ) -> dict[str, Any]:
    """Normalise one revision's result.json into exactly the keys the templates use."""
    patches = _list(result.get("patches"))
    build, boot, stress = (_per_arch(result, s) for s in ("build", "boot", "stress"))
    all_arches = list(arches or [])
    for a in [*build, *boot, *stress]:
        if a not in all_arches:
            all_arches.append(a)
    rows: list[dict[str, str]] = []
    problems: list[dict[str, str]] = []
    for name in ("fetch", "apply", "build", "boot", "stress", "walkdiff"):
        if name in ("build", "boot", "stress"):
            per = {"build": build, "boot": boot, "stress": stress}[name]
            for a in all_arches or ["-"]:
                entry = per.get(a)
                rows.append({"stage": name, "arch": a, "status": status_word(entry), "time": seconds_text(entry)})
                if entry and entry["status"] in ("failed", "error"):
                    problems.append({"where": f"{name} {a}", "detail": _wrap(_str(entry.get("detail")), "    ")})
        else:
            entry = _single(result, name)
            rows.append({"stage": name, "arch": "-", "status": status_word(entry), "time": seconds_text(entry)})
            if entry["status"] in ("failed", "error"):
                problems.append({"where": name, "detail": _wrap(_str(entry.get("detail")), "    ")})

    base = _dict(result.get("base"))
    apply = _single(result, "apply")
    toolchains = []
    for a, e in build.items():
        fragments = [_str(f) for f in _list(e.get("fragments"))]
        config = "tinyconfig" if fragments else _str(e.get("defconfig"))  # the fragments go on top of tinyconfig
        toolchains.append({"arch": a, "compiler": _str(e.get("compiler")) or "not recorded",
                           "config": " + ".join([c for c in [config] if c] + fragments) or "not recorded"})
    commands = []
    for stage_name, per in (("build", build), ("boot", boot), ("stress", stress)):
        for a, e in per.items():
            cmd = _command_text(e.get("command"))
            if cmd:
                commands.append({"what": f"{stage_name} ({a})", "command": cmd})

    warnings_by_patch: dict[int | None, list[str]] = {}
    for w in new_warnings(result):
        where = f"{w['file']}:{w['line']}" if w["line"] else w["file"]
        only = f" [{'/'.join(w['arches'])} only]" if len(build) > 1 and len(w["arches"]) < len(build) else ""
        warnings_by_patch.setdefault(w["patch"], []).append(f">> {where}: {w['message']}{only}")
    warnings = [{"patch": _patch_label(i, patches), "lines": lines}
                for i, lines in sorted(warnings_by_patch.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))]

    scenarios = []
    for a, e in stress.items():
        for s in _list(e.get("scenarios")):
            s = _dict(s)
            verdict = _str(s.get("verdict")) or "?"
            scenarios.append({"arch": a, "name": _str(s.get("name")) or "?", "verdict": verdict.upper(),
                              "detail": "" if verdict.lower() in PASSING else _wrap(_str(s.get("detail")), "    ")})
    findings = []
    for a, e in boot.items():
        for f in _list(e.get("findings")):
            f = _dict(f)
            excerpt = f.get("excerpt")
            lines = excerpt if isinstance(excerpt, list) else _str(excerpt).splitlines()
            findings.append({"arch": a, "first_line": _str(f.get("first_line")) or "(no first line)",
                             "preexisting": bool(f.get("preexisting")),
                             "excerpt": [_str(x).rstrip() for x in lines]})
    correctness_ran = bool(boot or stress)

    prev = [r for r in _list(series.get("revisions")) if _dict(r).get("version", 0) < result.get("version", 0)]
    previous = max((r["version"] for r in prev), default=None)
    first = f"{BOT_NAME}: v{result.get('version')} " + ", ".join(verdict_parts(result))
    return {
        "verdict": _wrap(first),
        "version": result.get("version"),
        "subject": _str(result.get("subject")),
        "author": _str(result.get("author")),
        "msgid": _str(result.get("message_id")),
        "patch_count": len(patches),
        "rows": rows,
        "problems": problems,
        "base": {
            "commit": _str(base.get("commit"))[:12] or "none (not applied)",
            "source": _str(base.get("source")) or "not chosen",
            "notes": [_wrap(_str(n), "          ") for n in _list(apply.get("base_notes"))],
        },
        "toolchains": toolchains,
        "reproduce": f"bot check '<{_str(result.get('message_id'))}>'",
        "commands": commands,
        "warnings": warnings,
        "warning_count": sum(len(w["lines"]) for w in warnings),
        "build_ran": bool(build),
        "correctness_ran": correctness_ran,
        "scenarios": scenarios,
        "findings": findings,
        "walkdiff": _walkdiff_text(result, previous),
        "previous": previous,
        "operator": ctx.operator,
        "tree": ctx.tree,
        "list_address": ctx.list_address,
    }


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # plain text mail, never HTML
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["wrap"] = _wrap
    return env


def render(result: dict[str, Any], series: dict[str, Any], ctx: Context, arches: list[str] | None = None,
           template: str = "review.txt.j2") -> str:
    """The reply body for one revision (pure: same inputs, same text)."""
    text = environment().get_template(template).render(**view(result, series, ctx, arches))
    # Templates may leave runs of blank lines where a section was empty; mail wants at most one.
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip("\n") + "\n"


# ---- committed examples ----

EXAMPLES = TEMPLATES / "examples"
EXAMPLE_CONTEXT = Context(operator="Ada Operator <mm-bot-admin@example.org>", mode="author",
                          tree="https://git.kernel.org/pub/scm/linux/kernel/git/akpm/mm.git")


def render_examples(src: Path, dest: Path) -> list[Path]:
    """Render every src/inputs/<name>.json ({series, result, arches}) to dest/<name>.txt."""
    written = []
    for path in sorted((src / "inputs").glob("*.json")):
        data = json.loads(path.read_text())
        out = dest / f"{path.stem}.txt"
        dest.mkdir(parents=True, exist_ok=True)
        out.write_text(render(data["result"], data["series"], EXAMPLE_CONTEXT, data.get("arches")))
        written.append(out)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.report", description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=Path, required=True, help="directory holding inputs/*.json")
    args = parser.parse_args(argv)
    for path in render_examples(args.examples, args.examples):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
