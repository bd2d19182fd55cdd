"""A real public-inbox archive on 127.0.0.1, for the demo and the tests (not used in production).

All of its state (inbox, PI_CONFIG, HOME) lives in one directory. Mail goes in through
public-inbox-mda (spamcheck off), which silently drops mail without the list address in To/Cc or
without a Date header, so deliver() checks both first. public-inbox-httpd serves it on a socket we
bind ourselves to port 0 and hand over by systemd socket activation, so there is no port race.
"""

from __future__ import annotations

import email
import email.policy
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from email.message import EmailMessage
from pathlib import Path

LIST_NAME = "linux-mm"
LIST_ADDRESS = "linux-mm@kvack.org"
TIMEOUT = 60


class LocalInbox:
    def __init__(self, root: Path, name: str = LIST_NAME, address: str = LIST_ADDRESS) -> None:
        self.root = root
        self.name = name
        self.address = address
        self.inboxdir = root / "inbox" / name
        self.env = {
            **os.environ,
            "HOME": str(root / "home"),
            "PI_CONFIG": str(root / "pi-config"),
            "PI_DIR": str(root / "pi-dir"),
            "XDG_CACHE_HOME": str(root / "home" / ".cache"),
            "XDG_CONFIG_HOME": str(root / "home" / ".config"),
            "XDG_DATA_HOME": str(root / "home" / ".local" / "share"),
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_CONFIG_NOSYSTEM": "1",
        }
        self.httpd: subprocess.Popen[bytes] | None = None
        self.port: int | None = None

    @staticmethod
    def available() -> str | None:
        """None when public-inbox is installed, else what is missing."""
        for tool in ("public-inbox-init", "public-inbox-mda", "public-inbox-httpd"):
            if shutil.which(tool) is None:
                return f"{tool} not found (Debian package: public-inbox)"
        return None

    def init(self) -> LocalInbox:
        (self.root / "home").mkdir(parents=True, exist_ok=True)
        if not (self.inboxdir / "inbox.lock").exists():
            self._run(
                [
                    "public-inbox-init",
                    "-V2",
                    "-L",
                    "full",
                    self.name,
                    str(self.inboxdir),
                    f"http://127.0.0.1/{self.name}",
                    self.address,
                ]
            )
            self._run(["git", "config", "-f", self.env["PI_CONFIG"], "publicinboxmda.spamcheck", "none"])
            # Create the Xapian shard now: an inbox that httpd opens before its first mail would
            # otherwise be indexed with no shard, and search would find nothing.
            self._run(["public-inbox-index", "-L", "full", str(self.inboxdir)])
        return self

    def _run(self, cmd: list[str], data: bytes | None = None, env: dict[str, str] | None = None) -> None:
        proc = subprocess.run(cmd, input=data, env=env or self.env, capture_output=True, timeout=TIMEOUT)
        if proc.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}")

    def deliver(self, msg: EmailMessage | bytes) -> None:
        """Deliver one message as the list would: refuse what public-inbox-mda would silently drop. Bytes go
        to public-inbox-mda as they are (hostile headers included: nothing here parses them strictly)."""
        if isinstance(msg, bytes):
            data = msg
            head = email.message_from_bytes(msg, policy=email.policy.compat32)
        else:
            data = msg.as_bytes(policy=email.policy.SMTP.clone(linesep="\n"))
            head = email.message_from_bytes(data, policy=email.policy.compat32)
        rcpts = " ".join(str(head.get(h, "")) for h in ("To", "Cc")).lower()
        if self.address not in rcpts:
            raise ValueError(f"{head['Message-ID']}: {self.address} not in To/Cc; public-inbox-mda would drop it")
        if head["Date"] is None:
            raise ValueError(f"{head['Message-ID']}: no Date header; public-inbox-mda would drop it")
        self._run(["public-inbox-mda"], data=data, env={**self.env, "ORIGINAL_RECIPIENT": self.address})
        if self.httpd is not None and self.httpd.poll() is None:
            # httpd keeps its view of the search index for ~30 s; SIGHUP makes it reopen now.
            os.kill(self.httpd.pid, signal.SIGHUP)

    def deliver_mbox(self, path: Path) -> int:
        """Deliver every message of an mbox (mboxrd or mboxo); return how many."""
        from bot.patches import split_mbox

        msgs = split_mbox(path.read_bytes())
        for msg in msgs:
            self.deliver(msg)
        return len(msgs)

    def serve(self) -> str:
        """Start public-inbox-httpd on 127.0.0.1:<free port>; return the base URL (without the list).

        Deliver at least one message first: httpd keeps answering 404 for an inbox that was
        empty when it first looked, even after mail arrives.
        """
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        log = open(self.root / "httpd.log", "ab")
        fd = sock.fileno()

        def to_fd3() -> None:  # systemd socket activation: the listener is fd 3
            os.dup2(fd, 3)
            os.set_inheritable(3, True)

        # LISTEN_PID must be the server's own pid: sh sets it to $$, then execs in place.
        self.httpd = subprocess.Popen(
            ["sh", "-c", 'LISTEN_PID=$$ LISTEN_FDS=1 exec public-inbox-httpd -W0 "$@"', "sh"],
            env=self.env,
            stdout=log,
            stderr=log,
            preexec_fn=to_fd3,
            pass_fds=(3, fd),
            start_new_session=True,
        )
        sock.close()
        log.close()
        url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/{self.name}/", timeout=5):
                    return url
            except urllib.error.HTTPError:  # it answers (an inbox with no mail yet is a 404)
                return url
            except OSError:
                if self.httpd.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"public-inbox-httpd did not start; see {self.root / 'httpd.log'}") from None
                time.sleep(0.1)

    def wait_searchable(self, msgid: str, timeout: float = 30) -> None:
        """Wait until a search finds msgid: httpd refreshes its view of the index lazily, so a
        search sent right after delivery may not see the new mail yet."""
        assert self.port is not None, "serve() first"
        query = urllib.parse.urlencode({"q": f"m:{msgid}", "x": "A"})
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/{self.name}/?{query}", timeout=10) as r:
                    if b"<entry>" in r.read():
                        return
            except urllib.error.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"<{msgid}> delivered but not searchable after {timeout} s")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.httpd is not None and self.httpd.poll() is None:
            self.httpd.terminate()
            try:
                self.httpd.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.httpd.kill()
                self.httpd.wait(timeout=10)
        self.httpd = None
