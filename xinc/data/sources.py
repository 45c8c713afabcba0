"""Where each official archive comes from, and how to obtain it (docs/spec/datasets.md §1, §3).

`ARCHIVES` is the table of sources; `resolve_source` applies the config overrides;
`obtain_archive` downloads one archive by its kind of access (Dropbox share, Cityscapes login,
Google Drive confirm page, pinned GitHub file); `obtain_members` reads selected members of a zip
package remotely (HTTP Range) or from the full archive.
"""

from __future__ import annotations

import dataclasses
import logging
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Literal

from xinc.data.cityscapes_site import CityscapesSite, find_credentials, size_bytes
from xinc.data.download import ensure_archive, find_archive
from xinc.data.net import Auth, DownloadError, check_host, opener, redact, request_errors, retrying
from xinc.data.remote_zip import fetch_zip_members, members_present

log = logging.getLogger(__name__)

CITYSCAPES_BASE_URL = "https://www.cityscapes-dataset.com"
DRIVE_URL = "https://drive.usercontent.google.com/download"
VIPSEG_COMMIT = "92e1459db13d80c8e96e167c7c2e8ef2c9ee9a2e"
_RAW = f"https://raw.githubusercontent.com/VIPSeg-Dataset/VIPSeg-Dataset/{VIPSEG_COMMIT}/"
_OVERRIDABLE = {"url", "size", "md5", "sha256"}


@dataclass(frozen=True)
class ArchiveSource:
    """One official file: its url, kind of access and what is known of its size and hashes.

    A hash may be abbreviated as `prefix…suffix` (only those ends are checked; the full hash
    is then recorded in the manifest on first download and checked afterwards).
    """

    name: str
    url: str
    auth: Literal["none", "cityscapes", "gdrive", "github"]
    size: int | None = None
    md5: str | None = None
    sha256: str | None = None
    package_id: int | None = None
    drive_id: str | None = None


def _cityscapes_url(base: str, package_id: int | None) -> str:
    """The Cityscapes file url of a package (it needs the login cookie)."""
    return f"{base.rstrip('/')}/file-handling/?packageID={package_id}"


def _drive_url(base: str, drive_id: str | None) -> str:
    """The Drive download url of a file id, with the virus-scan confirmation given upfront."""
    query = {"id": drive_id, "export": "download", "confirm": "t"}
    return f"{base}?{urllib.parse.urlencode(query)}"


ARCHIVES: dict[str, ArchiveSource] = {src.name: src for src in [
    ArchiveSource("cityscapes-vps-dataset-1.0.zip",
                  "https://www.dropbox.com/s/ecem4kq0fdkver4/cityscapes-vps-dataset-1.0.zip?dl=1",
                  "none"),
    ArchiveSource("gtFine_trainvaltest.zip", _cityscapes_url(CITYSCAPES_BASE_URL, 1),
                  "cityscapes", md5="4237c19de34c8a376e9ba46b495d6f66", package_id=1),
    # md5 from the site's /md5-sum/ (the third-party quote is not authoritative)
    ArchiveSource("leftImg8bit_sequence_trainvaltest.zip",
                  _cityscapes_url(CITYSCAPES_BASE_URL, 14), "cityscapes", package_id=14),
    ArchiveSource("VIPSeg.tar", _drive_url(DRIVE_URL, "1B13QUiE82xf7N6nVHclb4ErN-Zuai-sZ"),
                  "gdrive", drive_id="1B13QUiE82xf7N6nVHclb4ErN-Zuai-sZ"),
    ArchiveSource("panoVIPSeg_categories.json", f"{_RAW}panoVIPSeg_categories.json", "github",
                  size=8713,
                  sha256="1d45670f47a2e12b77f9b88b456c515a081a37fcd6e19479241f5a9daf400d84"),
    ArchiveSource("train.txt", f"{_RAW}train.txt", "github", size=45997, sha256="5072b980…ab49"),
    ArchiveSource("val.txt", f"{_RAW}val.txt", "github", size=5681, sha256="8bfd6326…f65e"),
    ArchiveSource("test.txt", f"{_RAW}test.txt", "github", size=6381, sha256="dd8a730d…fee1"),
]}


def resolve_source(name: str, overrides: Mapping[str, Any] | None = None) -> ArchiveSource:
    """The source of archive `name` after the config overrides.

    `overrides` holds `cityscapes_base_url`, `drive_url` and, per archive name, a mapping of
    url, size, md5, sha256 (a key present with null makes that value unknown).
    """
    if name not in ARCHIVES:
        raise ValueError(f"unknown archive {name!r}; the known archives are {sorted(ARCHIVES)}")
    overrides = overrides or {}
    src = ARCHIVES[name]
    if src.auth == "cityscapes":
        base = overrides.get("cityscapes_base_url") or CITYSCAPES_BASE_URL
        src = dataclasses.replace(src, url=_cityscapes_url(base, src.package_id))
    elif src.auth == "gdrive":
        src = dataclasses.replace(src, url=_drive_url(overrides.get("drive_url") or DRIVE_URL,
                                                      src.drive_id))
    own = dict(overrides.get(name) or {})
    if unknown := sorted(set(own) - _OVERRIDABLE):
        raise ValueError(f"sources override for {name}: unknown keys {unknown}; allowed: "
                         f"{sorted(_OVERRIDABLE)}")
    return dataclasses.replace(src, **own)


def dropbox_direct(url: str) -> str:
    """A Dropbox share url with dl=1 (dl=0 returns a preview page, not the file)."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    if not any(key == "dl" for key, _ in query) and \
            not (parts.hostname or "").endswith("dropbox.com"):
        return url
    query = [(key, value) for key, value in query if key != "dl"] + [("dl", "1")]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


class _ConfirmForm(HTMLParser):
    """The download form of Drive's "can't scan for viruses" page, and the page title."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.inputs: dict[str, str] = {}
        self.title, self._in_form, self._in_title = "", False, False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {key: value or "" for key, value in attrs}
        if tag == "form" and self.action is None and (
                attr.get("id") == "download-form" or "download" in attr.get("action", "")):
            self.action, self._in_form = attr.get("action", ""), True
        elif tag == "input" and self._in_form and attr.get("type") == "hidden":
            self.inputs[attr.get("name", "")] = attr.get("value", "")
        self._in_title = tag == "title"

    def handle_endtag(self, tag: str) -> None:
        self._in_form = self._in_form and tag != "form"
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data.strip()


def _peek(url: str, allow_hosts: Sequence[str] | None, timeout: float) -> str | None:
    """The HTML page `url` answers with, or None when it answers with a file."""
    req = urllib.request.Request(url, headers={"Range": "bytes=0-0"})
    with (request_errors(url, hint="; check the Drive file id (drive_url, sources)"),
          opener(url, allow_hosts).open(req, timeout=timeout) as resp):
        if not resp.headers.get("Content-Type", "").startswith("text/html"):
            return None
        return resp.read(1 << 21).decode("utf-8", "replace")


def drive_file_url(url: str, *, allow_hosts: Sequence[str] | None = None, timeout: float = 60,
                   retries: int = 5, backoff: float = 1.0) -> str:
    """The url that serves a Drive file itself: `url` when it answers with the file, else the
    target of the confirm form (hidden inputs id, export, confirm, uuid) on its HTML page."""
    check_host(url, allow_hosts)
    for _ in range(3):
        page = retrying(lambda u=url: _peek(u, allow_hosts, timeout), retries, backoff)
        if page is None:
            return url
        form = _ConfirmForm()
        form.feed(page)
        if form.action is None:
            raise DownloadError(
                f"{redact(url)}: Google Drive answered with a page without a download form "
                f"({form.title or 'no title'}): the file may be over its download quota or not "
                "shared; try again later, or place the archive in archive_dir")
        url = f"{urllib.parse.urljoin(url, form.action)}?{urllib.parse.urlencode(form.inputs)}"
        check_host(url, allow_hosts)
    raise DownloadError(f"{redact(url)}: Google Drive kept answering with confirm pages")


def _cityscapes_login(src: ArchiveSource, overrides: Mapping[str, Any],
                      net: Mapping[str, Any]) -> tuple[str, Auth, str]:
    """Log in; return the package's file url, the session's auth and the md5 to expect."""
    site = CityscapesSite(overrides.get("cityscapes_base_url") or CITYSCAPES_BASE_URL,
                          **{key: net[key] for key in ("allow_hosts", "timeout", "retries",
                                                       "backoff")})
    site.login(find_credentials(site.host))
    package = site.package(src.name)
    published = site.md5(package["packageID"])
    if src.md5 is not None and src.md5.lower() != published:
        raise ValueError(f"{src.name}: the Cityscapes site publishes md5 {published}, the "
                         f"config expects {src.md5}; correct sources.{src.name}.md5")
    log.info("%s: Cityscapes packageID %s, %s (~%s bytes), md5 %s", src.name,
             package["packageID"], package.get("size"), size_bytes(str(package.get("size"))),
             published)
    return site.file_url(package["packageID"]), lambda: {"Cookie": site.cookie()}, published


def _remote(src: ArchiveSource, overrides: Mapping[str, Any],
            net: Mapping[str, Any]) -> tuple[str, Auth, str | None, str | None]:
    """(url, auth, md5, resume key) to fetch `src` from, by its kind of access."""
    if src.auth == "cityscapes":
        return (*_cityscapes_login(src, overrides, net), None)
    if src.auth == "gdrive":
        keys = ("allow_hosts", "timeout", "retries", "backoff")
        return (drive_file_url(src.url, **{key: net[key] for key in keys}), None, src.md5,
                src.url)
    if src.auth == "none":
        return dropbox_direct(src.url), None, src.md5, None
    return src.url, None, src.md5, None


def obtain_archive(name: str, downloads_dir: str | Path, *,
                   overrides: Mapping[str, Any] | None = None,
                   archive_dir: str | Path | None = None,
                   allow_hosts: Sequence[str] | None = None, retries: int = 5,
                   backoff: float = 1.0, timeout: float = 60, progress: bool = True) -> Path:
    """`downloads_dir/name` verified, with its sidecar: in place or from `archive_dir` without
    the network, else downloaded (resumable) by the source's kind of access."""
    overrides = overrides or {}
    src = resolve_source(name, overrides)
    known = {"size": src.size, "md5": src.md5, "sha256": src.sha256}
    found = find_archive(name, downloads_dir, archive_dir=archive_dir, url=src.url, **known)
    if found is not None:
        return found
    net = {"allow_hosts": allow_hosts, "retries": retries, "backoff": backoff,
           "timeout": timeout}
    url, auth, md5, resume_key = _remote(src, overrides, net)
    return ensure_archive(name, url, downloads_dir, **{**known, "md5": md5}, auth=auth,
                          resume_key=resume_key, progress=progress, **net)


def obtain_members(name: str, members: Collection[str], dest_dir: str | Path,
                   downloads_dir: str | Path, *, overrides: Mapping[str, Any] | None = None,
                   archive_dir: str | Path | None = None,
                   allow_hosts: Sequence[str] | None = None, retries: int = 5,
                   backoff: float = 1.0, timeout: float = 60, progress: bool = True,
                   marker_name: str = ".complete", remote: bool = True,
                   fallback: str = "full") -> dict[str, Any]:
    """The members of zip package `name` whose basenames are in `members`, in `dest_dir`
    (see remote_zip.fetch_zip_members): logs in only when the network is needed."""
    overrides = overrides or {}
    src = resolve_source(name, overrides)
    known = {"size": src.size, "md5": src.md5, "sha256": src.sha256}
    net = {"allow_hosts": allow_hosts, "retries": retries, "backoff": backoff,
           "timeout": timeout}
    url, auth = src.url, None
    offline = members_present(dest_dir, members, marker_name) or find_archive(
        name, downloads_dir, archive_dir=archive_dir, url=src.url, **known) is not None
    if not offline:
        url, auth, known["md5"], _ = _remote(src, overrides, net)
    return fetch_zip_members(url, members, dest_dir, downloads_dir=downloads_dir, name=name,
                             fallback=fallback, archive_dir=archive_dir, auth=auth,
                             progress=progress, marker_name=marker_name, remote=remote,
                             **known, **net)
