"""Where a series' results are published: the dashboard's file layout, shared by the dashboard that writes it
and the reply that links to it (neither imports the other), and the lore link of a message.

    series/<site slug>/index.html                the series page; #v<N> is one revision
    series/<site slug>/v<N>/reproduce-<arch>.sh  one arch's reproduce script (only for arches that were built)

Every path segment is a slug or a number: nothing from a mail reaches a path unchecked.
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import quote

from bot.results.revision import RevisionResult
from bot.results.verdict import per_arch

SAFE_SLUG = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}")
SAFE_ARCH = re.compile(r"[a-z0-9_]{1,32}(-[a-z0-9_]{1,32})?")  # x86_64, a build variant: arm64-64k


def site_slug(slug: str) -> str:
    """The series folder's name on the site: the patchsets slug when it is plain, else a cleaned one with a
    hash of the original (so two odd slugs never collide, and none escapes the site)."""
    if SAFE_SLUG.fullmatch(slug) and ".." not in slug:
        return slug
    clean = re.sub(r"[^a-z0-9]+", "-", slug.lower()).strip("-")[:48] or "series"
    return f"{clean}-{hashlib.sha256(slug.encode()).hexdigest()[:8]}"


def safe_arch(arch: str) -> bool:
    return SAFE_ARCH.fullmatch(arch) is not None


def series_page(slug: str) -> str:
    return f"series/{site_slug(slug)}/index.html"


def revision_file(slug: str, version: int, name: str) -> str:
    return f"series/{site_slug(slug)}/v{int(version)}/{name}"


def reproduce_name(arch: str) -> str:
    return f"reproduce-{arch}.sh"


def reproduce_arches(result: RevisionResult) -> list[str]:
    """The arches a reproduce script is published for: those whose build ran (ok, failed or error)."""
    return [a for a, e in per_arch(result.stages.build).items() if e.status in ("ok", "failed", "error")
            and safe_arch(a)]


def lore_link(inbox_url: str, msgid: str) -> str:
    """https://lore.kernel.org/linux-mm/<msgid>/ (the Message-ID percent-encoded, as lore spells it)."""
    return f"{inbox_url.rstrip('/')}/{quote(msgid.strip('<>'), safe='@+=!$&*~')}/"
