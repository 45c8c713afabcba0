"""The provenance record of a run (xinc.provenance): config hash, code version, input hashes.
Through the workflow: tests/test_workflow_failures.py."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

import xinc
from tests.conftest import ROOT
from xinc.provenance import code_version, git_version, write_provenance

GIT = shutil.which("git")


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t",
                           *args], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_record_holds_the_hashes_of_the_config_and_every_input(tmp_path):
    config = tmp_path / "results" / "r" / "config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("run: r\n")
    inputs = {tmp_path / "b.npy": b"\x93NUMPY" + bytes(range(256)) * 9000,  # > one read block
              tmp_path / "a.json": b'{"T": 4}\n', tmp_path / "empty.csv": b""}
    for path, data in inputs.items():
        path.write_bytes(data)
    out = tmp_path / "results" / "r" / "provenance.json"
    record = write_provenance(out, config, [*inputs, tmp_path / "a.json"], tmp_path)
    assert json.loads(out.read_text()) == record
    assert record["format"] == 1
    assert record["config"] == {"path": str(config), "bytes": 7,
                                "sha256": hashlib.sha256(b"run: r\n").hexdigest()}
    assert record["inputs"] == {str(p): {"bytes": len(data), "sha256": hashlib.sha256(data)
                                         .hexdigest()} for p, data in inputs.items()}
    assert list(record["inputs"]) == sorted(map(str, inputs))
    assert record["code"] == {"version": xinc.__version__, "from": "xinc.__version__",
                              "xinc_version": xinc.__version__}  # tmp_path: no git checkout


@pytest.mark.skipif(GIT is None, reason="git is not installed")
def test_code_version_is_git_describe_of_the_source_tree(tmp_path):
    repo = tmp_path / "xinc-src"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "Snakefile").write_text("# v1\n")
    git(repo, "add", "Snakefile")
    git(repo, "commit", "-q", "-m", "first")
    git(repo, "tag", "-a", "v1.2", "-m", "release")
    assert code_version(repo) == {"version": "v1.2", "from": "git describe --always --dirty",
                                  "xinc_version": xinc.__version__}
    (repo / "Snakefile").write_text("# v2\n")
    assert git_version(repo) == "v1.2-dirty"
    (repo / "workflow").mkdir()
    assert git_version(repo / "workflow") is None  # inside a checkout is not the top of one
    shutil.rmtree(repo / ".git")
    assert git_version(repo) is None


@pytest.mark.skipif(GIT is None, reason="git is not installed")
def test_this_checkout_reports_its_git_describe():
    done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--show-toplevel"],
                          capture_output=True, text=True)
    if done.returncode != 0 or Path(done.stdout.strip()).resolve() != ROOT.resolve():
        pytest.skip(f"{ROOT} is not a git checkout")
    assert code_version(ROOT)["version"] == git(ROOT, "describe", "--always", "--dirty")
