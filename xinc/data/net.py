"""HTTP plumbing shared by the downloaders: host guard, redirect policy, auth headers, redaction."""

from __future__ import annotations

import base64
import http.client
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TypeVar

Auth = tuple[str, str] | Callable[[], Mapping[str, str]] | None

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_T = TypeVar("_T")


class DownloadError(RuntimeError):
    """A download failed for a reason that retrying will not fix (HTTP 4xx, refused host)."""


class Transient(Exception):
    """A failure worth retrying: connection error, HTTP 5xx/429, short body."""


def retrying(call: Callable[[], _T], retries: int, backoff: float) -> _T:
    """`call()`, repeated after Transient failures, waiting `backoff * 2**i` before the i-th
    repeat; DownloadError once `retries` repeats have failed."""
    for attempt in range(retries + 1):
        try:
            return call()
        except Transient as err:
            error = err
        if attempt < retries:
            time.sleep(backoff * 2**attempt)
    raise DownloadError(f"{error}; gave up after {retries + 1} attempts; run again, "
                        "or raise retries")


@contextmanager
def request_errors(url: str, *, hint: str = "", refused: str | None = None,
                   passthrough: Collection[int] = ()) -> Iterator[None]:
    """Map the failures of a request to `url` made in this block: HTTP 5xx and 429 and lost
    connections become `Transient` (retried), other HTTP errors a `DownloadError` saying
    `url: HTTP code reason` and then `hint`, or `refused` instead for 401/403 when given.
    An HTTP error whose code is in `passthrough` is raised unchanged (the caller handles it)."""
    try:
        yield
    except urllib.error.HTTPError as err:
        if err.code in passthrough:
            raise
        err.close()
        what = f"{redact(url)}: HTTP {err.code} {err.reason}"
        if refused is not None and err.code in (401, 403):
            raise DownloadError(what + refused) from None
        if err.code >= 500 or err.code == 429:
            raise Transient(what) from None
        raise DownloadError(what + hint) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        raise Transient(f"{redact(url)}: {err}") from None


def redact(url: str) -> str:
    """`url` without any user:password@ part, safe for messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def check_host(url: str, allow_hosts: Sequence[str] | None) -> None:
    """Raise DownloadError if `allow_hosts` is set and the host of `url` is not in it."""
    host = urllib.parse.urlsplit(url).hostname
    if allow_hosts is not None and host not in allow_hosts:
        raise DownloadError(
            f"{redact(url)}: host {host!r} is not in allow_hosts {list(allow_hosts)}; "
            "add it to the config key allow_hosts or point the source at an allowed host")


class _GuardedRedirect(urllib.request.HTTPRedirectHandler):
    """Follow redirects only to hosts that `allow_hosts` permits (or none at all)."""

    def __init__(self, allow_hosts: Sequence[str] | None, follow: bool) -> None:
        self.allow_hosts = allow_hosts
        self.follow = follow

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[override]
        if not self.follow:
            return None  # urllib then raises HTTPError(code) carrying the response headers
        check_host(newurl, self.allow_hosts)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def opener(url: str, allow_hosts: Sequence[str] | None, *,
           follow_redirects: bool = True) -> urllib.request.OpenerDirector:
    """An opener that checks redirect targets and never sends loopback requests to a proxy.

    With `follow_redirects=False` a 3xx reply raises `urllib.error.HTTPError` instead.
    """
    handlers: list[urllib.request.BaseHandler] = [_GuardedRedirect(allow_hosts, follow_redirects)]
    if urllib.parse.urlsplit(url).hostname in LOOPBACK:
        handlers.append(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener(*handlers)


def auth_headers(auth: Auth) -> dict[str, str]:
    """HTTP headers for `auth`: basic auth for a (user, password) pair, else the callable's."""
    if auth is None:
        return {}
    if callable(auth):
        return dict(auth())
    token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}
