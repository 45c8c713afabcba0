"""Extract chosen members of a zip over HTTP Range requests, without downloading the archive.

`HttpRangeFile` is a seekable read-only file over a url; `zipfile` reads the (Zip64) central
directory through it and then only the selected members, each CRC-checked. `extract_members`
writes the members atomically plus a `.complete` marker; `fetch_zip_members` falls back to the
full download when the server ignores Range.
"""

from __future__ import annotations

import http.client
import io
import json
import logging
import re
import shutil
import stat
import sys
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from tqdm import tqdm

from xinc.data.download import ensure_archive, find_archive
from xinc.data.extract import _check_name, _link_error
from xinc.data.net import (
    Auth,
    DownloadError,
    Transient,
    auth_headers,
    check_host,
    opener,
    redact,
    request_errors,
    retrying,
)
from xinc.io import atomic_path, write_json

log = logging.getLogger(__name__)

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class RangeUnsupported(DownloadError):
    """The server does not honour Range requests (it answers 200 with the whole file)."""


def _open(url: str, headers: Mapping[str, str], first: int, last: int, *,
          allow_hosts: Sequence[str] | None, timeout: float) -> http.client.HTTPResponse:
    """GET `url` for bytes first..last; map errors to Transient or DownloadError."""
    req = urllib.request.Request(url, headers={"Range": f"bytes={first}-{last}"})
    for key, value in headers.items():
        req.add_unredirected_header(key, value)
    with request_errors(url, hint=" for a Range request; check the url and the credentials"):
        return opener(url, allow_hosts).open(req, timeout=timeout)


def _range_reply(resp: http.client.HTTPResponse, url: str, first: int) -> tuple[int, int | None]:
    """(last byte, total size) of a 206 reply that starts at `first`; raise on anything else."""
    if resp.status != 206:
        if resp.headers.get("Content-Type", "").startswith("text/html"):
            raise DownloadError(f"{redact(url)}: the server sent an HTML page instead of the "
                                "file (a login or confirm page?); check the url and credentials")
        raise RangeUnsupported(f"{redact(url)}: HTTP {resp.status} to a Range request: the "
                               "server ignores Range")
    match = _CONTENT_RANGE.fullmatch(resp.headers.get("Content-Range", "").strip())
    if match is None or int(match[1]) != first:
        raise RangeUnsupported(f"{redact(url)}: 206 reply with Content-Range "
                               f"{resp.headers.get('Content-Range')!r}, expected bytes {first}-…")
    return int(match[2]), None if match[3] == "*" else int(match[3])


def probe_range(url: str, *, auth: Auth = None, allow_hosts: Sequence[str] | None = None,
                timeout: float = 60, retries: int = 5, backoff: float = 1.0) -> int | None:
    """Ask for byte 0: the total size if the server answers 206 with Content-Range, None if it
    answers 200 (Range ignored). An HTML page or an HTTP error raises DownloadError."""
    try:
        return HttpRangeFile(url, auth=auth, allow_hosts=allow_hosts, timeout=timeout,
                             retries=retries, backoff=backoff).size
    except RangeUnsupported:
        return None


class HttpRangeFile(io.RawIOBase):
    """A read-only, seekable file over an HTTP(S) url, read with Range requests.

    Misses fetch `block_size` bytes ahead (inside an `expect`ed window: up to its end, at most
    `max_span`); a read reaching the end of the file fetches at least the last `tail_size` bytes
    (zip end records). The last `cache_blocks` spans are kept (LRU). `bytes_fetched` and
    `requests` count the body bytes received and the requests sent.
    """

    def __init__(self, url: str, *, size: int | None = None, auth: Auth = None,
                 allow_hosts: Sequence[str] | None = None, timeout: float = 60,
                 retries: int = 5, backoff: float = 1.0, block_size: int = 1 << 20,
                 cache_blocks: int = 4, max_span: int = 1 << 24,
                 tail_size: int = 1 << 14) -> None:
        super().__init__()
        check_host(url, allow_hosts)
        self.url, self._headers = url, auth_headers(auth)
        self._net = {"allow_hosts": allow_hosts, "timeout": timeout}
        self._retry = (retries, backoff)
        self.block_size, self.cache_blocks = block_size, cache_blocks
        self.max_span, self.tail_size = max_span, tail_size
        self.bytes_fetched = self.requests = 0
        self._pos, self._window, self._etag = 0, (0, 0), None
        self._spans: OrderedDict[int, bytes] = OrderedDict()
        self.size = size if size is not None else retrying(self._probe, retries, backoff)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._pos = base + offset
        return self._pos

    def expect(self, start: int, end: int) -> None:
        """Hint that bytes [start, end) are read next, in order: fetch them in few requests."""
        self._window = (start, end)

    def readinto(self, buffer: Any) -> int:
        """Fill `buffer` from the current position (short only at the end of the file)."""
        view = memoryview(buffer).cast("B")
        want, done = max(0, min(len(view), self.size - self._pos)), 0
        while done < want:
            pos = self._pos + done
            start, data = self._span(pos, want - done)
            chunk = data[pos - start:pos - start + want - done]
            view[done:done + len(chunk)] = chunk
            done += len(chunk)
        self._pos += done
        return done

    def _span(self, pos: int, n: int) -> tuple[int, bytes]:
        """A cached span holding byte `pos`, fetched (with read-ahead) when missing."""
        for start, data in self._spans.items():
            if start <= pos < start + len(data):
                self._spans.move_to_end(start)
                return start, data
        lo, hi = self._window
        end = max(pos + n, min(hi, pos + self.max_span)) if lo <= pos < hi \
            else pos + max(n, self.block_size)
        start = pos
        if end >= self.size:
            end, start = self.size, max(0, min(pos, self.size - self.tail_size))
        data = retrying(lambda: self._get(start, end - 1), *self._retry)
        self._spans[start] = data
        while len(self._spans) > self.cache_blocks:
            self._spans.popitem(last=False)
        return start, data

    def _probe(self) -> int:
        """The total size, from a 1-byte Range request (RangeUnsupported when not honoured)."""
        self.requests += 1
        with _open(self.url, self._headers, 0, 0, **self._net) as resp:
            total = _range_reply(resp, self.url, 0)[1]
            self._etag = resp.headers.get("ETag") or resp.headers.get("Last-Modified")
            self.bytes_fetched += len(resp.read(1))
        if total is None:
            raise RangeUnsupported(f"{redact(self.url)}: Content-Range without a total size")
        return total

    def _get(self, first: int, last: int) -> bytes:
        """Bytes first..last in one request, checked against the size and ETag seen so far."""
        self.requests += 1
        with _open(self.url, self._headers, first, last, **self._net) as resp:
            got_last, total = _range_reply(resp, self.url, first)
            etag = resp.headers.get("ETag") or resp.headers.get("Last-Modified")
            if (total is not None and total != self.size) or (self._etag or etag) != etag:
                raise DownloadError(f"{redact(self.url)}: the file changed on the server "
                                    f"(size {total}, validator {etag!r}); run again")
            self._etag = etag
            try:
                data = resp.read(min(last, got_last) - first + 1)
            except (OSError, http.client.HTTPException) as err:
                raise Transient(f"{redact(self.url)}: connection lost: {err}") from None
        self.bytes_fetched += len(data)
        if len(data) != min(last, got_last) - first + 1 or got_last < last:
            raise Transient(f"{redact(self.url)}: short read at byte {first + len(data)}")
        return data


def _load_marker(path: Path) -> dict[str, Any]:
    """The marker json, or {} when missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _all_present(done: Mapping[str, Any], wanted: Collection[str], dest_dir: Path) -> bool:
    """True if the marker lists every wanted basename and those files have their sizes."""
    listed = {name: rec for name, rec in done.get("members", {}).items()
              if PurePosixPath(name).name in wanted}
    return {PurePosixPath(name).name for name in listed} >= set(wanted) and all(
        (dest_dir / name).is_file() and (dest_dir / name).stat().st_size == rec["size"]
        for name, rec in listed.items())


def members_present(dest_dir: str | Path, members: Collection[str],
                    marker_name: str = ".complete") -> bool:
    """True if the marker in `dest_dir` lists every wanted basename, at its size, on disk."""
    dest_dir = Path(dest_dir)
    return _all_present(_load_marker(dest_dir / marker_name), set(members), dest_dir)


def _select(zf: zipfile.ZipFile, wanted: Collection[str], label: str) -> list[zipfile.ZipInfo]:
    """The members whose basename is wanted, checked for unsafe names, in archive order."""
    chosen = [info for info in zf.infolist()
              if not info.is_dir() and PurePosixPath(info.filename).name in wanted]
    for info in chosen:
        _check_name(label, info.filename)
        if stat.S_ISLNK(info.external_attr >> 16):
            raise _link_error(label, info.filename)
    missing = sorted(set(wanted) - {PurePosixPath(info.filename).name for info in chosen})
    if missing:
        raise ValueError(f"{label}: {len(missing)} requested member(s) are not in the archive, "
                         f"e.g. {missing[:5]}; check the video/frame list against the archive")
    return sorted(chosen, key=lambda info: info.header_offset)


def _present(target: Path, info: zipfile.ZipInfo, done: Mapping[str, Any]) -> bool:
    """True if `target` already holds the member: right size and CRC (from the marker or read)."""
    if not target.is_file() or target.stat().st_size != info.file_size:
        return False
    if done.get("members", {}).get(info.filename, {}).get("crc") == info.CRC:
        return True
    crc = 0
    with open(target, "rb") as fh:
        while chunk := fh.read(1 << 20):
            crc = zlib.crc32(chunk, crc)
    return crc == info.CRC


def _groups(zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo],
            max_span: int) -> list[tuple[int, int, list[zipfile.ZipInfo]]]:
    """Runs of members whose records are adjacent in the file, as (start, end, members)."""
    offsets = sorted({info.header_offset for info in zf.infolist()} | {zf.start_dir})
    ends = {off: offsets[i + 1] for i, off in enumerate(offsets[:-1])}
    groups: list[tuple[int, int, list[zipfile.ZipInfo]]] = []
    for info in infos:
        start, end = info.header_offset, ends[info.header_offset]
        if groups and groups[-1][1] == start and end - groups[-1][0] <= max_span:
            groups[-1] = (groups[-1][0], end, [*groups[-1][2], info])
        else:
            groups.append((start, end, [info]))
    return groups


def _write_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, label: str) -> None:
    """Copy one member to `target` through zipfile (CRC-checked); nothing is left on error."""
    try:
        with atomic_path(target) as tmp, zf.open(info) as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    except zipfile.BadZipFile as err:
        raise ValueError(f"{label}: member {info.filename!r}: {err}; the archive is corrupt or "
                         "changed on the server, nothing was written for this member; run "
                         "again, or delete the archive to download it anew") from None


def _extract(zf: zipfile.ZipFile, chosen: list[zipfile.ZipInfo], dest_dir: Path,
             done: Mapping[str, Any], fh: Any, label: str, progress: bool) -> int:
    """Write the chosen members not yet present; return how many were written."""
    todo = [info for info in chosen if not _present(dest_dir / info.filename, info, done)]
    max_span = getattr(fh, "max_span", 0)
    bar = tqdm(total=sum(info.file_size for info in todo), unit="B", unit_scale=True,
               unit_divisor=1024, desc=label.rsplit("/", 1)[-1][:40], file=sys.stderr,
               disable=not progress)
    with bar:
        for start, end, infos in _groups(zf, todo, max_span):
            if isinstance(fh, HttpRangeFile):
                fh.expect(start, end)
            for info in infos:
                _write_member(zf, info, dest_dir / info.filename, label)
                bar.update(info.file_size)
    return len(todo)


def _open_source(source: str | Path, **net: Any) -> io.RawIOBase | io.BufferedReader:
    """An HttpRangeFile for an http(s) url, else the local file opened for reading."""
    if str(source).startswith(("http://", "https://")):
        return HttpRangeFile(str(source), **net)
    return open(source, "rb")


def extract_members(source: str | Path, members: Collection[str], dest_dir: str | Path, *,
                    marker_name: str = ".complete", auth: Auth = None,
                    allow_hosts: Sequence[str] | None = None, timeout: float = 60,
                    retries: int = 5, backoff: float = 1.0, progress: bool = True,
                    extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Extract the members whose basename is in `members` from a zip url or local path.

    Each goes to `dest_dir/<member path>` atomically; members already there (size and CRC) are
    skipped, and when the marker already lists them all nothing is read. The marker
    `dest_dir/<marker_name>` (json: members {path: {size, crc}}, source, bytes_fetched,
    seconds, plus `extra`) is written last. Returns the marker plus `written` and `skipped`.
    """
    start, dest_dir, wanted = time.monotonic(), Path(dest_dir), set(members)
    marker, label = dest_dir / marker_name, redact(str(source))
    done = _load_marker(marker)
    if _all_present(done, wanted, dest_dir):
        return {**done, "bytes_fetched": 0, "written": 0, "skipped": len(wanted)}
    with _open_source(source, auth=auth, allow_hosts=allow_hosts, timeout=timeout,
                      retries=retries, backoff=backoff) as fh, zipfile.ZipFile(fh) as zf:
        chosen = _select(zf, wanted, label)
        written = _extract(zf, chosen, dest_dir, done, fh, label, progress)
    kept = {name: rec for name, rec in done.get("members", {}).items()
            if (dest_dir / name).is_file()}
    record = {"members": {**kept, **{i.filename: {"size": i.file_size, "crc": i.CRC}
                                     for i in chosen}},
              "source": label, "bytes_fetched": getattr(fh, "bytes_fetched", 0),
              "seconds": round(time.monotonic() - start, 3), **(extra or {})}
    write_json(marker, record)
    log.info("%s: %d member(s) written, %d already present, %d bytes fetched in %.1f s",
             label, written, len(chosen) - written, record["bytes_fetched"], record["seconds"])
    return {**record, "written": written, "skipped": len(chosen) - written}


def fetch_zip_members(url: str, members: Collection[str], dest_dir: str | Path, *,
                      downloads_dir: str | Path, name: str, fallback: str = "full",
                      archive_dir: str | Path | None = None, size: int | None = None,
                      md5: str | None = None, sha256: str | None = None, auth: Auth = None,
                      allow_hosts: Sequence[str] | None = None, retries: int = 5,
                      backoff: float = 1.0, timeout: float = 60, progress: bool = True,
                      marker_name: str = ".complete", remote: bool = True) -> dict[str, Any]:
    """Extract the selected members of the zip `name` at `url` into `dest_dir`.

    A verified local copy (`downloads_dir/name` or `archive_dir/name`) is used first (mode
    "local"); else, with `remote`, the members are read with Range requests (mode "remote").
    A server that ignores Range, or `remote=False`, leads to the full download with
    `ensure_archive` (mode "full"); with `fallback="error"` such a server raises DownloadError
    instead. Returns the extract_members record with mode and bytes_fetched (bytes received
    over the network by this call; `size`/`md5`/`sha256` are those of the whole archive).
    """
    net = {"auth": auth, "allow_hosts": allow_hosts, "retries": retries, "backoff": backoff,
           "timeout": timeout}
    known = {"size": size, "md5": md5, "sha256": sha256}
    common = {"marker_name": marker_name, "progress": progress}
    local = find_archive(name, downloads_dir, archive_dir=archive_dir, url=url, **known)
    if local is not None:
        extra = {"mode": "local", "bytes_fetched": 0}
        return {**extract_members(local, members, dest_dir, extra=extra, **common), **extra}
    if remote:
        try:
            return {**extract_members(url, members, dest_dir, extra={"mode": "remote"}, **common,
                                      **net), "mode": "remote"}
        except RangeUnsupported as err:
            if fallback != "full":
                raise DownloadError(f"cannot read {name} remotely: {err}; use the full fetch "
                                    "mode to download the whole archive instead") from None
            log.warning("%s; falling back to the full download of %s", err, name)
    path = ensure_archive(name, url, downloads_dir, archive_dir=archive_dir, progress=progress,
                          **known, **net)
    fetched = _load_marker(Path(downloads_dir) / f"{name}.json").get("bytes_fetched", 0)
    extra = {"mode": "full", "bytes_fetched": fetched}
    return {**extract_members(path, members, dest_dir, extra=extra, **common), **extra}
