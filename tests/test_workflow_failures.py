"""The workflow surviving failure: a training killed with SIGKILL resumes from its state and ends
with the weights of an uninterrupted run; a bad input fails its own branch only (--keep-going);
every run records its provenance. Smoke settings, one seed, the two synthetic videos."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import xinc
from tests.conftest import BIN, ROOT, snakemake
from xinc.data import generate, prepare_video, working_resolution
from xinc.models import load_checkpoint

pytestmark = pytest.mark.slow  # workflow runs killed and resumed

OVERLAY = """\
seeds: [1]
figures:
  fig12: {seeds: null}
  fig13: {videos: null, seeds: null}
  fig14: {videos: null}
"""
# the smoke preset's videos: (id, data variant, crop)
VIDEOS = {"cityscapes_vps": ("0001", "synthetic-tiny-seed0", None),
          "vipseg": ("1_xincSynth01a", "synthetic-tiny-seed0-crop64x128", [64, 128])}
WORK = {ds: f"data/work/{ds}/{variant}/{vid}/32x64" for ds, (vid, variant, _) in VIDEOS.items()}
NERV = {"cityscapes_vps": "results/smoke/models/nerv/cityscapes_vps/0001/s1",
        "vipseg": "results/smoke/models/nerv/vipseg/1_xincSynth01a/s1"}
FFN = {"cityscapes_vps": "results/smoke/models/ffn/cityscapes_vps/0001/f4/s1",
       "vipseg": "results/smoke/models/ffn/vipseg/1_xincSynth01a/f4/s1"}


def config_args(workdir: Path, *overlays: Path) -> list[str]:
    return ["--configfile", str(ROOT / "presets" / "smoke.yaml"), str(workdir / "overlay.yaml"),
            *map(str, overlays), "--directory", str(workdir)]


def output(result: subprocess.CompletedProcess) -> str:
    return result.stdout + result.stderr


def make_data(workdir: Path) -> None:
    """The data stage's files where the workflow puts them, made by the library calls of its
    rules (synth_dataset, prepare_video, working_res) in this process: Snakemake finds them
    present and up to date, and no job pays a start-up for them."""
    synthetic = workdir / "data" / "synthetic" / "tiny-seed0"
    for ds, (vid, variant, crop) in VIDEOS.items():
        generate(ds, synthetic / ds, synthetic / f"{ds}.truth.npz", seed=0, scale="tiny")
        prepared = workdir / "data" / "prepared" / ds / variant / vid
        prepare_video(ds, synthetic / ds, vid, prepared, crop=crop)
        working_resolution(prepared, workdir / WORK[ds], 32, 64)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """Both videos at working resolution and the run's record (config.yaml, provenance.json)."""
    workdir = tmp_path_factory.mktemp("prepared")
    (workdir / "overlay.yaml").write_text(OVERLAY)
    make_data(workdir)
    result = snakemake("--cores", "2", *config_args(workdir), "results/smoke/provenance.json")
    assert result.returncode == 0, output(result)[-5000:]
    assert "localrule run_config:" in result.stderr and "working_res" not in result.stderr
    return workdir


def copy_of(prepared: Path, workdir: Path) -> Path:
    """The prepared folder with its Snakemake records and file times."""
    shutil.copytree(prepared, workdir, symlinks=True)
    return workdir


def start_snakemake(workdir: Path, *args: str) -> subprocess.Popen:
    """`snakemake --cores 1 <args>` in its own process group, output to workdir/console.txt."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--cores",
           "1", *args]
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    with open(workdir / "console.txt", "w") as console:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=console, stderr=subprocess.STDOUT,
                                start_new_session=True)


def kill(process: subprocess.Popen) -> None:
    """SIGKILL the process group (snakemake and its jobs) unless it has ended and been reaped
    (its id may then be another's)."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def test_killed_training_resumes_to_the_weights_of_an_uninterrupted_run(prepared, tmp_path):
    """SIGKILL once the first training state exists; `--unlock`, then the same command: the
    training resumes and ends with the weights of the same config run in a fresh folder."""
    killed, fresh = copy_of(prepared, tmp_path / "killed"), copy_of(prepared, tmp_path / "fresh")
    states = tmp_path / "states.yaml"  # a state every 2 epochs: killed long before the end
    states.write_text("train:\n  nerv: {epochs: 16, checkpoint_every: 2}\n")
    target = f"{NERV['cityscapes_vps']}/ckpt.pt"
    reference = start_snakemake(fresh, *config_args(fresh, states), target)  # meanwhile
    try:
        resume_after_kill(killed, states, target)
        assert reference.wait(timeout=600) == 0, (fresh / "console.txt").read_text()[-3000:]
    finally:
        kill(reference)
    want, got = (load_checkpoint(d / target).state_dict() for d in (fresh, killed))
    assert want.keys() == got.keys()
    for key, tensor in want.items():
        assert torch.equal(got[key], tensor), key


def resume_after_kill(killed: Path, states: Path, target: str) -> None:
    """Kill the training of `target` once its state exists, then do what a user does."""
    state = killed / f"{target}.state"
    run = start_snakemake(killed, *config_args(killed, states), target)
    try:
        while not state.exists():
            assert run.poll() is None, (killed / "console.txt").read_text()[-3000:]
            time.sleep(0.02)
    finally:
        kill(run)
    assert not (killed / target).exists(), "the training ended before it was killed"
    # the kill leaves Snakemake's lock (not its outputs: the job had written none)
    assert snakemake(*config_args(killed, states), "--unlock").returncode == 0
    resumed = snakemake("--cores", "1", *config_args(killed, states), target)
    assert resumed.returncode == 0, output(resumed)[-3000:]
    log = (killed / "logs" / "smoke" / "train" / "nerv" / "cityscapes_vps" / "0001" / "s1.log")
    assert re.search(r"resumed NeRV training from \S+/ckpt\.pt\.state at epoch \d+/16$",
                     log.read_text(), re.MULTILINE), log.read_text()[-2000:]
    assert not state.exists()


def files_of(workdir: Path) -> dict[Path, tuple[int, str]]:
    """(mtime, sha256) of every data and results file."""
    return {p: (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for top in ("data", "results") for p in (workdir / top).rglob("*") if p.is_file()}


def test_keep_going_fails_only_the_branch_of_a_bad_input(prepared, tmp_path):
    """NaN in the NeRV frames of one video: its NeRV fails, naming the file; its FFN (other
    frames) and the other video's models are made; nothing made before is touched."""
    work = copy_of(prepared, tmp_path / "run")
    bad = f"{WORK['cityscapes_vps']}/frames_bicubic.npy"
    frames = np.load(work / bad)
    frames[3, 5, 7, 1] = np.nan
    np.save(work / bad, frames)
    before = files_of(work)
    made = [f"{FFN['cityscapes_vps']}/ckpt.pt", f"{NERV['vipseg']}/ckpt.pt",
            f"{FFN['vipseg']}/ckpt.pt"]
    result = snakemake("--cores", "2", "--keep-going", *config_args(work),
                       f"{NERV['cityscapes_vps']}/ckpt.pt", *made)
    assert result.returncode != 0
    assert (f"{bad}: frame 3 holds 1 NaN or infinite values (1 in 1 of 30 frames); it is "
            "written by rule working_res: rerun it with `snakemake --forcerun working_res`"
            ) in result.stderr
    assert not (work / NERV["cityscapes_vps"] / "ckpt.pt").exists()
    for path in made:
        assert (work / path).is_file(), path
        assert json.loads((work / path).with_name("metrics.json").read_text())["psnr"] > 5
    assert {p: v for p, v in files_of(work).items() if p in before} == before


def test_run_records_its_config_code_version_and_input_hashes(prepared):
    record = json.loads((prepared / "results" / "smoke" / "provenance.json").read_text())
    config = prepared / "results" / "smoke" / "config.yaml"
    assert record["config"] == {"path": "results/smoke/config.yaml",
                                "bytes": config.stat().st_size,
                                "sha256": hashlib.sha256(config.read_bytes()).hexdigest()}
    work = sorted(p for folder in WORK.values() for p in (prepared / folder).iterdir())
    assert len(work) == 10  # frames (2), masks, segments and meta of each video
    assert record["inputs"] == {
        p.relative_to(prepared).as_posix(): {"bytes": p.stat().st_size,
                                             "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
        for p in work}
    described = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                               capture_output=True, text=True)
    top = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--show-toplevel"],
                         capture_output=True, text=True).stdout.strip()
    checkout = described.returncode == 0 and Path(top).resolve() == ROOT.resolve()
    assert record["code"]["version"] == (described.stdout.strip() if checkout
                                         else xinc.__version__)
    assert record["code"]["xinc_version"] == xinc.__version__


def test_provenance_covers_the_pretrained_checkpoints(prepared, tmp_path):
    mine = {ds: tmp_path / "mine" / ds / f"{Path(folder).parts[-2]}.pt"
            for ds, folder in WORK.items()}
    for path in mine.values():
        path.parent.mkdir(parents=True)
        path.write_bytes(b"weights")
    pretrained = tmp_path / "pretrained.yaml"
    pretrained.write_text(f"pretrained:\n  nerv: {tmp_path}/mine/{{dataset}}/{{video}}.pt\n")
    plan = snakemake("-n", *config_args(prepared, pretrained), "results/smoke/provenance.json")
    assert plan.returncode == 0, output(plan)[-3000:]
    job = output(plan).split("rule run_config:")[1].split("output:")[0]
    assert all(str(path) in job for path in mine.values()), job
    assert all(f"{folder}/frames_bicubic.npy" in job for folder in WORK.values()), job
