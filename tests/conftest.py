"""Shared fixtures and paths."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from hypothesis import settings

from xinc.config import load_config

# property tests draw the same examples on every run (reproducible CI)
settings.register_profile("xinc", derandomize=True, print_blob=True)
settings.load_profile("xinc")

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
FIXTURE_FILES = ("authors_nerv_small.npz", "authors_ffn_small.npz")
BIN = Path(sys.executable).parent


def snakemake(*args: str, cwd: Path = ROOT, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run `python -m snakemake` on the project's Snakefile, capturing its output."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), *args]
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def fixture_path(name: str) -> Path:
    """Path of golden fixture `name` (tests/fixtures/README.md); a missing file fails the test."""
    path = FIXTURES / name
    if not path.is_file():
        pytest.fail(f"golden fixture {path} is missing: it is part of the repository "
                    f"(tests/fixtures/README.md); restore it with `git checkout -- "
                    f"tests/fixtures/{name}`", pytrace=False)
    return path


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """The golden fixtures' folder, after checking that both files are there."""
    for name in FIXTURE_FILES:
        fixture_path(name)
    return FIXTURES


# keys of every metrics.json a trainer writes (docs/formats.md §4)
METRIC_KEYS = {
    "arch", "params", "psnr", "psnr_history", "seconds", "device", "seed",
    "psnr_q8", "bpp", "bits_per_param",
}


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One intra-op thread: much faster than two contended ones on a small shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def smoke() -> dict:
    """The smoke preset's resolved config (a fresh copy per test)."""
    return load_config("smoke", ROOT)
