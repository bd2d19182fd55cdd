"""Writes patch series the way authors do: git format-patch in a small repo, then mail headers.

Each revision gets deterministic Message-IDs (<tag>.v<N>.<i>@example.org), To the list, a Date,
and optionally In-Reply-To an earlier revision (a threaded reroll), a changelog with links, a
change-id, a missing or truncated patch.
"""

from __future__ import annotations

import datetime
import email
import email.policy
import email.utils
import subprocess
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

LIST = "linux-mm@kvack.org"
AUTHOR = "Ada Lovelace <ada@example.org>"
BASE_RMAP = """\
// SPDX-License-Identifier: GPL-2.0-only
/* toy mm/rmap.c for tests */

static bool try_to_unmap_one(struct folio *folio, struct vm_area_struct *vma,
\t\t     unsigned long address, void *arg)
{
\tDEFINE_FOLIO_VMA_WALK(pvmw, folio, vma, address, 0);
\tbool ret = true;
\tunsigned long nr_pages = 1;

\twhile (page_vma_mapped_walk(&pvmw)) {
\t\tif (!pvmw.pte) {
\t\t\tret = false;
\t\t\tpage_vma_mapped_walk_done(&pvmw);
\t\t\tbreak;
\t\t}
\t\tnr_pages = 1;
\t\tif (folio_test_anon(folio))
\t\t\tgoto walk_done;
\t}
\treturn ret;
walk_done:
\tpage_vma_mapped_walk_done(&pvmw);
\treturn ret;
}
"""


def git(repo: Path, *args: str) -> str:
    env = {"GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1", "PATH": "/usr/bin:/bin",
           "GIT_AUTHOR_DATE": "2025-06-01T12:00:00Z", "GIT_COMMITTER_DATE": "2025-06-01T12:00:00Z",
           "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.org"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=env, timeout=60).stdout


@dataclass
class Patch:
    subject: str
    files: dict[str, str]  # path -> new content
    body: str = "Explain the change.\n"


@dataclass
class Revision:
    version: int
    subject: str
    patches: list[Patch]
    blurb: str = "A series for the tests.\n"
    reply_to: str | None = None  # Message-ID of an earlier cover letter: a threaded reroll
    change_id: str | None = None
    no_version: bool = False  # "[PATCH 1/1]": no vN in the subject
    cover: bool = True
    omit: list[int] = field(default_factory=list)  # patch numbers not sent
    truncate: int | None = None  # patch number whose diff is cut in the middle


class SeriesWriter:
    def __init__(self, workdir: Path, tag: str, author: str = AUTHOR,
                 start: datetime.datetime = datetime.datetime(2025, 6, 1, 12, 0, tzinfo=datetime.UTC)) -> None:
        self.repo = workdir / f"repo-{tag}"
        self.tag = tag
        self.author = author
        self.when = start
        self.repo.mkdir(parents=True)
        git(self.repo, "init", "-q", "-b", "base")
        (self.repo / "mm").mkdir()
        (self.repo / "mm" / "rmap.c").write_text(BASE_RMAP)
        git(self.repo, "add", ".")
        git(self.repo, "commit", "-q", "-m", "base", "--author", self.author)

    def msgid(self, version: int, index: int) -> str:
        return f"{self.tag}.v{version}.{index}@example.org"

    def write(self, rev: Revision) -> list[EmailMessage]:
        branch = f"v{rev.version}"
        git(self.repo, "checkout", "-q", "-B", branch, "base")
        for patch in rev.patches:
            for path, text in patch.files.items():
                (self.repo / path).parent.mkdir(parents=True, exist_ok=True)
                (self.repo / path).write_text(text)
            git(self.repo, "add", ".")
            git(self.repo, "commit", "-q", "-m", f"{patch.subject}\n\n{patch.body}", "--author", self.author)
        args = ["format-patch", "--stdout", "--numbered", "--base=base"]
        if rev.cover:
            args.append("--cover-letter")
        if not rev.no_version and rev.version > 1:
            args.append(f"-v{rev.version}")
        out = git(self.repo, *args, "base..HEAD")
        msgs = [email.message_from_string(chunk if chunk.startswith("From ") else "From " + chunk,
                                          policy=email.policy.default)
                for chunk in out.split("\nFrom ") if chunk.strip()]
        result: list[EmailMessage] = []
        cover_id = self.msgid(rev.version, 0)
        for i, msg in enumerate(msgs, start=0 if rev.cover else 1):
            assert isinstance(msg, EmailMessage)
            if i == 0:
                body = msg.get_content().replace("*** BLURB HERE ***", rev.blurb.rstrip("\n"))
                if rev.change_id:
                    body += f"\n---\nchange-id: {rev.change_id}\n"
                msg.set_content(body)
                subject = str(msg["Subject"]).replace("*** SUBJECT HERE ***", rev.subject)
                del msg["Subject"]
                msg["Subject"] = subject
            elif rev.change_id and not rev.cover:
                msg.set_content(msg.get_content() + f"\nchange-id: {rev.change_id}\n")
            if i in rev.omit:
                continue
            if i == rev.truncate:
                text = msg.get_content()
                msg.set_content(text[: text.index("@@ ") + len(text[text.index("@@ "):]) // 2])
            for h in ("From", "Message-ID", "Date", "To", "In-Reply-To", "References"):
                del msg[h]
            msg["From"] = self.author  # format-patch signs the cover letter as the committer
            msg["To"] = LIST
            msg["Date"] = email.utils.format_datetime(self.when + datetime.timedelta(seconds=i))
            msg["Message-ID"] = f"<{self.msgid(rev.version, i)}>"
            refs = [rev.reply_to] if rev.reply_to else []
            if i > 0 and rev.cover:
                refs.append(cover_id)
            elif i > 1:
                refs.append(self.msgid(rev.version, 1))
            if refs:
                msg["In-Reply-To"] = f"<{refs[-1]}>"
                msg["References"] = " ".join(f"<{r}>" for r in refs)
            result.append(msg)
        self.when += datetime.timedelta(days=7)
        return result


def rmap_with(condition: str, label: str = "walk_done", comment: str = "") -> str:
    """The toy rmap.c with the early exit under another condition/label."""
    text = BASE_RMAP.replace("\t\tif (folio_test_anon(folio))\n\t\t\tgoto walk_done;",
                             f"{comment}\t\tif ({condition})\n\t\t\tgoto {label};")
    if label != "walk_done":
        text = text.replace("walk_done:\n", f"{label}:\n")
    return text
