"""Bad input and a bad server: each gets its exit code, one clear line, and nothing on disk."""

from __future__ import annotations

import email.utils
import http.server
import socket
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from bot.demo.writer import Patch, Revision, SeriesWriter
from tests.conftest import run_bot, write_config
from tests.mailgen import AUTHOR, LIST, toy_writer


def series_dirs(config: Path) -> list[Path]:
    return [p for p in (config.parent / "patchsets").glob("*") if p.is_dir()]


def failing(config: Path, target: str, code: int) -> str:
    proc = run_bot("check", target, "--config", str(config), "--stages", "fetch", cwd=config.parent)
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("bot: ")
    assert series_dirs(config) == []
    return lines[-1]


def three(tag: str) -> list[Patch]:
    return [Patch(f"mm: {tag} part {i}", files={f"mm/{tag}{i}.c": f"int {tag}{i};\n" + "int pad;\n" * 10})
            for i in (1, 2, 3)]


def test_unknown_message_id(config: Path) -> None:
    line = failing(config, "<no-such-message@example.org>", 1)
    assert "no message <no-such-message@example.org> on http://127.0.0.1:" in line


def test_message_that_is_not_part_of_a_series(config: Path, post) -> None:
    msg = EmailMessage()
    msg["From"] = AUTHOR
    msg["To"] = LIST
    msg["Subject"] = "question about lazyfree reclaim"
    msg["Date"] = email.utils.formatdate()
    msg["Message-ID"] = "<plain-question@example.org>"
    msg.set_content("Why does MADV_FREE split large folios?\n")
    post([msg])
    line = failing(config, "plain-question@example.org", 1)
    assert "is not part of a patch series" in line


def test_truncated_patch(config: Path, writer: SeriesWriter, post) -> None:
    post(writer.write(Revision(1, "mm: truncated", three("tr"), truncate=2)).messages())
    line = failing(config, writer.msgid(1, 0), 1)
    assert f"patch 2/3 <{writer.msgid(1, 2)}>" in line and "ends early" in line


def test_missing_patch(config: Path, writer: SeriesWriter, post) -> None:
    post(writer.write(Revision(1, "mm: gap", three("gp"), omit=[2])).messages())
    line = failing(config, writer.msgid(1, 3), 1)
    assert "v1 is incomplete: patch 2/3 missing (have 1/3, 3/3)" in line


def test_two_postings_claim_the_same_version(config: Path, writer: SeriesWriter, tmp_path: Path, post) -> None:
    twin = toy_writer(tmp_path, "two-postings-claim-the-same-version-twin")
    post(writer.write(Revision(2, "mm: twice", three("tw"))).messages())
    post(twin.write(Revision(2, "mm: twice", three("tx"))).messages())
    post(writer.write(Revision(3, "mm: twice", three("ty"))).messages())
    line = failing(config, writer.msgid(3, 0), 1)
    assert "two postings claim to be v2" in line
    assert writer.msgid(2, 0) in line and twin.msgid(2, 0) in line


def test_malformed_message_id_is_a_usage_error(config: Path) -> None:
    assert "not a Message-ID" in failing(config, "not a message id", 2)


def test_unknown_stage_and_bad_config(config: Path) -> None:
    proc = run_bot("check", "x@y", "--config", str(config), "--stages", "fetch,compile", cwd=config.parent)
    assert proc.returncode == 2 and "unknown stage 'compile'" in proc.stderr
    bad = config.parent / "bad.toml"
    bad.write_text('[lore]\nurl = "http://127.0.0.1:1"\nlsit = "linux-mm"\n')
    proc = run_bot("check", "x@y", "--config", str(bad), cwd=config.parent)
    assert proc.returncode == 2 and "unknown key 'lsit' in [lore]" in proc.stderr


class _Broken(http.server.BaseHTTPRequestHandler):
    mode = "500"

    def _answer(self) -> None:
        if self.mode == "hang":
            time.sleep(30)
            return
        self.send_response(500)
        self.end_headers()
        self.wfile.write(b"internal error")

    do_GET = do_POST = do_HEAD = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(params=["500", "hang"])
def broken_server(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    handler = type("Handler", (_Broken,), {"mode": request.param})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", request.param
    server.shutdown()


def test_server_that_fails_or_hangs(tmp_path: Path, broken_server: tuple[str, str]) -> None:
    url, mode = broken_server
    config = write_config(tmp_path / "config.toml", url, timeout=1, retries=1)
    started = time.monotonic()
    line = failing(config, "<20250214093015.51024-1-21cnbao@gmail.com>", 3)
    assert time.monotonic() - started < 20  # bounded by timeouts, not by the server
    assert "failed after 2 attempts" in line
    assert ("HTTP 500" if mode == "500" else "no answer") in line


def test_server_that_refuses_connections(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = write_config(tmp_path / "config.toml", f"http://127.0.0.1:{port}", timeout=1, retries=1)
    assert "no answer" in failing(config, "a@b", 3)
