"""How long `bot b4-check` takes to answer b4 for a reviewed message, next to a bare `python -c pass` (the
interpreter's own start) and `b4 --version` (b4's), each run as b4 runs a check command: a new process, the
message on stdin.

    .venv/bin/python bench/b4check.py [--series-count 500] [--repeat 15]

The patchsets/ it answers from is made in a temp dir: one reviewed revision (the committed example
templates/examples/inputs/new-warnings.json, its review in the outbox) among --series-count other series.
Prints a table and, last, a JSON line with every figure (seconds, median and max of --repeat runs).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot.results import RevisionRef, RevisionResult, SeriesSummary, save_revision, write_json_atomic  # noqa: E402

BIN = Path(sys.executable).parent
EXAMPLE = REPO / "templates" / "examples" / "inputs" / "new-warnings.json"


def make_patchsets(root: Path, others: int) -> tuple[Path, bytes]:
    """patchsets/ with the example revision reviewed (its reply in the outbox) and `others` series besides."""
    data = json.loads(EXAMPLE.read_text())
    result = RevisionResult.from_json(data["result"])
    outbox = root / "patchsets" / "outbox" / "new" / "example.reply"
    outbox.parent.mkdir(parents=True)
    outbox.write_text("Subject: Re: example\nContent-Type: text/plain; charset=utf-8\n\n"
                      "mm-review-bot: v4 applied, built on x86_64/arm64, 1 new warning\n\n(the review)\n")
    result.stages.report.status, result.stages.report.outbox = "ok", str(outbox)
    for i in range(others + 1):
        slug = "example" if i == others else f"other-{i:05d}"
        r = RevisionResult.from_json(result.to_json())
        if i != others:  # same shape, other Message-IDs
            r.message_id = f"other{i}@example.org"
            for p in r.patches:
                p.message_id = f"other{i}.{p.index}@example.org"
        save_revision(root / "patchsets" / slug / f"v{r.version}" / "result.json", r)
        ids = [r.message_id, *(p.message_id for p in r.patches)]
        write_json_atomic(root / "patchsets" / slug / "series.json", SeriesSummary(
            slug, r.subject, r.author, r.message_id, [RevisionRef(r.version, r.message_id, "requested")],
            message_ids=ids).to_json())
    (root / "config.toml").write_text('[paths]\npatchsets = "patchsets"\n')
    patch = result.patches[2]
    msg = (f"From: {result.author}\nSubject: {patch.subject}\nMessage-ID: <{patch.message_id}>\n\n"
           "---\ndiff --git a/mm/rmap.c b/mm/rmap.c\n--- a/mm/rmap.c\n+++ b/mm/rmap.c\n"
           "@@ -1,1 +1,1 @@ static bool try_to_unmap_one(struct folio *folio)\n-a\n+b\n").encode()
    return root / "config.toml", msg


def timed(cmd: list[str], stdin: bytes, repeat: int) -> tuple[list[float], bytes]:
    runs, out = [], b""
    for _ in range(repeat):
        t0 = time.monotonic()
        proc = subprocess.run(cmd, input=stdin, capture_output=True, timeout=60)
        runs.append(time.monotonic() - t0)
        out = proc.stdout
    return runs, out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series-count", type=int, default=500, help="other series in patchsets/ (default 500)")
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-b4check-") as tmp:
        config, msg = make_patchsets(Path(tmp), args.series_count)
        cases = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "b4 --version": [str(BIN / "b4"), "--version"],
            "bot b4-check (reviewed patch)": [str(BIN / "bot"), "b4-check", "--config", str(config)],
            "bot b4-check --series (reviewed)": [str(BIN / "bot"), "b4-check", "--series", "--config", str(config)],
        }
        unknown = msg.replace(b"Message-ID: <", b"Message-ID: <unknown.")
        figures = {}
        for name, cmd in cases.items():
            runs, out = timed(cmd, msg, args.repeat)
            if name.startswith("bot"):
                entries = json.loads(out)
                assert entries and entries[0]["tool"] == "mm-bot", out[:200]
            figures[name] = runs
        figures["bot b4-check (not reviewed)"] = timed(cases["bot b4-check (reviewed patch)"], unknown,
                                                       args.repeat)[0]
    print(f"{'command':36} {'median':>8} {'max':>8}   ({args.repeat} runs, {args.series_count + 1} series on disk)")
    for name, runs in figures.items():
        print(f"{name:36} {statistics.median(runs):7.3f}s {max(runs):7.3f}s")
    print(json.dumps({"series": args.series_count + 1, "repeat": args.repeat,
                      **{k: {"median": round(statistics.median(v), 3), "max": round(max(v), 3)}
                         for k, v in figures.items()}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
