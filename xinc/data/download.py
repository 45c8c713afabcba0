"""Resumable, verified HTTP downloads and the trust-on-first-use hash manifest.

`fetch` streams a url to `<dest parent>/.partial/<name>.part`, resumes it with HTTP Range requests,
checks size and hashes (a hash may be abbreviated `prefix…suffix`), and moves the file into place
with `os.replace` only when it is complete and correct. `ensure_archive` adds pre-placed archives
(`archive_dir`, also alone as `find_archive`), the manifest `manifest.json` of hashes first seen,
and the sidecar `{name}.json`.
"""

from __future__ import annotations

import fcntl
import hashlib
import http.client
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tqdm import tqdm

from xinc.data.net import (
    Auth,
    DownloadError,
    Transient,
    auth_headers,
    check_host,
    opener,
    redact,
    request_errors,
)
from xinc.io import write_json

CHUNK = 1 << 16
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_ELLIPSIS = re.compile(r"…|\.\.\.")
_ABBREVIATED = " (abbreviated: only its prefix and suffix are checked)"


class _Restart(Exception):
    """The partial file cannot be resumed: it is discarded and the download starts from 0."""


def partial_paths(dest: Path) -> tuple[Path, Path]:
    """The `.part` file and its state json for the final path `dest`."""
    part = dest.parent / ".partial" / f"{dest.name}.part"
    return part, part.with_name(f"{part.name}.json")


def _load_state(state_path: Path) -> dict[str, Any]:
    """The state json of a partial download, or {} when missing or unreadable."""
    try:
        return json.loads(state_path.read_text())
    except (OSError, ValueError):
        return {}


def _discard(part: Path, state_path: Path) -> None:
    """Delete a partial download and its state."""
    part.unlink(missing_ok=True)
    state_path.unlink(missing_ok=True)


def _resume_offset(key: str, part: Path, state_path: Path) -> int:
    """Bytes already in `part` that belong to the download `key` (0 and a clean slate otherwise)."""
    if part.exists() and _load_state(state_path).get("url") == key:
        return part.stat().st_size
    _discard(part, state_path)
    return 0


def _validator(headers: Mapping[str, str]) -> str | None:
    """The ETag, else Last-Modified, of a response."""
    return headers.get("ETag") or headers.get("Last-Modified")


def _total_size(resp: http.client.HTTPResponse, offset: int, url: str) -> int | None:
    """The full size of the remote file, checking that a 206 reply starts at `offset`."""
    if resp.status == 206:
        match = _CONTENT_RANGE.fullmatch(resp.headers.get("Content-Range", "").strip())
        if match is None or int(match[1]) != offset:
            raise _Restart(f"{redact(url)}: 206 reply with Content-Range "
                           f"{resp.headers.get('Content-Range')!r} does not start at byte {offset}")
        return None if match[3] == "*" else int(match[3])
    length = resp.headers.get("Content-Length")
    return int(length) if length is not None else None


def _open(url: str, offset: int, headers: dict[str, str], timeout: float,
          allow_hosts: Sequence[str] | None) -> http.client.HTTPResponse:
    """Send the GET (with Range when resuming); map HTTP errors to retry or failure."""
    req = urllib.request.Request(url)
    for key, value in headers.items():
        req.add_unredirected_header(key, value)
    if offset:
        req.add_header("Range", f"bytes={offset}-")
    with request_errors(url, hint="; check the url in the config", passthrough=(416,),
                        refused=": the server refused the credentials; check the username and "
                        "password (env vars or ~/.netrc)"):
        return opener(url, allow_hosts).open(req, timeout=timeout)


def _stream(resp: http.client.HTTPResponse, part: Path, offset: int, total: int | None,
            progress: bool, counter: list[int]) -> None:
    """Append the body of `resp` to `part`, adding the bytes to `counter[0]`. Short reads retry."""
    written = 0
    bar = tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
               desc=part.name.removesuffix(".part"), file=sys.stderr, disable=not progress)
    try:
        with bar, open(part, "ab") as fh:
            while chunk := resp.read(CHUNK):
                fh.write(chunk)
                written += len(chunk)
                counter[0] += len(chunk)
                bar.update(len(chunk))
            fh.flush()
            os.fsync(fh.fileno())
    except (OSError, http.client.HTTPException) as err:
        raise Transient(f"{part.name}: connection lost after {offset + written} bytes: {err}") \
            from None
    if total is not None and offset + written < total:
        raise Transient(f"{part.name}: short read, {offset + written} of {total} bytes")


def _attempt(url: str, key: str, part: Path, state_path: Path, *, size: int | None,
             headers: dict[str, str], timeout: float, allow_hosts: Sequence[str] | None,
             progress: bool, counter: list[int]) -> dict[str, Any]:
    """One request: resume or restart `part`; return {etag, size} of the complete file."""
    offset = _resume_offset(key, part, state_path)
    state = _load_state(state_path)
    try:
        resp = _open(url, offset, headers, timeout, allow_hosts)
    except urllib.error.HTTPError:  # 416: the range starts at or past the end
        expected = state.get("size") or size
        if expected is not None and offset == expected:
            return {"etag": state.get("validator"), "size": offset}
        raise _Restart(f"{redact(url)}: 416 for a resume at byte {offset}") from None
    with resp:
        if resp.status == 200 and offset:
            part.unlink()  # the server ignored Range: the body is the whole file
            offset = 0
        validator = _validator(resp.headers)
        if offset and state.get("validator") != validator:
            raise _Restart(f"{redact(url)}: the file changed on the server "
                           f"({state.get('validator')!r} -> {validator!r})")
        total = _total_size(resp, offset, url)
        expected = total if total is not None else size
        write_json(state_path, {"url": key, "validator": validator, "size": expected})
        _stream(resp, part, offset, total, progress, counter)
    return {"etag": validator, "size": expected}


def file_hashes(path: Path) -> dict[str, str]:
    """md5 and sha256 of a file, read once."""
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            md5.update(chunk)
            sha256.update(chunk)
    return {"md5": md5.hexdigest(), "sha256": sha256.hexdigest()}


def hash_matches(want: str | None, actual: str | None) -> bool:
    """True if hex digest `actual` equals `want`, or, when `want` is abbreviated as
    `prefix…suffix` (or `prefix...suffix`), starts and ends like it."""
    if want is None or actual is None:
        return want == actual
    want, actual = want.lower(), actual.lower()
    parts = _ELLIPSIS.split(want)
    if len(parts) == 2:
        return actual.startswith(parts[0]) and actual.endswith(parts[1])
    return actual == want


def verify(path: Path, what: str, *, size: int | None = None, md5: str | None = None,
           sha256: str | None = None, fix: str) -> dict[str, Any]:
    """Check size, then md5/sha256 of `path`; return {size, md5, sha256} or raise ValueError.

    `what` names the file in the message (a url or a path); `fix` says what to do about it.
    """
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        raise ValueError(f"{what}: size mismatch: expected {size} bytes, got {actual_size}; {fix}")
    actual = file_hashes(path)
    wrong = [f"{algo} expected {want}{_ABBREVIATED * bool(_ELLIPSIS.search(want))}, "
             f"got {actual[algo]}" for algo, want in (("md5", md5), ("sha256", sha256))
             if want is not None and not hash_matches(want, actual[algo])]
    if wrong:
        raise ValueError(f"{what}: hash mismatch: {'; '.join(wrong)}; {fix}")
    return {"size": actual_size, **actual}


def fetch(url: str, dest: str | Path, *, size: int | None = None, md5: str | None = None,
          sha256: str | None = None, allow_hosts: Sequence[str] | None = None, retries: int = 5,
          backoff: float = 1.0, auth: Auth = None, timeout: float = 60, progress: bool = True,
          resume_key: str | None = None) -> dict[str, Any]:
    """Download `url` to `dest` resumably and verified; return the download record.

    The record holds url, size, md5, sha256, etag, seconds and bytes_fetched (bytes received by
    this call). `retries` is the number of repeated attempts after transient failures, waiting
    `backoff * 2**i` seconds before the i-th. On a hash mismatch the `.part` file is kept.
    A partial file is resumed only for the same `resume_key` (default: the url), so a url with
    a per-session token can name a stable key.
    """
    check_host(url, allow_hosts)
    dest = Path(dest)
    part, state_path = partial_paths(dest)
    part.parent.mkdir(parents=True, exist_ok=True)
    headers = auth_headers(auth)
    start, counter = time.monotonic(), [0]
    for attempt in range(retries + 1):
        try:
            got = _attempt(url, resume_key or url, part, state_path, size=size, headers=headers,
                           timeout=timeout, allow_hosts=allow_hosts, progress=progress,
                           counter=counter)
            break
        except (_Restart, Transient) as err:
            if isinstance(err, _Restart):
                _discard(part, state_path)
            error = err
        if attempt < retries:
            time.sleep(backoff * 2**attempt)
    else:
        kept = f"the partial file {part} is kept: " if part.exists() else ""
        raise DownloadError(f"{error}; gave up after {retries + 1} attempts; {kept}"
                            "run again to resume, or raise retries")
    fix = (f"the partial file {part} is kept for inspection; delete it to download again, "
           "or correct the expected value in the config")
    if got["size"] is not None and size is not None and got["size"] != size:
        raise ValueError(f"{redact(url)}: the server reports {got['size']} bytes, the config "
                         f"expects {size}; {fix}")
    checked = verify(part, redact(url), size=size or got["size"], md5=md5, sha256=sha256, fix=fix)
    os.replace(part, dest)
    _fsync_dir(dest.parent)
    state_path.unlink(missing_ok=True)
    return {"url": redact(url), **checked, "etag": got["etag"],
            "seconds": round(time.monotonic() - start, 3), "bytes_fetched": counter[0]}


def _fsync_dir(path: Path) -> None:
    """Flush a directory entry (the rename) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `<path>.lock` (parallel download jobs share the manifest)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f"{path.name}.lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _read_manifest(manifest_path: Path) -> dict[str, Any]:
    """The manifest as a dict ({} when it does not exist yet)."""
    return json.loads(manifest_path.read_text()) if manifest_path.exists() else {}


def known_hashes(manifest_path: str | Path, name: str) -> dict[str, Any] | None:
    """The {url, size, md5, sha256} recorded for `name`, or None when never downloaded."""
    return _read_manifest(Path(manifest_path)).get(name)


def record_hashes(manifest_path: str | Path, name: str, record: Mapping[str, Any]) -> None:
    """Record url, size, md5 and sha256 of `name` in the manifest (atomic, locked)."""
    manifest_path = Path(manifest_path)
    with _locked(manifest_path):
        manifest = _read_manifest(manifest_path)
        manifest[name] = {key: record.get(key) for key in ("url", "size", "md5", "sha256")}
        write_json(manifest_path, manifest)


def _expected(given: Mapping[str, Any], recorded: Mapping[str, Any] | None) -> dict[str, Any]:
    """Expected size/md5/sha256: the given values, else those recorded in the manifest (also
    when a given hash is abbreviated and the recorded full one matches it)."""
    recorded = recorded or {}

    def pick(key: str) -> Any:
        want, have = given[key], recorded.get(key)
        if want is None or (key != "size" and _ELLIPSIS.search(want) and hash_matches(want, have)):
            return have
        return want

    return {key: pick(key) for key in given}


def _link(src: Path, dest: Path) -> None:
    """Hard-link `src` to `dest`, or symlink it when they are on different file systems."""
    dest.unlink(missing_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        os.symlink(src.resolve(), dest)


def _from_archive_dir(src: Path, dest: Path, expected: Mapping[str, Any]) -> dict[str, Any]:
    """Verify a pre-placed archive and link it to `dest`; return its record."""
    checked = verify(src, str(src), **expected,
                     fix=f"the file was left unchanged; replace it with the official file or "
                         f"remove it from archive_dir to download {src.name} instead")
    _link(src, dest)
    return {**checked, "etag": None, "origin": str(src)}


def _in_place(dest: Path, sidecar: Path, expected: Mapping[str, Any]) -> bool:
    """True if `dest` and its sidecar exist and agree with the expected size and hashes."""
    if not (dest.exists() and sidecar.exists()):
        return False
    done = _load_state(sidecar)
    return dest.stat().st_size == done.get("size") and expected["size"] in (None, done["size"]) \
        and all(hash_matches(expected[key], done.get(key))
                for key in ("md5", "sha256") if expected[key] is not None)


def _finish(downloads_dir: Path, name: str, record: Mapping[str, Any],
            recorded: Mapping[str, Any] | None) -> Path:
    """Record first-seen hashes in the manifest, write the sidecar; return the archive path."""
    if recorded is None:
        record_hashes(downloads_dir / "manifest.json", name, record)
    write_json(downloads_dir / f"{name}.json",
               {**record, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return downloads_dir / name


def find_archive(name: str, downloads_dir: str | Path, *, archive_dir: str | Path | None = None,
                 url: str | None = None, size: int | None = None, md5: str | None = None,
                 sha256: str | None = None) -> Path | None:
    """`downloads_dir/name`, verified, without the network: already in place, or a verified,
    linked copy of `archive_dir/name` (sidecar and manifest written); else None."""
    downloads_dir = Path(downloads_dir)
    dest = downloads_dir / name
    recorded = known_hashes(downloads_dir / "manifest.json", name)
    expected = _expected({"size": size, "md5": md5, "sha256": sha256}, recorded)
    if _in_place(dest, downloads_dir / f"{name}.json", expected):
        return dest
    src = Path(archive_dir) / name if archive_dir is not None else None
    if src is None or not src.exists():
        return None
    downloads_dir.mkdir(parents=True, exist_ok=True)
    record = {"url": redact(url) if url else None, **_from_archive_dir(src, dest, expected)}
    return _finish(downloads_dir, name, record, recorded)


def ensure_archive(name: str, url: str, downloads_dir: str | Path, *,
                   archive_dir: str | Path | None = None, size: int | None = None,
                   md5: str | None = None, sha256: str | None = None,
                   allow_hosts: Sequence[str] | None = None, auth: Auth = None, retries: int = 5,
                   backoff: float = 1.0, timeout: float = 60, progress: bool = True,
                   resume_key: str | None = None) -> Path:
    """Make `downloads_dir/name` available, verified, with its sidecar `{name}.json`.

    Order: already in place (no network); a verified, linked copy from `archive_dir/name`; else
    `fetch(url)`. Hashes not given are taken from `downloads_dir/manifest.json` and, when it has
    none yet, recorded there on first success (trust on first use).
    """
    found = find_archive(name, downloads_dir, archive_dir=archive_dir, url=url, size=size,
                         md5=md5, sha256=sha256)
    if found is not None:
        return found
    downloads_dir = Path(downloads_dir)
    manifest = downloads_dir / "manifest.json"
    recorded = known_hashes(manifest, name)
    expected = _expected({"size": size, "md5": md5, "sha256": sha256}, recorded)
    downloads_dir.mkdir(parents=True, exist_ok=True)
    try:
        record = fetch(url, downloads_dir / name, **expected, allow_hosts=allow_hosts,
                       retries=retries, backoff=backoff, auth=auth, timeout=timeout,
                       progress=progress, resume_key=resume_key)
    except ValueError as err:
        if recorded is None:
            raise
        raise ValueError(f"{err}. The expected values were recorded in {manifest} on the "
                         f"first download; if the file changed upstream on purpose, delete "
                         f"the entry {name!r} there") from None
    return _finish(downloads_dir, name, record, recorded)
