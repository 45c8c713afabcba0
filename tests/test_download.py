"""Offline tests of the resumable downloader, the hash manifest and safe extraction."""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import os
import stat
import tarfile
import urllib.error
import zipfile
from pathlib import Path

import pytest
from http_fixture import NET, http_server, payload  # noqa: F401

from xinc.data.download import (
    DownloadError,
    ensure_archive,
    fetch,
    find_archive,
    hash_matches,
    known_hashes,
    partial_paths,
)
from xinc.data.extract import safe_extract
from xinc.data.net import Transient, request_errors

DATA, MD5, SHA = payload(30_000)


def test_clean_fetch(http_server, tmp_path):  # noqa: F811
    url = http_server.add("/a.zip", DATA)
    dest = tmp_path / "a.zip"
    rec = fetch(url, dest, **NET)
    assert dest.read_bytes() == DATA
    assert (rec["sha256"], rec["md5"], rec["size"]) == (SHA, MD5, len(DATA))
    assert rec["bytes_fetched"] == len(DATA) and rec["etag"] == '"v1"'
    assert not partial_paths(dest)[0].exists() and not partial_paths(dest)[1].exists()


def test_cut_then_resume_with_range(http_server, tmp_path):  # noqa: F811
    url = http_server.add("/a.zip", DATA, cut_after=10_000)
    dest = tmp_path / "a.zip"
    with pytest.raises(DownloadError, match="run again to resume"):
        fetch(url, dest, retries=0, **NET)
    part = partial_paths(dest)[0]
    assert not dest.exists() and part.stat().st_size == 10_000
    rec = fetch(url, dest, sha256=SHA, **NET)
    second = http_server.requests_for("/a.zip")[-1]
    assert second.headers["Range"] == "bytes=10000-" and second.status == 206
    assert second.bytes == 20_000 and rec["bytes_fetched"] == 20_000
    assert http_server.served["/a.zip"] == len(DATA)
    assert dest.read_bytes() == DATA


def test_cut_retried_within_one_call(http_server, tmp_path):  # noqa: F811
    url = http_server.add("/a.zip", DATA, cut_after=10_000)
    rec = fetch(url, tmp_path / "a.zip", sha256=SHA, **NET)
    assert rec["bytes_fetched"] == len(DATA) and http_server.served["/a.zip"] == len(DATA)


def test_complete_part_finishes_on_416(http_server, tmp_path):  # noqa: F811
    url = http_server.add("/a.zip", DATA, cut_after=len(DATA) - 1)
    dest = tmp_path / "a.zip"
    with pytest.raises(DownloadError):
        fetch(url, dest, retries=0, **NET)
    part = partial_paths(dest)[0]
    with open(part, "ab") as fh:  # as if the process died after the last byte
        fh.write(DATA[-1:])
    rec = fetch(url, dest, sha256=SHA, **NET)
    assert http_server.requests_for("/a.zip")[-1].status == 416 and rec["bytes_fetched"] == 0
    assert dest.read_bytes() == DATA


def test_server_ignoring_range_restarts(http_server, tmp_path):  # noqa: F811
    url = http_server.add("/a.zip", DATA, cut_after=10_000, ignore_range=True)
    dest = tmp_path / "a.zip"
    with pytest.raises(DownloadError):
        fetch(url, dest, retries=0, **NET)
    fetch(url, dest, sha256=SHA, **NET)
    assert http_server.requests_for("/a.zip")[-1].status == 200
    assert dest.read_bytes() == DATA


def test_flipped_byte_names_both_hashes(http_server, tmp_path):  # noqa: F811
    url = http_server.add("/a.zip", DATA, flip_byte=123)
    dest = tmp_path / "a.zip"
    bad = bytearray(DATA)
    bad[123] ^= 0xFF
    with pytest.raises(ValueError) as err:
        fetch(url, dest, sha256=SHA, **NET)
    message = str(err.value)
    assert url in message and SHA in message and hashlib.sha256(bad).hexdigest() in message
    assert not dest.exists() and partial_paths(dest)[0].read_bytes() == bytes(bad)


def test_etag_change_restarts(http_server, tmp_path):  # noqa: F811
    url = http_server.add("/a.zip", b"x" * 30_000, cut_after=10_000)
    dest = tmp_path / "a.zip"
    with pytest.raises(DownloadError):
        fetch(url, dest, retries=0, **NET)
    http_server.add("/a.zip", DATA, etag='"v2"')
    rec = fetch(url, dest, sha256=SHA, **NET)
    assert dest.read_bytes() == DATA and rec["etag"] == '"v2"'
    assert http_server.requests_for("/a.zip")[-1].headers.get("Range") is None


def test_http_500_once_is_retried(http_server, tmp_path):  # noqa: F811
    url = http_server.add("/a.zip", DATA, fail_once=500)
    rec = fetch(url, tmp_path / "a.zip", sha256=SHA, **NET)
    assert [r.status for r in http_server.requests] == [500, 200] and rec["size"] == len(DATA)


def _failing(exc: BaseException, **hints) -> BaseException:
    """What `request_errors` turns `exc`, raised in its block, into."""
    with pytest.raises(BaseException) as caught, \
            request_errors("http://u:secret@127.0.0.1/a.zip", **hints):
        raise exc
    return caught.value


@pytest.mark.parametrize(("code", "kind", "text"), [
    (503, Transient, "HTTP 503 Busy"), (429, Transient, "HTTP 429 Busy"),
    (404, DownloadError, "HTTP 404 Busy; check it"),
    (401, DownloadError, "HTTP 401 Busy: refused"), (403, DownloadError, "HTTP 403 Busy: refused"),
    (416, urllib.error.HTTPError, "Busy")])
def test_request_errors_map_http_codes(code, kind, text):
    err = urllib.error.HTTPError("http://127.0.0.1/a.zip", code, "Busy", {}, None)
    got = _failing(err, hint="; check it", refused=": refused", passthrough=(416,))
    assert type(got) is kind and text in str(got) and "secret" not in str(got)
    if kind is not urllib.error.HTTPError:
        assert str(got).startswith("http://127.0.0.1/a.zip: HTTP")
    assert "check it" not in str(_failing(err, refused=": refused", passthrough=(416,)))
    if code in (401, 403):  # without `refused`, a refusal reads like any other 4xx
        assert str(_failing(err, hint="; check it")).endswith("Busy; check it")


def test_request_errors_lost_connection_is_transient():
    got = _failing(urllib.error.URLError("connection refused"))
    assert isinstance(got, Transient) and "connection refused" in str(got)
    assert isinstance(_failing(ConnectionResetError("reset")), Transient)
    assert isinstance(_failing(KeyError("other")), KeyError)  # not a network failure


def test_abbreviated_hashes():
    assert hash_matches(f"{SHA[:8]}…{SHA[-4:]}", SHA)
    assert hash_matches(f"{SHA[:6]}...{SHA[-2:]}", SHA)
    assert hash_matches(SHA.upper(), SHA) and not hash_matches(f"{SHA[:8]}…0000", SHA)
    assert not hash_matches(SHA[:8], SHA) and not hash_matches(SHA, None)


def test_find_archive_needs_no_network(tmp_path):
    assert find_archive("a.zip", tmp_path / "dl") is None
    archive_dir, _ = _user_file(tmp_path, DATA)
    found = find_archive("a.zip", tmp_path / "dl", archive_dir=archive_dir, md5=MD5)
    assert found == tmp_path / "dl" / "a.zip" and found.read_bytes() == DATA
    assert known_hashes(tmp_path / "dl" / "manifest.json", "a.zip")["sha256"] == SHA
    assert find_archive("a.zip", tmp_path / "dl") == found  # in place, with its sidecar


def test_bad_credentials_never_leak(http_server, tmp_path, caplog, capsys):  # noqa: F811
    secret = "s3cr3t-Pa55"
    url = http_server.add("/a.zip", DATA, auth=("user", "right-one"))
    caplog.set_level(logging.DEBUG)
    with pytest.raises(DownloadError, match="401") as err:
        fetch(url, tmp_path / "a.zip", auth=("user", secret), **{**NET, "progress": True})
    captured = capsys.readouterr()
    texts = [str(err.value), repr(err.value), caplog.text, captured.out, captured.err]
    assert all(secret not in text for text in texts)
    assert "credentials" in str(err.value)
    fetch(url, tmp_path / "a.zip", auth=("user", "right-one"), sha256=SHA, **NET)
    token = base64.b64encode(b"user:right-one").decode()
    rec = fetch(url, tmp_path / "b.zip", auth=lambda: {"Authorization": f"Basic {token}"}, **NET)
    assert rec["sha256"] == SHA


def test_allow_hosts_refuses_before_connecting(http_server, tmp_path):  # noqa: F811
    url = http_server.add("/a.zip", DATA).replace("127.0.0.1", "localhost")
    with pytest.raises(DownloadError, match="allow_hosts"):
        fetch(url, tmp_path / "a.zip", **NET)
    assert http_server.requests == []


def _user_file(tmp_path: Path, data: bytes) -> tuple[Path, os.stat_result]:
    archive_dir = tmp_path / "archives"
    archive_dir.mkdir()
    user = archive_dir / "a.zip"
    user.write_bytes(data)
    os.utime(user, (1_000_000_000, 1_000_000_000))
    return archive_dir, user.stat()


def test_archive_dir_is_linked_without_request(http_server, tmp_path):  # noqa: F811
    url = http_server.add("/a.zip", DATA)
    archive_dir, before = _user_file(tmp_path, DATA)
    dest = ensure_archive("a.zip", url, tmp_path / "dl", archive_dir=archive_dir, sha256=SHA,
                          **NET)
    assert dest.read_bytes() == DATA and dest.stat().st_ino == before.st_ino
    after = (archive_dir / "a.zip").stat()
    assert after.st_mtime == before.st_mtime and (archive_dir / "a.zip").read_bytes() == DATA
    assert http_server.requests == []
    assert (tmp_path / "dl" / "a.zip.json").exists()


def test_archive_dir_wrong_hash(http_server, tmp_path):  # noqa: F811
    url = http_server.add("/a.zip", DATA)
    wrong = DATA[:-1] + b"!"
    archive_dir, before = _user_file(tmp_path, wrong)
    with pytest.raises(ValueError) as err:
        ensure_archive("a.zip", url, tmp_path / "dl", archive_dir=archive_dir, sha256=SHA, **NET)
    message = str(err.value)
    assert "a.zip" in message and SHA in message and hashlib.sha256(wrong).hexdigest() in message
    user = archive_dir / "a.zip"
    assert user.read_bytes() == wrong and user.stat().st_mtime == before.st_mtime
    assert not (tmp_path / "dl" / "a.zip").exists() and http_server.requests == []


def test_manifest_trust_on_first_use(http_server, tmp_path):  # noqa: F811
    url = http_server.add("/a.zip", DATA)
    downloads = tmp_path / "dl"
    ensure_archive("a.zip", url, downloads, **NET)
    recorded = known_hashes(downloads / "manifest.json", "a.zip")
    assert recorded == {"url": url, "size": len(DATA), "md5": MD5, "sha256": SHA}
    n_requests = len(http_server.requests)
    assert ensure_archive("a.zip", url, downloads, **NET) == downloads / "a.zip"
    assert len(http_server.requests) == n_requests
    (downloads / "a.zip").unlink()
    http_server.add("/a.zip", DATA[:-1] + b"!", etag='"v2"')
    with pytest.raises(ValueError, match="manifest.json") as err:
        ensure_archive("a.zip", url, downloads, **NET)
    assert SHA in str(err.value) and MD5 in str(err.value)
    assert not (downloads / "a.zip").exists()


def _zip(tmp_path: Path, members: dict[str, bytes], symlink: str | None = None) -> Path:
    path = tmp_path / "x.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        if symlink is not None:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return path


def _tar(tmp_path: Path, members: dict[str, bytes], symlink: str | None = None) -> Path:
    path = tmp_path / "x.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        if symlink is not None:
            info = tarfile.TarInfo(symlink)
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tf.addfile(info)
    return path


@pytest.mark.parametrize("make", [_zip, _tar])
def test_safe_extract(tmp_path, make):
    archive = make(tmp_path, {"d/a.txt": b"abc", "b.txt": b"hello"})
    dest = tmp_path / "raw" / "x"
    info = safe_extract(archive, dest)
    assert (dest / "d" / "a.txt").read_bytes() == b"abc" and (dest / "b.txt").exists()
    assert info["members"] == 2 and info["bytes"] == 8 and (dest / ".extracted").exists()
    assert not dest.with_name("x.tmp").exists()
    (dest / "b.txt").unlink()
    assert safe_extract(archive, dest) == info and not (dest / "b.txt").exists()


@pytest.mark.parametrize("make", [_zip, _tar])
@pytest.mark.parametrize("bad", ["../evil", "/abs/evil", "d/../../evil"])
def test_safe_extract_refuses_escapes(tmp_path, make, bad):
    archive = make(tmp_path, {"ok.txt": b"1", bad: b"2"})
    with pytest.raises(ValueError, match="refusing") as err:
        safe_extract(archive, tmp_path / "raw" / "x")
    assert str(archive) in str(err.value) and bad in str(err.value)
    assert not (tmp_path / "raw").exists() or not any((tmp_path / "raw").iterdir())
    assert not (tmp_path / "evil").exists()


@pytest.mark.parametrize("make", [_zip, _tar])
def test_safe_extract_refuses_links(tmp_path, make):
    archive = make(tmp_path, {"ok.txt": b"1"}, symlink="link")
    with pytest.raises(ValueError, match="is a link"):
        safe_extract(archive, tmp_path / "raw" / "x")
    assert not (tmp_path / "raw" / "x").exists()
