"""Real parts for the integration tests: a public-inbox archive served on 127.0.0.1, an SMTP server
(aiosmtpd) that delivers into it with public-inbox-mda, and the `bot` command run as a process."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import os
import re
import smtplib
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from bot.demo.localinbox import LocalInbox
from bot.demo.writer import SeriesWriter
from tests.mailgen import toy_writer

SHARED_LORE = Path(__file__).resolve().parents[1] / ".." / "shared" / "lore"
TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """tests/integration/* start real servers and processes, tests/kernel/* build and boot kernels: marked so
    `pytest -m "not kernel"` or `-m "not kernel and not integration"` pick the fast ones."""
    for item in items:
        parts = Path(item.path).relative_to(TESTS).parts
        if parts[0] in ("integration", "kernel"):
            item.add_marker(getattr(pytest.mark, parts[0]))
BARRY_V4 = SHARED_LORE / "barry-lazyfree-v4.mbox"
BOT = str(Path(sys.executable).with_name("bot"))


@pytest.fixture(scope="session")
def inbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalInbox]:
    missing = LocalInbox.available()
    if missing:
        pytest.fail(f"public-inbox is needed for the integration tests: {missing}")
    box = LocalInbox(tmp_path_factory.mktemp("public-inbox")).init()
    box.deliver_mbox(BARRY_V4)  # before serve(): see LocalInbox.serve
    box.url = box.serve()  # type: ignore[attr-defined]
    yield box
    box.stop()


class Recorder:
    """SMTP handler: records every message and delivers it to the archive when the list is a recipient
    (public-inbox-mda would drop it otherwise). `answer` set to e.g. "451 try later" makes it refuse, as a
    broken relay would."""

    def __init__(self, box: LocalInbox) -> None:
        self.box = box
        self.received: list[EmailMessage] = []
        self.answer: str | None = None

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        if self.answer:
            return self.answer
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)  # type: ignore[attr-defined]
        assert isinstance(msg, EmailMessage)
        self.received.append(msg)
        if self.box.address in " ".join(str(msg.get(h, "")) for h in ("To", "Cc")).lower():
            await asyncio.to_thread(self.box.deliver, envelope.content)  # type: ignore[attr-defined]
        return "250 ok"


@contextlib.contextmanager
def smtp_server(handler: object) -> Iterator[int]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1; yields its port."""
    with socket.socket() as probe:  # aiosmtpd needs a real port up front (it connects to itself)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@pytest.fixture(scope="session")
def smtp(inbox: LocalInbox) -> Iterator[tuple[str, int, Recorder]]:
    handler = Recorder(inbox)
    with smtp_server(handler) as port:
        yield "127.0.0.1", port, handler


@pytest.fixture
def post(smtp: tuple[str, int, Recorder], inbox: LocalInbox) -> Callable[[list[EmailMessage]], None]:
    """Send messages through the SMTP server into the archive, as a list would receive them."""
    host, port, _ = smtp

    def send(msgs: list[EmailMessage]) -> None:
        with smtplib.SMTP(host, port, timeout=30) as s:
            for msg in msgs:
                s.send_message(msg, from_addr="ada@example.org", to_addrs=["linux-mm@kvack.org"])
        for msg in msgs:
            inbox.wait_searchable(str(msg["Message-ID"]).strip("<>"))

    return send


@pytest.fixture
def writer(tmp_path: Path, request: pytest.FixtureRequest) -> SeriesWriter:
    tag = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")
    return toy_writer(tmp_path, tag)


def write_config(path: Path, url: str, timeout: float = 10, retries: int = 1,
                 kernel_tree: Path | str = "kernel-tree") -> Path:
    path.write_text(
        f'[lore]\nurl = "{url}"\nlist = "linux-mm"\ntimeout = {timeout}\nretries = {retries}\n'
        f'[paths]\npatchsets = "patchsets"\nkernel_tree = "{kernel_tree}"\ncache = "cache"\n'
    )
    return path


@pytest.fixture
def config(tmp_path: Path, inbox: LocalInbox) -> Path:
    """A config.toml in the test's own dir: own patchsets/ and own b4 cache (b4 caches searches)."""
    return write_config(tmp_path / "config.toml", inbox.url)  # type: ignore[attr-defined]


def bot_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The test process's environment for a `bot` subprocess: without $BOT_CONFIG, plus `extra`."""
    return {k: v for k, v in os.environ.items() if k != "BOT_CONFIG"} | (extra or {})


def run_bot(*args: str, cwd: Path, timeout: float = 300, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BOT, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=bot_env(env))
