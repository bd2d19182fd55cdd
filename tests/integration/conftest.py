"""Fixtures of the integration tests. The shared ones live in tests/conftest.py (with tests/kernel); these names
are imported from here too."""

from __future__ import annotations

import email.utils
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from bot.demo.localinbox import LocalInbox
from tests.conftest import BARRY_V4, BOT, run_bot, write_config

__all__ = ["BARRY_V4", "BOT", "run_bot", "write_config"]


@pytest.fixture
def own_inbox(tmp_path: Path) -> Iterator[LocalInbox]:
    """An archive of the test's own: the daemon sees every series in an archive, so it must not share the
    session archive with other tests."""
    box = LocalInbox(tmp_path / "pi").init()
    hello = EmailMessage()
    hello["From"] = "Someone <someone@example.org>"
    hello["To"] = "linux-mm@kvack.org"
    hello["Subject"] = "a discussion, not a patch"
    hello["Date"] = email.utils.formatdate()
    hello["Message-ID"] = "<hello@example.org>"
    hello.set_content("hello\n")
    box.deliver(hello)  # before serve(): see LocalInbox.serve
    box.url = box.serve()  # type: ignore[attr-defined]
    yield box
    box.stop()
