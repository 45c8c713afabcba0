"""Offline tests of the archive sources: Dropbox, Cityscapes login, Drive confirm page, GitHub."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
from http_fixture import NET, LoopbackServer, http_server, make_zip, payload  # noqa: F401

from xinc.data.download import DownloadError, partial_paths
from xinc.data.sources import (
    ARCHIVES,
    dropbox_direct,
    obtain_archive,
    obtain_members,
    resolve_source,
)

DATA, MD5, SHA = payload(40_000)
USER, PASSWORD = "alice", "pa55-Wörd&=;s3cret"
GT, SEQ, VIP, VPS = ("gtFine_trainvaltest.zip", "leftImg8bit_sequence_trainvaltest.zip",
                     "VIPSeg.tar", "cityscapes-vps-dataset-1.0.zip")


@pytest.fixture(autouse=True)
def no_user_credentials(monkeypatch, tmp_path):
    """Keep the real ~/.netrc, csDownload file and env credentials out of every test."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "home" / "share"))
    for var in ("CITYSCAPES_USERNAME", "CITYSCAPES_PASSWORD", "NETRC"):
        monkeypatch.delenv(var, raising=False)


def _site(server: LoopbackServer, **faults) -> dict:
    """A Cityscapes site with gtFine (packageID 1); overrides pointing at it."""
    base = server.add_cityscapes(USER, PASSWORD, {1: (GT, DATA)}, **faults)
    return {"cityscapes_base_url": base, GT: {"md5": None}}


def _files_text(root: Path) -> str:
    """Everything written under `root` (sidecars, manifest, partial state), as text."""
    return "".join(p.read_bytes().decode("latin-1") for p in root.rglob("*") if p.is_file())


def test_table_and_overrides():
    assert {GT, SEQ, VIP, VPS, "panoVIPSeg_categories.json", "train.txt"} <= set(ARCHIVES)
    assert ARCHIVES[SEQ].md5 is None and ARCHIVES[GT].package_id == 1
    src = resolve_source(SEQ, {"cityscapes_base_url": "http://127.0.0.1:1/"})
    assert src.url == "http://127.0.0.1:1/file-handling/?packageID=14" and src.auth == "cityscapes"
    vip = resolve_source(VIP, {"drive_url": "http://h/download"})
    assert vip.url == "http://h/download?id=1B13QUiE82xf7N6nVHclb4ErN-Zuai-sZ" \
                      "&export=download&confirm=t"
    assert resolve_source(GT, {GT: {"md5": None, "size": 5}}).md5 is None
    with pytest.raises(ValueError, match="known archives are") as err:
        resolve_source("nope.zip")
    assert GT in str(err.value)
    with pytest.raises(ValueError, match="unknown keys"):
        resolve_source(GT, {GT: {"sha1": "x"}})


def test_dropbox_dl0_rewritten(http_server, tmp_path):  # noqa: F811
    assert dropbox_direct("https://www.dropbox.com/s/k/a.zip?dl=0") == \
        "https://www.dropbox.com/s/k/a.zip?dl=1"
    assert dropbox_direct("https://www.dropbox.com/s/k/a.zip") == \
        "https://www.dropbox.com/s/k/a.zip?dl=1"
    url = http_server.add_dropbox("ecem4kq0fdkver4", VPS, DATA)
    assert url.endswith("?dl=0")
    path = obtain_archive(VPS, tmp_path / "dl", overrides={VPS: {"url": url}}, **NET)
    assert path.read_bytes() == DATA
    assert [r.path.rsplit("?", 1)[1] for r in http_server.requests] == ["dl=1"]


def test_cityscapes_env_credentials(http_server, tmp_path, monkeypatch, caplog):  # noqa: F811
    monkeypatch.setenv("CITYSCAPES_USERNAME", USER)
    monkeypatch.setenv("CITYSCAPES_PASSWORD", PASSWORD)
    caplog.set_level(logging.DEBUG)
    path = obtain_archive(GT, tmp_path / "dl", overrides=_site(http_server), **NET)
    assert path.read_bytes() == DATA
    sidecar = json.loads((tmp_path / "dl" / f"{GT}.json").read_text())
    assert sidecar["md5"] == MD5 and sidecar["url"].endswith("/file-handling/?packageID=1")
    login = [r for r in http_server.requests if r.method == "POST"]
    assert len(login) == 1 and b"username=alice" in login[0].body
    file_req = http_server.requests_for("/file-handling/")[-1]
    assert file_req.headers["Cookie"].startswith("PHPSESSID=") and file_req.status == 200
    assert http_server.requests_for("/md5-sum/")
    assert PASSWORD not in caplog.text and PASSWORD not in _files_text(tmp_path / "dl")


def test_cityscapes_netrc_and_resume(http_server, tmp_path, monkeypatch):  # noqa: F811
    netrc = tmp_path / "my-netrc"
    netrc.write_text(f"machine 127.0.0.1 login {USER} password {PASSWORD}\n")
    monkeypatch.setenv("NETRC", str(netrc))
    overrides = _site(http_server, cut_after=15_000)
    with pytest.raises(DownloadError, match="run again to resume"):
        obtain_archive(GT, tmp_path / "dl", overrides=overrides, **{**NET, "retries": 0})
    assert partial_paths(tmp_path / "dl" / GT)[0].stat().st_size == 15_000
    assert obtain_archive(GT, tmp_path / "dl", overrides=overrides, **NET).read_bytes() == DATA
    last = http_server.requests_for("/file-handling/")[-1]
    assert last.headers["Range"] == "bytes=15000-" and last.status == 206


def test_cityscapes_csdownload_json(http_server, tmp_path):  # noqa: F811
    stored = tmp_path / "home" / "share" / "cityscapesscripts" / "credentials.json"
    stored.parent.mkdir(parents=True)
    stored.write_text(json.dumps({"username": USER, "password": PASSWORD}))
    assert obtain_archive(GT, tmp_path / "dl", overrides=_site(http_server), **NET).exists()


def test_cityscapes_md5_mismatch_with_table(http_server, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("CITYSCAPES_USERNAME", USER)
    monkeypatch.setenv("CITYSCAPES_PASSWORD", PASSWORD)
    overrides = {"cityscapes_base_url": _site(http_server)["cityscapes_base_url"]}
    with pytest.raises(ValueError, match=f"publishes md5 {MD5}.*4237c19de34c8a376e9ba46b495d6f66"):
        obtain_archive(GT, tmp_path / "dl", overrides=overrides, **NET)
    assert not (tmp_path / "dl" / GT).exists()


def test_cityscapes_bad_credentials_never_leak(http_server, tmp_path, monkeypatch,  # noqa: F811
                                               caplog, capsys):
    secret = "Wr0ng-pa55-XYZ"
    monkeypatch.setenv("CITYSCAPES_USERNAME", USER)
    monkeypatch.setenv("CITYSCAPES_PASSWORD", secret)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(DownloadError) as err:
        obtain_archive(GT, tmp_path / "dl", overrides=_site(http_server),
                       **{**NET, "progress": True})
    message = str(err.value)
    assert message.startswith(f"Cityscapes login refused for user {USER} at 127.0.0.1")
    assert "CITYSCAPES_PASSWORD or ~/.netrc" in message
    captured = capsys.readouterr()
    texts = [message, repr(err.value), str(err.value.__cause__), str(err.value.__context__),
             caplog.text, captured.out, captured.err, _files_text(tmp_path)]
    assert all(secret not in text for text in texts)
    assert secret.encode() in b"".join(r.body for r in http_server.requests)  # it was sent
    assert not http_server.requests_for("/file-handling/")


def test_cityscapes_no_credentials(http_server, tmp_path):  # noqa: F811
    with pytest.raises(DownloadError, match="no Cityscapes credentials") as err:
        obtain_archive(GT, tmp_path / "dl", overrides=_site(http_server), **NET)
    assert "CITYSCAPES_USERNAME" in str(err.value) and ".netrc" in str(err.value)
    assert "credentials.json" in str(err.value) and http_server.requests == []


def _sequence_site(server: LoopbackServer, tmp_path: Path, **faults) -> tuple[dict, dict]:
    members = {f"val/frankfurt/f{i:03d}.png": os.urandom(10_000) for i in range(60)}
    archive = make_zip(tmp_path / "seq.zip", members, top="leftImg8bit_sequence")
    base = server.add_cityscapes(USER, PASSWORD, {14: (SEQ, archive.read_bytes())}, **faults)
    return {"cityscapes_base_url": base}, members


@pytest.mark.parametrize("ignore_range", [False, True])
def test_cityscapes_sequence_members(http_server, tmp_path, monkeypatch,  # noqa: F811
                                     ignore_range):
    monkeypatch.setenv("CITYSCAPES_USERNAME", USER)
    monkeypatch.setenv("CITYSCAPES_PASSWORD", PASSWORD)
    overrides, members = _sequence_site(http_server, tmp_path, ignore_range=ignore_range)
    wanted = ["f010.png", "f011.png", "f040.png"]
    out = tmp_path / "frames"
    rec = obtain_members(SEQ, wanted, out, tmp_path / "dl", overrides=overrides, **NET)
    assert rec["mode"] == ("full" if ignore_range else "remote")
    for name in wanted:
        path = out / "leftImg8bit_sequence" / "val" / "frankfurt" / name
        assert path.read_bytes() == members[f"val/frankfurt/{name}"]
    if not ignore_range:
        assert rec["bytes_fetched"] < 0.15 * len(http_server.cityscapes.packages[14][1].data)
    n_requests = len(http_server.requests)
    again = obtain_members(SEQ, wanted, out, tmp_path / "dl", overrides=overrides, **NET)
    assert again["written"] == 0 and len(http_server.requests) == n_requests  # no login either


def test_drive_direct_and_confirm_page(http_server, tmp_path):  # noqa: F811
    file_id = ARCHIVES[VIP].drive_id
    base = http_server.add_drive(file_id, DATA, strict=True, cut_after=12_000)
    overrides = {"drive_url": base}
    with pytest.raises(DownloadError):
        obtain_archive(VIP, tmp_path / "dl", overrides=overrides, **{**NET, "retries": 0})
    path = obtain_archive(VIP, tmp_path / "dl", overrides=overrides, **NET)
    assert path.read_bytes() == DATA
    gets = [r for r in http_server.requests if r.status in (200, 206) and r.bytes > 1]
    assert "uuid=" in gets[-1].path and gets[-1].headers.get("Range") == "bytes=12000-"
    assert len(http_server.drive_uuids) == 2  # a new uuid per run, yet the partial file resumed
    http_server.add_drive("other", DATA)  # not strict: confirm=t serves the file directly
    assert obtain_archive(VIP, tmp_path / "dl2", overrides={**overrides, VIP: {
        "url": f"{base}?id=other&export=download&confirm=t"}}, **NET).read_bytes() == DATA


def test_drive_page_without_form(http_server, tmp_path):  # noqa: F811
    page = http_server.add_dropbox("k", "a", DATA)  # dl=0: an HTML page without a form
    with pytest.raises(DownloadError, match="without a download form"):
        obtain_archive(VIP, tmp_path / "dl", overrides={VIP: {"url": page}}, **NET)
    assert not (tmp_path / "dl" / VIP).exists()


def test_github_abbreviated_sha256(http_server, tmp_path):  # noqa: F811
    url = http_server.add("/train.txt", DATA)
    short = f"{SHA[:8]}…{SHA[-4:]}"
    path = obtain_archive("train.txt", tmp_path / "dl", overrides={
        "train.txt": {"url": url, "size": len(DATA), "sha256": short}}, **NET)
    assert path.read_bytes() == DATA
    n_requests = len(http_server.requests)
    assert obtain_archive("train.txt", tmp_path / "dl", overrides={
        "train.txt": {"url": url, "size": len(DATA), "sha256": short}}, **NET) == path
    assert len(http_server.requests) == n_requests  # in place: the full hash was recorded
    with pytest.raises(ValueError, match="abbreviated"):
        obtain_archive("train.txt", tmp_path / "dl2", overrides={
            "train.txt": {"url": url, "sha256": f"{SHA[:8]}…0000"}}, **NET)


def test_allow_hosts(http_server, tmp_path):  # noqa: F811
    target = http_server.url("/b.zip", host="127.0.0.2")
    url = http_server.add("/a.zip", b"", redirect=target)
    with pytest.raises(DownloadError, match="127.0.0.2.*not in allow_hosts"):
        obtain_archive("val.txt", tmp_path / "dl", overrides={"val.txt": {"url": url}}, **NET)
    assert [r.path for r in http_server.requests] == ["/a.zip"]
    base = _site(http_server)["cityscapes_base_url"].replace("127.0.0.1", "localhost")
    with pytest.raises(DownloadError, match="not in allow_hosts"):
        obtain_archive(GT, tmp_path / "dl", overrides={"cityscapes_base_url": base}, **NET)
    assert len(http_server.requests) == 1
