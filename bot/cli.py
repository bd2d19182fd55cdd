"""The `bot` command line: `bot check <message-id>` and friends.

Exit codes: 0 the run completed (whatever the verdicts), 1 the series is bad input,
2 usage or config error, 3 operational failure. Errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot import config as configmod
from bot.errors import BotError, UsageError
from bot.results import PER_ARCH_STAGES, RevisionResult, StageResult

if TYPE_CHECKING:
    from rich.console import Console


# rich is imported by the commands that print with it: `bot b4-check` answers b4 without it, and fast.
def console(stderr: bool = False, highlight: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=highlight)


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def _arches(text: str | None) -> list[str]:
    if text is None:
        return list(configmod.ARCHES)
    wanted = [a.strip() for a in text.split(",") if a.strip()]
    for a in wanted:
        if a not in configmod.ARCHES:
            raise UsageError(f"--arch: unknown architecture '{a}' (known: {', '.join(configmod.ARCHES)})")
    return wanted


SHORT = {"ok": "ok", "failed": "FAIL", "skipped": "-", "error": "ERR", "not_run": "."}


def _cell(result: RevisionResult, name: str, arches: list[str]) -> str:
    """A stage's status, one word per arch for per-arch stages (x86_64 then arm64)."""
    if name not in PER_ARCH_STAGES:
        return SHORT[getattr(result.stages, name).status]
    per: dict[str, StageResult] = getattr(result.stages, name)
    return "/".join(SHORT[per[a].status] if a in per else "." for a in arches)


def print_summary(run: Any, stages: list[str], arches: list[str]) -> None:
    """One row per revision, then each revision's verdict line as the reply would start (fits 80 columns)."""
    from rich.table import Table

    from bot.report import verdict_parts

    out = console()
    shown = [x for s in stages if s != "fetch" for x in ([s, "stress", "selftests"] if s == "boot" else [s])]
    table = Table(title=escape(f"{run.series.subject}\n{run.series.author}"), title_justify="left")
    table.add_column("rev")
    table.add_column("found by", overflow="fold", max_width=24)
    for name in shown:
        table.add_column(name, no_wrap=True)
    for r in run.revisions:
        fetch = r.stages.fetch
        table.add_row(f"v{r.version}", escape(", ".join(r.found_by) if fetch.status == "ok" else fetch.detail),
                      *(_cell(r, name, arches) for name in shown))
    out.print(table)
    if any(n in PER_ARCH_STAGES for n in shown):
        out.print(f"per-arch cells: {'/'.join(arches)}; '.' not run, '-' skipped")
    for r in run.revisions:
        if r.stages.fetch.status == "ok":
            out.print(escape(f"v{r.version}: " + ", ".join(verdict_parts(r))))


def _target(args: argparse.Namespace) -> Any:
    """The Message-ID, or a fetch.LocalSource for --mbox / --range (exactly one of the three)."""
    given = [x for x in (args.msgid, args.mbox, args.range) if x is not None]
    if len(given) != 1:
        raise UsageError("check takes a Message-ID, --mbox FILE or --range BASE..TIP (one of them)")
    if args.repo is not None and args.range is None:
        raise UsageError("--repo goes with --range")
    if args.msgid is not None:
        return args.msgid
    from bot import fetch

    if args.mbox is not None:
        return fetch.LocalSource(mbox=args.mbox.resolve())
    return fetch.LocalSource(range=args.range, repo=(args.repo or Path.cwd()).resolve())


def print_review(cfg: configmod.Config, run: Any) -> None:
    """A local check's review as it would be posted (rendered into the outbox, never sent)."""
    from bot.b4check.lookup import Found, review_text

    mine = next(r for r in run.revisions if r.message_id == run.series.requested)
    if mine.stages.report.ran:
        print(f"\n{review_text(cfg, Found(run.series, mine, None))}", end="")


def _progress(quiet: bool) -> Callable[[str], None]:
    stderr = console(stderr=True)

    def progress(line: str) -> None:
        if not quiet:
            stderr.print(f"[dim]»[/dim] {escape(line)}")

    return progress


def _rerun(text: str | None, stages: list[str]) -> list[str]:
    """--rerun: no value = every stage asked for; else a comma list (checked like --stages)."""
    from bot import pipeline

    if text is None:
        return []
    return list(stages) if text == "all" else pipeline.parse_stages(text)


def cmd_check(args: argparse.Namespace) -> int:
    from bot import pipeline

    cfg = configmod.load(args.config)
    if args.full:  # a different config: results of the default set are not reused for it
        cfg = dataclasses.replace(cfg, selftests=dataclasses.replace(cfg.selftests, full=True))
    stages = pipeline.parse_stages(args.stages)
    arches = _arches(args.arch)
    target = _target(args)
    run = pipeline.run(cfg, target, stages, arches, refetch=args.refetch, progress=_progress(args.json),
                       rerun=_rerun(args.rerun, stages))
    _publish(cfg, run.series.slug, _progress(args.json))
    if args.json:
        json.dump(run.to_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    from bot.arches import with_variants

    print_summary(run, stages, with_variants(arches, cfg.build.variants))  # the variants' cells too
    out = console()
    if run.reused:
        out.print(f"reused: {len(run.reused)} stage results whose inputs are unchanged (--rerun to make them again)")
    out.print(escape(f"results: {cfg.paths.patchsets / run.series.slug}"))
    if run.series.local:
        print_review(cfg, run)
    return 0


def cmd_walkdiff(args: argparse.Namespace) -> int:
    """`bot walkdiff`: fetch what is needed, apply where it can (hunks otherwise), print every revision's
    walk-exit changes."""
    from bot import pipeline
    from bot.report import render_text

    cfg = configmod.load(args.config)
    run = pipeline.run(cfg, args.msgid, ["fetch", "apply", "walkdiff"], list(configmod.ARCHES),
                       progress=_progress(args.json))
    if args.json:
        revisions = [{"version": r.version, "walkdiff": r.stages.walkdiff.to_json()} for r in run.revisions]
        json.dump({"series": run.to_json()["series"], "revisions": revisions}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    blocks = [f"{run.series.subject}\n{run.series.author}"]
    for r in run.revisions:
        head = f"v{r.version} <{r.message_id}>"
        fetched = r.stages.fetch
        blocks.append(f"{head}\n" + (render_text(r.stages.walkdiff) if fetched.status == "ok"
                                      else f"not fetched: {fetched.detail}"))
    print("\n\n".join(blocks))
    return 0


def cmd_b4_check(args: argparse.Namespace) -> int:
    """A b4 check command: the message on stdin, b4's JSON list (or the prep text lines) on stdout."""
    from bot import b4check

    cfg = configmod.load(args.config)
    raw = sys.stdin.buffer.read()
    if args.prep:
        from bot.b4check import prep

        lines, code = prep.check(cfg, raw, Path.cwd())
        sys.stdout.write("".join(f"{line}\n" for line in lines))
        return code
    entries, code, note = b4check.answer(cfg, raw, series=args.series, queue=args.queue)
    if entries:
        json.dump(entries, sys.stdout, indent=1)
        sys.stdout.write("\n")
    if note:
        print(f"bot: {note}", file=sys.stderr)
    return code


def _publish(cfg: configmod.Config, slug: str, progress: Any) -> None:
    """The series' dashboard pages, as the daemon writes them (the reply links there); never fails the check."""
    from bot import dashboard

    try:
        progress(f"dashboard: {dashboard.update_series(cfg, slug)}")
    except BotError as e:
        progress(f"dashboard not updated: {e}")


def cmd_setup(args: argparse.Namespace) -> int:
    from bot import tree

    cfg = configmod.load(args.config)
    what = f"making {cfg.paths.kernel_tree} ready ({cfg.tree.source} source)"
    console(stderr=True).print(f"[dim]»[/dim] {escape(what)}")
    report = tree.setup(cfg, refresh=args.refresh)
    print(report.summary())
    return 0


def cmd_post(args: argparse.Namespace) -> int:
    from bot import pipeline

    cfg = configmod.load(args.config)
    stage, result = pipeline.post(cfg, args.msgid, force=args.force, resend=args.resend)
    print(f"v{result.version}: {stage.status}: {stage.detail}")
    return 3 if stage.status == "error" else 0


def cmd_daemon(args: argparse.Namespace) -> int:
    from bot import daemon

    cfg = configmod.load(args.config)
    return daemon.main(cfg, once=args.once)


def cmd_status(args: argparse.Namespace) -> int:
    from bot import daemon

    cfg = configmod.load(args.config)
    from bot.workers import status as workers_status

    data = daemon.collect(cfg, last=args.last)
    data["workers"] = workers_status.collect(cfg)
    if args.json:
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        out = console(highlight=True)
        daemon.render(data, out)
        for line in workers_status.render_lines(data["workers"]):
            out.print(escape(line))
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from bot.workers import worker

    cfg = configmod.load(args.config)
    if cfg.workers.engine != "celery":
        raise UsageError('bot worker: [workers] engine is "local" (builds run in `bot check`/`bot daemon`); '
                         'set engine = "celery" and broker')
    if args.concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    arches = [a.strip() for a in args.arch.split(",") if a.strip()] if args.arch else None
    return worker.main(cfg, arches, args.concurrency, args.name)


def cmd_dashboard(args: argparse.Namespace) -> int:
    from bot import dashboard

    cfg = configmod.load(args.config)
    if args.port is not None and not args.serve:
        raise UsageError("--port goes with --serve")
    if args.port is not None and not 0 <= args.port <= 65535:
        raise UsageError(f"--port: {args.port} is not a port number (0-65535)")
    built = dashboard.build_site(cfg)
    print(f"{built.index} ({built.series} series, {built.seconds:.1f} s)")
    if args.serve:
        try:
            dashboard.serve(built.index.parent, args.port if args.port is not None else 8017,
                            lambda url: print(f"serving {url} (Ctrl-C stops)", flush=True))
        except KeyboardInterrupt:
            pass
    return 0


def _check_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    check = sub.add_parser("check", parents=[common], help="run the pipeline for the series a message belongs to")
    check.add_argument("msgid", nargs="?", help="Message-ID, with or without <>, or a lore URL")
    check.add_argument("--mbox", type=Path, help="check local patches instead: an am-ready mbox (git format-patch "
                       "--stdout, b4 send -o); nothing is posted")
    check.add_argument("--range", metavar="BASE..TIP", help="check local commits instead (e.g. a b4 prep branch: "
                       "its sent revisions are the previous ones); nothing is posted")
    check.add_argument("--repo", type=Path, help="the git tree of --range (default: the current directory)")
    check.add_argument("--stages", help=f"comma list out of {','.join(configmod.STAGES)} (default: all that exist)")
    check.add_argument("--arch", help="comma list out of x86_64,arm64 (default: both)")
    check.add_argument("--json", action="store_true", help="print the results as one JSON document on stdout")
    check.add_argument("--refetch", action="store_true", help="fetch again even if the series is on disk")
    check.add_argument("--rerun", nargs="?", const="all", metavar="STAGES",
                       help="make these stages' results again (default: all asked for), even when their inputs "
                       "are unchanged")
    check.add_argument("--full", action="store_true", help="run every mm selftest run_vmtests.sh runs (budget "
                       "[selftests] full_budget_s), not the default set")
    check.set_defaults(func=cmd_check)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bot", description="The mm review bot.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    sub = parser.add_subparsers(dest="command", required=True)
    # Every subcommand reads the config the same way.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, help="config file (default: $BOT_CONFIG, then ./config.toml)")
    _check_parser(sub, common)
    b4c = sub.add_parser("b4-check", parents=[common],
                         help="a b4 check command: the bot's results for the message on stdin (see README)")
    b4c.add_argument("--series", action="store_true",
                     help="b4.review-series-check-cmd: the whole revision, not one patch of it")
    b4c.add_argument("--queue", action="store_true", help="queue a revision not reviewed yet for the daemon")
    b4c.add_argument("--prep", action="store_true",
                     help="b4.prep-perpatch-check-cmd: fast checks of a b4 prep patch, one line per finding")
    b4c.set_defaults(func=cmd_b4_check)

    walk = sub.add_parser("walkdiff", parents=[common],
                          help="every revision's walk-exit changes (fetches what it needs; applies where it can)")
    walk.add_argument("msgid", help="Message-ID, with or without <>, or a lore URL")
    walk.add_argument("--json", action="store_true",
                      help='print {"series": ..., "revisions": [{"version": N, "walkdiff": ...}]} on stdout')
    walk.set_defaults(func=cmd_walkdiff)
    setup = sub.add_parser("setup", parents=[common], help="make the kernel tree ready (idempotent)")
    setup.add_argument("--refresh", action="store_true", help="look for a newer base (Debian package or git)")
    setup.set_defaults(func=cmd_setup)
    post = sub.add_parser("post", parents=[common],
                          help="send the review reply the outbox holds for a series (per [report] mode)")
    post.add_argument("msgid", help="Message-ID (cover letter or a patch: picks the revision), or a lore URL")
    post.add_argument("--force", action="store_true",
                      help="also send a held reply, or one whose earlier send was interrupted (never a sent one)")
    post.add_argument("--resend", action="store_true", help="send it again even though it was sent")
    post.set_defaults(func=cmd_post)
    daemon = sub.add_parser("daemon", parents=[common],
                            help="poll the list and review each new mm revision once (see bot/daemon.py)")
    daemon.add_argument("--once", action="store_true", help="one round, then exit (what cron runs)")
    daemon.set_defaults(func=cmd_daemon)
    status = sub.add_parser("status", parents=[common], help="the daemon's queue, running stage and last results")
    status.add_argument("--json", action="store_true", help="print it as one JSON document on stdout")
    status.add_argument("-n", "--last", type=int, default=10, help="how many recent results (default 10)")
    status.set_defaults(func=cmd_status)
    wk = sub.add_parser("worker", parents=[common],
                        help="serve build and boot tasks ([workers] engine = \"celery\") for the arches given")
    wk.add_argument("--arch", help="comma list of arches and variants to serve (default: every one this machine "
                    "has the compiler and QEMU for)")
    wk.add_argument("--concurrency", type=int, default=1, help="tasks at a time (default 1: a build takes "
                    "every core)")
    wk.add_argument("--name", help="the worker's Celery hostname (default mmbot-<pid>@<host>)")
    wk.set_defaults(func=cmd_worker)
    dash = sub.add_parser("dashboard", parents=[common],
                          help="write the static results site into [paths] dashboard (and serve it with --serve)")
    dash.add_argument("--serve", action="store_true", help="then serve it on 127.0.0.1 until interrupted")
    dash.add_argument("--port", type=int, help="port for --serve (default 8017; 0 picks a free one)")
    dash.set_defaults(func=cmd_dashboard)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except BotError as e:
        print(f"bot: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("bot: interrupted", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
