"""A local HTTP server of a directory's files that answers range requests, with an added
delay per request and counters: a stand-in for an object store or a hub, to measure what
``ansz.open(URL)`` fetches. Used by ``python -m bench remote`` and by the tests.

Python's ``http.server`` ignores ``Range``; this one answers ``HEAD`` and ``GET`` with one
``bytes=A-B`` range (206) or none (200), one thread per connection. Every request waits
``latency`` seconds before it is answered, as a request to a distant store does.
"""

from __future__ import annotations

import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

_RANGE_RE = re.compile(r"bytes=(\d*)-(\d*)$")


class RangeServer:
    """Serves the files under ``root`` at :attr:`url` (``http://127.0.0.1:PORT``) while the
    ``with`` block runs. :attr:`requests` and :attr:`bytes_sent` count GETs and HEADs
    answered and the body bytes sent; :meth:`reset` zeroes them."""

    def __init__(self, root, latency: float = 0.0):
        self.root = Path(root).resolve()
        self.latency = latency
        self.requests = 0
        self.bytes_sent = 0
        self.ranges: list[tuple[int, int]] = []  #: [start, end) of every GET answered
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_HEAD(self) -> None:
                self._answer(body=False)

            def do_GET(self) -> None:
                self._answer(body=True)

            def _answer(self, body: bool) -> None:
                if server.latency:
                    time.sleep(server.latency)
                path = (server.root / unquote(self.path.split("?", 1)[0]).lstrip("/")).resolve()
                if server.root not in path.parents or not path.is_file():
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                size = path.stat().st_size
                start, end, status = 0, size, 200
                m = _RANGE_RE.match(self.headers.get("Range", "").strip())
                if m and (m.group(1) or m.group(2)):
                    if m.group(1):
                        start = int(m.group(1))
                        end = min(size, int(m.group(2)) + 1) if m.group(2) else size
                    else:  # the last N bytes
                        start = max(0, size - int(m.group(2)))
                    status = 206
                    if start >= size:
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{size}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                self.send_response(status)
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(end - start))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
                self.end_headers()
                with server._lock:
                    server.requests += 1
                    if body:
                        server.bytes_sent += end - start
                        server.ranges.append((start, end))
                if body:
                    with open(path, "rb") as fh:
                        fh.seek(start)
                        left = end - start
                        while left:
                            data = fh.read(min(left, 1 << 20))
                            if not data:
                                break
                            self.wfile.write(data)
                            left -= len(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def reset(self) -> None:
        with self._lock:
            self.requests = self.bytes_sent = 0
            self.ranges = []

    def __enter__(self) -> "RangeServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def url_of(server: RangeServer, path) -> str:
    """The URL at which ``server`` serves the file ``path`` (under its root)."""
    rel = Path(path).resolve().relative_to(server.root)
    return f"{server.url}/{rel.as_posix()}"


__all__ = ["RangeServer", "url_of"]
