"""Offline tests of reading selected zip members over HTTP Range requests."""

from __future__ import annotations

import json
import os
import re
import struct
import time
import zipfile
from pathlib import Path

import pytest
from http_fixture import LoopbackServer, http_server, make_evil_zip, make_zip  # noqa: F401

from xinc.data.download import DownloadError, fetch
from xinc.data.remote_zip import HttpRangeFile, extract_members, fetch_zip_members, probe_range

NET = {"backoff": 0, "timeout": 5, "allow_hosts": ["127.0.0.1"]}
FAST = {**NET, "progress": False}


def _members(n: int, size: int, seed: int = 0) -> dict[str, bytes]:
    """n incompressible members named f00000.bin, ..."""
    rng = __import__("random").Random(seed)
    return {f"f{i:05d}.bin": rng.randbytes(size) for i in range(n)}


@pytest.fixture(scope="module")
def big_zip(tmp_path_factory) -> tuple[Path, dict[str, bytes]]:
    members = _members(200, 20_000)
    return make_zip(tmp_path_factory.mktemp("zip") / "a.zip", members), members


def _full_extract(archive: Path, dest: Path) -> Path:
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(dest)
    return dest


def _ranges(server: LoopbackServer, path: str) -> list[tuple[int, int]]:
    """(first, last) of every Range request for `path`."""
    out = []
    for req in server.requests_for(path):
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", req.headers.get("Range", ""))
        if match and req.bytes:
            out.append((int(match[1]), int(match[1]) + req.bytes - 1))
    return out


def _data_span(archive: Path, name: str) -> tuple[int, int]:
    """[first, last] byte of member `name`'s data in `archive`."""
    with zipfile.ZipFile(archive) as zf, open(archive, "rb") as fh:
        info = zf.getinfo(name)
        fh.seek(info.header_offset)
        header = fh.read(30)
        n_name, n_extra = struct.unpack("<HH", header[26:30])
        first = info.header_offset + 30 + n_name + n_extra
        return first, first + info.compress_size - 1


def test_zip_is_zip64(big_zip):
    archive, _ = big_zip
    data = archive.read_bytes()
    assert b"PK\x06\x06" in data[-200:] and b"PK\x06\x07" in data[-200:]  # zip64 end records
    with zipfile.ZipFile(archive) as zf:
        info = zf.infolist()[-1]
        assert struct.unpack("<H", info.extra[:2])[0] == 0x0001  # zip64 extra field
        assert info.filename.startswith("pkg/")


def test_probe_range(http_server, big_zip):  # noqa: F811
    archive, _ = big_zip
    url = http_server.add("/a.zip", archive.read_bytes())
    assert probe_range(url, **NET) == archive.stat().st_size
    plain = http_server.add("/b.zip", b"abc", ignore_range=True)
    assert probe_range(plain, **NET) is None


def test_range_file_reads_like_a_file(http_server, big_zip):  # noqa: F811
    archive, _ = big_zip
    data = archive.read_bytes()
    url = http_server.add("/a.zip", data, fail_once=503)
    fh = HttpRangeFile(url, size=len(data), block_size=4096, **NET)
    for pos, n in [(0, 10), (5000, 70_000), (len(data) - 5, 100), (123, 1)]:
        fh.seek(pos)
        assert fh.read(n) == data[pos:pos + n]
    assert fh.bytes_fetched == http_server.served["/a.zip"] and fh.requests >= 3


def test_transient_faults_retried_file_change_refused(http_server, big_zip, tmp_path):  # noqa: F811
    archive, members = big_zip
    url = http_server.add("/a.zip", archive.read_bytes(), cut_after=5_000)
    rec = extract_members(url, ["f00100.bin"], tmp_path / "out", **FAST)
    assert (tmp_path / "out" / "pkg" / "f00100.bin").read_bytes() == members["f00100.bin"]
    assert rec["bytes_fetched"] == http_server.served["/a.zip"]
    url = http_server.add("/b.zip", archive.read_bytes(), etag_per_request=True)
    with pytest.raises(DownloadError, match="changed on the server"):
        extract_members(url, ["f00100.bin"], tmp_path / "out2", **FAST)


def test_remote_fetches_only_selected(http_server, big_zip, tmp_path):  # noqa: F811
    archive, members = big_zip
    url = http_server.add("/a.zip", archive.read_bytes())
    wanted = ["f00003.bin", "f00050.bin", "f00051.bin", "f00120.bin", "f00199.bin"]
    rec = fetch_zip_members(url, wanted, tmp_path / "out", downloads_dir=tmp_path / "dl",
                            name="a.zip", **FAST)
    served = http_server.served["/a.zip"]
    assert rec["mode"] == "remote" and rec["written"] == 5
    assert served < 0.15 * archive.stat().st_size
    assert rec["bytes_fetched"] == served
    full = _full_extract(archive, tmp_path / "full")
    for name in wanted:
        assert (tmp_path / "out" / "pkg" / name).read_bytes() == (full / "pkg" / name).read_bytes()
    assert sorted(p.name for p in (tmp_path / "out" / "pkg").iterdir()) == wanted
    marker = json.loads((tmp_path / "out" / ".complete").read_text())
    assert set(marker["members"]) == {f"pkg/{name}" for name in wanted}
    assert marker["source"] == url and marker["mode"] == "remote"
    assert not (tmp_path / "dl" / "a.zip").exists()


def test_range_ignored_falls_back_to_full(http_server, big_zip, tmp_path, caplog):  # noqa: F811
    archive, members = big_zip
    url = http_server.add("/a.zip", archive.read_bytes(), ignore_range=True)
    wanted = ["f00007.bin", "f00100.bin"]
    rec = fetch_zip_members(url, wanted, tmp_path / "out", downloads_dir=tmp_path / "dl",
                            name="a.zip", **FAST)
    assert rec["mode"] == "full" and rec["bytes_fetched"] == archive.stat().st_size
    assert "falling back to the full download" in caplog.text
    for name in wanted:
        assert (tmp_path / "out" / "pkg" / name).read_bytes() == members[name]
    assert (tmp_path / "dl" / "a.zip").read_bytes() == archive.read_bytes()
    with pytest.raises(Exception, match="cannot read a.zip remotely"):
        fetch_zip_members(url, wanted, tmp_path / "o2", downloads_dir=tmp_path / "dl2",
                          name="a.zip", fallback="error", **FAST)


def test_local_copy_first(http_server, big_zip, tmp_path):  # noqa: F811
    archive, members = big_zip
    url = http_server.add("/a.zip", archive.read_bytes())
    rec = fetch_zip_members(url, ["f00001.bin"], tmp_path / "out", downloads_dir=tmp_path / "dl",
                            name="a.zip", archive_dir=archive.parent, **FAST)
    assert rec["mode"] == "local" and rec["bytes_fetched"] == 0 and http_server.requests == []
    assert (tmp_path / "out" / "pkg" / "f00001.bin").read_bytes() == members["f00001.bin"]


def test_rerun_skips_present_members(http_server, big_zip, tmp_path):  # noqa: F811
    archive, members = big_zip
    url = http_server.add("/a.zip", archive.read_bytes())
    first = ["f00010.bin", "f00011.bin", "f00090.bin"]
    out = tmp_path / "out"
    extract_members(url, first, out, **FAST)
    n_requests = len(http_server.requests)
    rec = extract_members(url, first, out, **FAST)
    assert rec["written"] == 0 and len(http_server.requests) == n_requests  # marker: no network
    (out / ".complete").unlink()  # e.g. Snakemake removed the output: CRCs are read from disk
    rec = extract_members(url, [*first, "f00012.bin", "f00150.bin"], out, **FAST)
    assert (rec["written"], rec["skipped"]) == (2, 3)
    later = _ranges(http_server, "/a.zip")[n_requests:]
    for name in first:
        lo, hi = _data_span(archive, f"pkg/{name}")
        assert not any(a <= hi and b >= lo for a, b in later), name
    assert (out / "pkg" / "f00150.bin").read_bytes() == members["f00150.bin"]
    assert len(json.loads((out / ".complete").read_text())["members"]) == 5


@pytest.mark.parametrize(("member", "why"), [("evil", "'..'"), ("evil2", "absolute"),
                                             ("link", "is a link")])
def test_unsafe_member_refused(http_server, tmp_path, member, why):  # noqa: F811
    url = http_server.add("/e.zip", make_evil_zip(tmp_path / "e.zip").read_bytes())
    out = tmp_path / "deep" / "out"
    with pytest.raises(ValueError, match=why):
        extract_members(url, ["good.bin", member], out, **FAST)
    assert not (tmp_path / "deep" / "evil").exists() and not (out / ".complete").exists()
    assert not list(tmp_path.rglob("evil*"))


def test_corrupt_member_crc_error(http_server, big_zip, tmp_path):  # noqa: F811
    archive, members = big_zip
    first, _ = _data_span(archive, "pkg/f00040.bin")
    url = http_server.add("/a.zip", archive.read_bytes(), flip_byte=first + 777)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="Bad CRC-32") as err:
        extract_members(url, ["f00039.bin", "f00040.bin"], out, **FAST)
    assert "f00040.bin" in str(err.value)
    assert not (out / "pkg" / "f00040.bin").exists() and not (out / ".complete").exists()
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_missing_members_listed(http_server, big_zip, tmp_path):  # noqa: F811
    archive, _ = big_zip
    url = http_server.add("/a.zip", archive.read_bytes())
    with pytest.raises(ValueError, match=r"2 requested member\(s\).*nope1"):
        extract_members(url, ["f00001.bin", "nope1", "nope2"], tmp_path / "out", **FAST)


def test_allow_hosts_refused(http_server, big_zip, tmp_path):  # noqa: F811
    archive, _ = big_zip
    url = http_server.add("/a.zip", archive.read_bytes()).replace("127.0.0.1", "localhost")
    with pytest.raises(Exception, match="allow_hosts"):
        extract_members(url, ["f00001.bin"], tmp_path / "out", **FAST)
    assert http_server.requests == []


def measure_remote_vs_full(server: LoopbackServer, tmp_path: Path, *, n: int = 600,
                           size: int = 100_000, pick: int = 30) -> dict[str, float]:
    """Bytes and wall time of a remote extraction of `pick` of `n` members vs the full download
    plus local extraction, on a synthetic zip of n x size incompressible bytes."""
    archive = make_zip(tmp_path / "m.zip", _members(n, size, seed=1))
    url = server.add("/m.zip", archive.read_bytes())
    wanted = [f"f{i:05d}.bin" for i in range(0, n, n // pick)][:pick]
    t0 = time.perf_counter()
    remote = extract_members(url, wanted, tmp_path / "remote", **FAST)
    t1 = time.perf_counter()
    full = fetch(url, tmp_path / "dl" / "m.zip", **FAST)
    extract_members(tmp_path / "dl" / "m.zip", wanted, tmp_path / "full", **FAST)
    t2 = time.perf_counter()
    return {"archive_bytes": archive.stat().st_size, "remote_bytes": remote["bytes_fetched"],
            "remote_s": t1 - t0, "full_bytes": full["bytes_fetched"], "full_s": t2 - t1,
            "selected_bytes": pick * size}


def test_measure_remote_vs_full(http_server, tmp_path, capsys):  # noqa: F811
    m = measure_remote_vs_full(http_server, tmp_path)
    with capsys.disabled():
        print(f"\nremote_zip on a {m['archive_bytes'] / 1e6:.1f} MB zip, 30 of 600 members "
              f"({m['selected_bytes'] / 1e6:.1f} MB): remote {m['remote_bytes'] / 1e6:.2f} MB "
              f"in {m['remote_s']:.2f} s; full {m['full_bytes'] / 1e6:.1f} MB in "
              f"{m['full_s']:.2f} s; ratio {m['remote_bytes'] / m['full_bytes']:.3f}")
    assert m["remote_bytes"] < 0.07 * m["full_bytes"]
    assert os.path.getsize(tmp_path / "remote" / "pkg" / "f00000.bin") == 100_000
