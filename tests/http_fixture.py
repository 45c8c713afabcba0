"""A loopback HTTP server for offline download tests: Range, ETag, basic auth, fault injection."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Entry:
    """One served file and its fault switches."""

    data: bytes
    etag: str | None = '"v1"'
    auth: tuple[str, str] | None = None
    ignore_range: bool = False
    cut_after: int | None = None  # close the connection after this many body bytes, once
    flip_byte: int | None = None  # serve the byte at this offset inverted


@dataclass
class Request:
    """What the server saw and sent for one request."""

    path: str
    headers: dict[str, str]
    status: int = 0
    bytes: int = 0


class _Handler(BaseHTTPRequestHandler):
    server: LoopbackServer
    timeout = 5

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Silence the default stderr log (requests are recorded instead)."""

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve(body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        """Answer from the server's files, honouring Range unless told to ignore it."""
        req = Request(self.path, dict(self.headers.items()))
        self.server.requests.append(req)
        entry = self.server.files.get(self.path)
        if entry is None:
            return self._status(req, 404)
        if entry.auth is not None and not self._authorized(entry.auth):
            return self._status(req, 401, {"WWW-Authenticate": 'Basic realm="test"'})
        data = bytearray(entry.data)
        if entry.flip_byte is not None:
            data[entry.flip_byte] ^= 0xFF
        start, status, extra = 0, 200, {}
        rng = self.headers.get("Range")
        if rng and not entry.ignore_range:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                return self._status(req, 416, {"Content-Range": f"bytes */{len(data)}"})
            status = 206
            extra = {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
        payload = bytes(data[start:])
        if entry.etag is not None:
            extra["ETag"] = entry.etag
        self._status(req, status, {**extra, "Content-Length": str(len(payload))})
        if body:
            if entry.cut_after is not None:
                payload, entry.cut_after = payload[:entry.cut_after], None
            self.wfile.write(payload)
            req.bytes = len(payload)
            self.server.served[self.path] = self.server.served.get(self.path, 0) + len(payload)

    def _authorized(self, auth: tuple[str, str]) -> bool:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        return self.headers.get("Authorization") == f"Basic {token}"

    def _status(self, req: Request, code: int, headers: dict[str, str] | None = None) -> None:
        req.status = code
        self.send_response(code)
        for key, value in (headers or {"Content-Length": "0"}).items():
            self.send_header(key, value)
        self.end_headers()


class LoopbackServer(ThreadingHTTPServer):
    """ThreadingHTTPServer on 127.0.0.1 with in-memory files and a request log."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, Entry] = {}
        self.requests: list[Request] = []
        self.served: dict[str, int] = {}

    def add(self, path: str, data: bytes, **faults: Any) -> str:
        """Serve `data` at `path` (faults: see Entry); return its url."""
        self.files[path] = Entry(data, **faults)
        return self.url(path)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def requests_for(self, path: str) -> list[Request]:
        return [req for req in self.requests if req.path == path]


@pytest.fixture
def http_server() -> Iterator[LoopbackServer]:
    """A running loopback server, shut down after the test."""
    server = LoopbackServer()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
