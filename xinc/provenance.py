"""Provenance of a run's results: the config, the code version and the inputs they are made from.

`results/<run>/provenance.json` (docs/formats.md §10), written by rule run_config beside the
config record. Integers and strings only, so equal inputs give equal bytes.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import xinc
from xinc.io import write_json

FORMAT = 1
GIT_DESCRIBE = ("describe", "--always", "--dirty")
GIT_TIMEOUT_S = 60


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in blocks."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def file_record(path: str | Path) -> dict[str, Any]:
    """Size in bytes and SHA-256 of one file."""
    return {"bytes": Path(path).stat().st_size, "sha256": sha256_file(path)}


def _git(source: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(source), *args], capture_output=True, text=True,
                          timeout=GIT_TIMEOUT_S, check=True)
    return done.stdout.strip()


def git_version(source: str | Path) -> str | None:
    """`git describe --always --dirty` of `source` when it is the top of a git checkout; None
    when it is not (no git, a copy without .git, a folder inside another repository)."""
    source = Path(source).resolve()
    try:
        top = Path(_git(source, "rev-parse", "--show-toplevel")).resolve()
        return _git(source, *GIT_DESCRIBE) if top == source else None
    except (OSError, subprocess.SubprocessError):
        return None


def code_version(source: str | Path) -> dict[str, str]:
    """The version of the code in `source`, the workflow's source tree: its `git_version`, else
    the package's version; with `from` saying which, and the package version."""
    version = git_version(source)
    origin = "git describe --always --dirty" if version is not None else "xinc.__version__"
    return {"version": version or xinc.__version__, "from": origin,
            "xinc_version": xinc.__version__}


def provenance(config: str | Path, inputs: Iterable[str | Path],
               source: str | Path) -> dict[str, Any]:
    """What `write_provenance` writes: the config record's path and hash, the code version of
    `source`, and the size and hash of every input file (by path, as given)."""
    return {
        "format": FORMAT,
        "config": {"path": str(config), **file_record(config)},
        "code": code_version(source),
        "inputs": {str(path): file_record(path) for path in sorted(map(str, inputs))},
    }


def write_provenance(path: str | Path, config: str | Path, inputs: Iterable[str | Path],
                     source: str | Path) -> dict[str, Any]:
    """Write `provenance.json` (atomically) and return what it holds."""
    record = provenance(config, inputs, source)
    write_json(path, record)
    return record
