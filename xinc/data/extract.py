"""Safe archive extraction: no absolute paths, no `..`, no links; complete or absent."""

from __future__ import annotations

import json
import re
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path
from typing import Any

from xinc.io import write_json

MARKER = ".extracted"
_DRIVE = re.compile(r"^[A-Za-z]:")


def _check_name(archive: Path, name: str) -> None:
    """Refuse a member name that is absolute or climbs out of the destination."""
    parts = re.split(r"[/\\]", name)
    if name.startswith(("/", "\\")) or _DRIVE.match(name):
        raise ValueError(f"{archive}: member {name!r} has an absolute path; refusing to extract "
                         "(the archive is unsafe or corrupt: download it again from the source)")
    if ".." in parts:
        raise ValueError(f"{archive}: member {name!r} contains '..'; refusing to extract "
                         "(the archive is unsafe or corrupt: download it again from the source)")


def _link_error(archive: Path, name: str) -> ValueError:
    """The error for a link member."""
    return ValueError(f"{archive}: member {name!r} is a link; refusing to extract links "
                      "(the archive is unsafe or corrupt: download it again from the source)")


def _extract_zip(archive: Path, tmp: Path) -> dict[str, int]:
    """Check every zip member, then extract them all into `tmp`."""
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:
            _check_name(archive, info.filename)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise _link_error(archive, info.filename)
        zf.extractall(tmp)
    return {"members": len(infos), "bytes": sum(info.file_size for info in infos)}


def _extract_tar(archive: Path, tmp: Path) -> dict[str, int]:
    """Check every tar member, then extract them all into `tmp` with the `data` filter."""
    with tarfile.open(archive) as tf:
        members = tf.getmembers()
        for member in members:
            _check_name(archive, member.name)
            if member.issym() or member.islnk():
                raise _link_error(archive, member.name)
        try:
            tf.extractall(tmp, filter="data")
        except tarfile.FilterError as err:
            raise ValueError(f"{archive}: member {err.tarinfo.name!r} refused: {err}; "
                             "the archive is unsafe or corrupt: download it again") from None
    return {"members": len(members), "bytes": sum(m.size for m in members if m.isfile())}


def safe_extract(archive: str | Path, dest: str | Path) -> dict[str, Any]:
    """Extract a .zip or .tar(.gz) `archive` into `dest`; return the `.extracted` marker.

    Extracts into `<dest>.tmp/`, renames it to `dest` and writes `dest/.extracted` (json:
    archive, members, bytes). A `dest` that already has its marker is left alone.
    """
    archive, dest = Path(archive), Path(dest)
    marker = dest / MARKER
    if marker.exists():
        return json.loads(marker.read_text())
    if zipfile.is_zipfile(archive):
        extract = _extract_zip
    elif tarfile.is_tarfile(archive):
        extract = _extract_tar
    else:
        raise ValueError(f"{archive}: not a zip or tar archive; check the file (download it "
                         "again if it is truncated)")
    tmp = dest.with_name(f"{dest.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        info = {"archive": archive.name, **extract(archive, tmp)}
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(dest, ignore_errors=True)  # an incomplete earlier attempt
    tmp.rename(dest)
    write_json(marker, info)
    return info
