"""`bot dashboard --serve`: the site on 127.0.0.1 for a local look (http.server; files only, no listing of
anything outside the site, scripts and content types never sniffed)."""

from __future__ import annotations

import functools
import http.server
from collections.abc import Callable
from pathlib import Path

from bot.errors import OperationalError


class Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".sh": "text/x-shellscript",
                      ".txt": "text/plain; charset=utf-8", ".html": "text/html; charset=utf-8",
                      ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}

    def end_headers(self) -> None:
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
        pass  # quiet: `bot dashboard --serve` prints the URL once

    def list_directory(self, path: str) -> None:  # type: ignore[override]
        self.send_error(404, "no listing")  # the pages link every file; a folder has nothing more to show


def server(root: Path, port: int) -> http.server.ThreadingHTTPServer:
    """Bound to 127.0.0.1:port (0: any free port); the caller runs serve_forever()."""
    handler = functools.partial(Handler, directory=str(root))
    try:
        return http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError as e:
        raise OperationalError(f"cannot serve on 127.0.0.1:{port}: {e.strerror or e}") from e


def serve(root: Path, port: int, ready: Callable[[str], None] = print) -> None:
    """Serve root until interrupted; ready() gets the index URL once the port is bound."""
    with server(root, port) as httpd:
        ready(f"http://127.0.0.1:{httpd.server_address[1]}/index.html")
        httpd.serve_forever()
