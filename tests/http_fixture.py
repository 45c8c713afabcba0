"""A loopback HTTP server for offline download tests.

Plain files with Range, ETag, basic auth and fault injection; a Dropbox-like share
(`/s/<key>/<name>?dl=1`), a Drive-like confirm page (`/download?id=...`) and the Cityscapes site
API (`/login`, `/downloads/?list`, `/md5-sum/`, `/file-handling/`). Also zip builders for tests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import stat
import sys
import threading
import urllib.parse
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

_HTML = {"Content-Type": "text/html; charset=utf-8"}

#: Network settings of the downloaders against this server: no backoff, short timeouts, quiet.
NET: dict[str, Any] = {"backoff": 0, "timeout": 5, "allow_hosts": ["127.0.0.1"],
                       "progress": False}


def payload(size: int) -> tuple[bytes, str, str]:
    """`size` random bytes to serve, with their md5 and sha256 hex digests."""
    data = secrets.token_bytes(size)
    return data, hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest()


@dataclass
class Entry:
    """One served file and its fault switches."""

    data: bytes
    etag: str | None = '"v1"'
    auth: tuple[str, str] | None = None
    ignore_range: bool = False
    cut_after: int | None = None  # close the connection after this many body bytes, once
    flip_byte: int | None = None  # serve the byte at this offset inverted
    fail_once: int | None = None  # answer this HTTP status once, then serve normally
    etag_per_request: bool = False  # a new ETag on every request (the file "changes")
    redirect: str | None = None  # answer 302 to this url instead
    requests: int = 0


@dataclass
class Request:
    """What the server saw and sent for one request."""

    path: str
    headers: dict[str, str]
    method: str = "GET"
    body: bytes = b""
    status: int = 0
    bytes: int = 0


@dataclass
class CityscapesSite:
    """The Cityscapes download API: credentials, packages by id, issued session cookies."""

    username: str
    password: str
    packages: dict[int, tuple[str, Entry]] = field(default_factory=dict)
    sessions: set[str] = field(default_factory=set)


class _Handler(BaseHTTPRequestHandler):
    server: LoopbackServer
    timeout = 5
    disable_nagle_algorithm = True  # no 40 ms delayed-ACK stall per request

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Silence the default stderr log (requests are recorded instead)."""

    def do_HEAD(self) -> None:  # noqa: N802
        self._route(body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._route(body=True)

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length", 0))
        req = self._record("POST", self.rfile.read(length))
        site = self.server.cityscapes
        if site is None or urllib.parse.urlsplit(self.path).path.rstrip("/") != "/login":
            return self._status(req, 404)
        form = urllib.parse.parse_qs(req.body.decode())
        if form.get("username") == [site.username] and form.get("password") == [site.password] \
                and form.get("submit") == ["Login"]:
            token = secrets.token_hex(8)
            site.sessions.add(token)
            return self._status(req, 302, {"Location": "/", "Content-Length": "0",
                                           "Set-Cookie": f"PHPSESSID={token}; path=/; HttpOnly"})
        self._send(req, 200, b"<html><body>Login failed: wrong username or password</body></html>",
                   _HTML)

    def _record(self, method: str, body: bytes = b"") -> Request:
        req = Request(self.path, dict(self.headers.items()), method, body)
        self.server.requests.append(req)
        return req

    def _route(self, body: bool) -> None:
        """Dispatch to a plain file, the Dropbox, Drive or Cityscapes imitation, or 404."""
        req = self._record("HEAD" if not body else "GET")
        parts = urllib.parse.urlsplit(self.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(parts.query, True).items()}
        if self.path in self.server.files:
            return self._serve(req, self.server.files[self.path], body)
        if parts.path.startswith("/s/") and parts.path in self.server.dropbox:
            if query.get("dl") != "1":
                return self._send(req, 200, b"<html><body>Dropbox preview</body></html>", _HTML)
            return self._serve(req, self.server.dropbox[parts.path], body)
        if parts.path == "/download" and query.get("id") in self.server.drive:
            return self._drive(req, query, body)
        if self.server.cityscapes is not None and parts.path.rstrip("/") in _SITE_ROUTES:
            return _SITE_ROUTES[parts.path.rstrip("/")](self, req, query, body)
        self._status(req, 404)

    def _drive(self, req: Request, query: Mapping[str, str], body: bool) -> None:
        """The file when confirm=t (and, if strict, a uuid the page issued), else the "can't
        scan for viruses" page with its form."""
        entry, uuids = self.server.drive[query["id"]], self.server.drive_uuids
        if query.get("confirm") == "t" and (query["id"] not in self.server.drive_strict
                                            or query.get("uuid") in uuids):
            return self._serve(req, entry, body)
        uuid = secrets.token_hex(6)
        uuids.add(uuid)
        inputs = {"id": query["id"], "export": "download", "confirm": "t", "uuid": uuid}
        hidden = "".join(f'<input type="hidden" name="{k}" value="{v}">' for k, v in inputs.items())
        page = ("<html><head><title>Google Drive - Virus scan warning</title></head><body>"
                "<p>Google Drive can't scan this file for viruses.</p>"
                f'<form id="download-form" action="/download" method="get">'
                f'<input type="submit" value="Download anyway">{hidden}</form></body></html>')
        self._send(req, 200, page.encode(), _HTML)

    def _site_login_page(self, req: Request, query: Mapping[str, str], body: bool) -> None:
        token = secrets.token_hex(8)  # an anonymous session, as the real site hands out
        self._send(req, 200, b"<html><form method='post'>login</form></html>",
                   {**_HTML, "Set-Cookie": f"PHPSESSID={token}; path=/"})

    def _site_list(self, req: Request, query: Mapping[str, str], body: bool) -> None:
        if "list" not in query:
            return self._status(req, 404)
        site = self.server.cityscapes
        listing = [{"name": name, "packageID": str(pid), "size": f"{len(e.data) / 1e6:.2f}MB",
                    "thirdparty": "0"} for pid, (name, e) in sorted(site.packages.items())]
        self._send(req, 200, json.dumps(listing).encode(), {"Content-Type": "application/json"})

    def _site_md5(self, req: Request, query: Mapping[str, str], body: bool) -> None:
        package = self.server.cityscapes.packages.get(int(query.get("packageID", "0")))
        if package is None:
            return self._status(req, 404)
        name, entry = package
        text = f"{hashlib.md5(entry.data).hexdigest()}  {name}\n"
        self._send(req, 200, text.encode(), {"Content-Type": "text/plain"})

    def _site_file(self, req: Request, query: Mapping[str, str], body: bool) -> None:
        site = self.server.cityscapes
        cookie = self.headers.get("Cookie", "")
        tokens = {part.strip().removeprefix("PHPSESSID=") for part in cookie.split(";")}
        if not tokens & site.sessions:
            return self._status(req, 302, {"Location": "/login", "Content-Length": "0"})
        package = site.packages.get(int(query.get("packageID", "0")))
        if package is None:
            return self._status(req, 404)
        self._serve(req, package[1], body)

    def _serve(self, req: Request, entry: Entry, body: bool) -> None:
        """Answer from `entry`, honouring Range (`bytes=a-` or `bytes=a-b`) unless told not to."""
        entry.requests += 1
        if entry.fail_once is not None:
            code, entry.fail_once = entry.fail_once, None
            return self._status(req, code)
        if entry.redirect is not None:
            return self._status(req, 302, {"Location": entry.redirect, "Content-Length": "0"})
        if entry.auth is not None and not self._authorized(entry.auth):
            return self._status(req, 401, {"WWW-Authenticate": 'Basic realm="test"'})
        data: bytes | bytearray = entry.data
        if entry.flip_byte is not None:
            data = bytearray(entry.data)
            data[entry.flip_byte] ^= 0xFF
        start, end, status, extra = 0, len(data) - 1, 200, {}
        rng = self.headers.get("Range")
        if rng and not entry.ignore_range:
            first, _, last = rng.removeprefix("bytes=").partition("-")
            start = int(first)
            end = min(int(last), end) if last else end
            if start >= len(data):
                return self._status(req, 416, {"Content-Range": f"bytes */{len(data)}"})
            status, extra = 206, {"Content-Range": f"bytes {start}-{end}/{len(data)}"}
        if entry.etag_per_request:
            extra["ETag"] = f'"v{entry.requests}"'
        elif entry.etag is not None:
            extra["ETag"] = entry.etag
        payload = bytes(memoryview(data)[start:end + 1])
        self._status(req, status, {**extra, "Content-Length": str(len(payload))})
        if body:
            if entry.cut_after is not None and len(payload) > entry.cut_after:
                payload, entry.cut_after = payload[:entry.cut_after], None
            # counted before the write: a client that has read everything must see the count
            path = urllib.parse.urlsplit(self.path).path
            self.server.served[path] = self.server.served.get(path, 0) + len(payload)
            req.bytes = len(payload)
            self.wfile.write(payload)

    def _authorized(self, auth: tuple[str, str]) -> bool:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        return self.headers.get("Authorization") == f"Basic {token}"

    def _send(self, req: Request, code: int, payload: bytes, headers: Mapping[str, str]) -> None:
        self._status(req, code, {**headers, "Content-Length": str(len(payload))})
        self.wfile.write(payload)
        req.bytes = len(payload)

    def _status(self, req: Request, code: int, headers: Mapping[str, str] | None = None) -> None:
        req.status = code
        self.send_response(code)
        for key, value in (headers or {"Content-Length": "0"}).items():
            self.send_header(key, value)
        self.end_headers()


_SITE_ROUTES = {"/login": _Handler._site_login_page, "/downloads": _Handler._site_list,
                "/md5-sum": _Handler._site_md5, "/file-handling": _Handler._site_file}


class LoopbackServer(ThreadingHTTPServer):
    """ThreadingHTTPServer on 127.0.0.1 with in-memory files and a request log."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, Entry] = {}
        self.dropbox: dict[str, Entry] = {}
        self.drive: dict[str, Entry] = {}
        self.drive_strict: set[str] = set()  # ids that need a uuid from the confirm page
        self.drive_uuids: set[str] = set()
        self.cityscapes: CityscapesSite | None = None
        self.requests: list[Request] = []
        self.served: dict[str, int] = {}
        self.errors: list[BaseException | None] = []

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Record (not print) a handler error, e.g. the client hanging up mid-body."""
        self.errors.append(sys.exc_info()[1])

    def add(self, path: str, data: bytes, **faults: Any) -> str:
        """Serve `data` at `path` (faults: see Entry); return its url."""
        self.files[path] = Entry(data, **faults)
        return self.url(path)

    def add_dropbox(self, key: str, name: str, data: bytes, **faults: Any) -> str:
        """Share `data` Dropbox-style; return the `dl=0` (preview page) url."""
        self.dropbox[f"/s/{key}/{name}"] = Entry(data, **faults)
        return self.url(f"/s/{key}/{name}?dl=0")

    def add_drive(self, file_id: str, data: bytes, *, strict: bool = False,
                  **faults: Any) -> str:
        """Share `data` Drive-style; return the base url (without query) to download it from.
        With `strict`, confirm=t alone gets the confirm page: its form's uuid is needed too."""
        self.drive[file_id] = Entry(data, **faults)
        if strict:
            self.drive_strict.add(file_id)
        return self.url("/download")

    def add_cityscapes(self, username: str, password: str,
                       packages: Mapping[int, tuple[str, bytes]], **faults: Any) -> str:
        """Run the Cityscapes API for these credentials and packages; return its base url."""
        self.cityscapes = CityscapesSite(username, password, {
            pid: (name, Entry(data, **faults)) for pid, (name, data) in packages.items()})
        return self.url("")

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.server_address[1]}{path}"

    def requests_for(self, path: str) -> list[Request]:
        """Requests whose path (with query, or without when `path` has none) equals `path`."""
        return [req for req in self.requests
                if path in (req.path, urllib.parse.urlsplit(req.path).path)]


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


def make_zip(path: Path, members: Mapping[str, bytes], *, top: str | None = "pkg",
             zip64: bool = True, compression: int = zipfile.ZIP_STORED) -> Path:
    """A zip of `members` under the folder `top`. With `zip64`, every member is written with
    force_zip64 and the zip64 limits are lowered while writing, so the central directory uses
    zip64 extra fields (offsets, sizes) and zip64 end records, as in archives over 4 GiB."""
    limits = {"ZIP64_LIMIT": 1 << 10, "ZIP_FILECOUNT_LIMIT": 8} if zip64 else {}
    with mock.patch.multiple(zipfile, **limits), zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(f"{top}/{name}" if top else name, (1980, 1, 1, 0, 0, 0))
            info.compress_type = compression
            with zf.open(info, "w", force_zip64=zip64) as fh:
                fh.write(data)
    return path


def make_evil_zip(path: Path) -> Path:
    """A zip holding a good member, `../evil`, `/abs/evil2` and a symlink member `link`."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("pkg/good.bin", b"good")
        zf.writestr("../evil", b"escape")
        zf.writestr(zipfile.ZipInfo("/abs/evil2"), b"absolute")
        info = zipfile.ZipInfo("pkg/link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    return path
