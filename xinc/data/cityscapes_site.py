"""The Cityscapes download site, spoken directly (the protocol of csDownload).

Credentials come from `CITYSCAPES_USERNAME`/`CITYSCAPES_PASSWORD`, else `$NETRC` or `~/.netrc`,
else csDownload's `credentials.json`. The password is sent only in the login form: it never
appears in a url, a log line, an exception, a sidecar or the manifest.
"""

from __future__ import annotations

import http.client
import json
import logging
import netrc
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xinc.data.net import DownloadError, check_host, opener, request_errors, retrying

log = logging.getLogger(__name__)

_REDIRECTS = {301, 302, 303, 307, 308}
_MD5 = re.compile(r"[0-9a-f]{32}")
_SIZE = re.compile(r"([\d.]+)\s*([KMGT]?B)", re.IGNORECASE)


@dataclass(frozen=True)
class Credentials:
    """A Cityscapes account; `origin` says where it was found (never the password)."""

    username: str
    password: str = field(repr=False)
    origin: str = ""


def credentials_json() -> Path:
    """csDownload's stored credentials (appdirs user_data_dir on Linux)."""
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "cityscapesscripts" / "credentials.json"


def _from_env() -> Credentials | None:
    """CITYSCAPES_USERNAME and CITYSCAPES_PASSWORD, both or neither."""
    user, password = os.environ.get("CITYSCAPES_USERNAME"), os.environ.get("CITYSCAPES_PASSWORD")
    if bool(user) != bool(password):
        missing = "CITYSCAPES_PASSWORD" if user else "CITYSCAPES_USERNAME"
        raise DownloadError(f"Cityscapes credentials: {missing} is not set; set both "
                            "CITYSCAPES_USERNAME and CITYSCAPES_PASSWORD, or neither")
    return Credentials(user, password, "environment") if user and password else None


def _from_netrc(host: str) -> Credentials | None:
    """The `machine host` (or `default`) entry of $NETRC or ~/.netrc."""
    named = os.environ.get("NETRC")
    path = Path(named) if named else Path.home() / ".netrc"
    if not path.is_file():
        if named:
            raise DownloadError(f"NETRC names {path}, which is not a file")
        return None
    try:  # ~/.netrc itself gets the stdlib's owner and permission checks
        entry = netrc.netrc(str(path) if named else None).authenticators(host)
    except netrc.NetrcParseError as err:  # its message may quote a token: not shown
        raise DownloadError(f"{path}: cannot be parsed (line {err.lineno}) or is readable by "
                            "others (chmod 600 it)") from None
    if entry is None or not entry[0] or not entry[2]:
        return None
    return Credentials(entry[0], entry[2], f"netrc {path}")


def _from_json() -> Credentials | None:
    """csDownload's credentials.json ({"username", "password"})."""
    path = credentials_json()
    if not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text())
        return Credentials(stored["username"], stored["password"], f"csDownload {path}")
    except (ValueError, KeyError, TypeError):
        raise DownloadError(f"{path}: expected json with username and password") from None


def find_credentials(host: str) -> Credentials:
    """Cityscapes credentials from the environment, a netrc entry for `host`, or csDownload."""
    for source in (_from_env, lambda: _from_netrc(host), _from_json):
        found = source()
        if found is not None:
            return found
    raise DownloadError(
        "no Cityscapes credentials: register at https://www.cityscapes-dataset.com/register/, "
        "then set CITYSCAPES_USERNAME and CITYSCAPES_PASSWORD, or add "
        f"'machine {host} login USER password PASS' to ~/.netrc (or the file $NETRC names), "
        f"or store them with csDownload ({credentials_json()})")


def size_bytes(text: str) -> int | None:
    """'241MB' -> bytes (approximate, as the site lists it); None when not parseable."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        return None
    return int(float(match[1]) * 1024 ** "BKMGT".index(match[2].upper()[0]))


class CityscapesSite:
    """A logged-in session with the Cityscapes site (`base_url`, e.g. the official one)."""

    def __init__(self, base_url: str, *, allow_hosts: Sequence[str] | None = None,
                 timeout: float = 60, retries: int = 5, backoff: float = 1.0) -> None:
        self.base = base_url.rstrip("/")
        self.host = urllib.parse.urlsplit(self.base).hostname or ""
        check_host(self.base, allow_hosts)
        self._net = (allow_hosts, timeout)
        self._retry = (retries, backoff)
        self._cookies: dict[str, str] = {}

    def _call(self, path: str, form: dict[str, str] | None = None) -> tuple[int, bytes]:
        """GET (or POST `form` to) `path` without following redirects: (status, body)."""
        url = f"{self.base}{path}"
        check_host(url, self._net[0])
        data = urllib.parse.urlencode(form).encode() if form is not None else None

        def once() -> tuple[int, http.client.HTTPMessage, bytes]:
            req = urllib.request.Request(url, data=data)
            if self._cookies:
                req.add_header("Cookie", self.cookie())
            try:
                with (request_errors(url, passthrough=_REDIRECTS),
                      opener(url, self._net[0], follow_redirects=False).open(
                          req, timeout=self._net[1]) as resp):
                    return resp.status, resp.headers, resp.read(1 << 22)
            except urllib.error.HTTPError as err:  # a redirect: the reply is in its headers
                err.close()
                return err.code, err.headers, b""

        status, headers, body = retrying(once, *self._retry)
        for header in headers.get_all("Set-Cookie") or []:
            name, _, value = header.split(";", 1)[0].partition("=")
            self._cookies[name.strip()] = value.strip()
        return status, body

    def cookie(self) -> str:
        """The session's Cookie header value."""
        return "; ".join(f"{name}={value}" for name, value in self._cookies.items())

    def login(self, creds: Credentials) -> None:
        """Log in (a 302 means success); a refusal raises DownloadError naming only the user."""
        self._call("/login")
        status, _ = self._call("/login", {"username": creds.username,
                                          "password": creds.password, "submit": "Login"})
        if status != 302:
            raise DownloadError(
                f"Cityscapes login refused for user {creds.username} at {self.host} "
                f"(credentials from {creds.origin}): check CITYSCAPES_USERNAME/"
                "CITYSCAPES_PASSWORD or ~/.netrc")
        log.info("logged in to %s as %s", self.host, creds.username)

    def _get_text(self, path: str, what: str) -> str:
        """The body of a page that needs the session; a redirect means it has none."""
        status, body = self._call(path)
        if status != 200:
            raise DownloadError(f"{self.host}{path}: HTTP {status} for the {what}; log in "
                                "first (the session may have expired: run again)")
        return body.decode("utf-8", "replace")

    def packages(self) -> list[dict[str, Any]]:
        """The package list: [{name, packageID, size, thirdparty}]."""
        try:
            return json.loads(self._get_text("/downloads/?list", "package list"))
        except ValueError:
            raise DownloadError(f"{self.host}: the package list is not json") from None

    def package(self, name: str) -> dict[str, Any]:
        """The list entry of package `name`, with packageID as int."""
        listing = self.packages()
        for entry in listing:
            if entry.get("name") == name:
                return {**entry, "packageID": int(entry["packageID"])}
        names = sorted(str(entry.get("name")) for entry in listing)
        raise DownloadError(f"{self.host}: no package {name!r} for this account (it lists "
                            f"{len(names)}: {names[:8]}...); check the name or your access")

    def md5(self, package_id: int) -> str:
        """The md5 the site publishes for a package (first token of /md5-sum/)."""
        text = self._get_text(f"/md5-sum/?packageID={package_id}", "md5").split()
        if not text or not _MD5.fullmatch(text[0].lower()):
            raise DownloadError(f"{self.host}: no md5 for packageID {package_id}")
        return text[0].lower()

    def file_url(self, package_id: int) -> str:
        """The url that serves a package to this session (Range supported)."""
        return f"{self.base}/file-handling/?packageID={package_id}"
