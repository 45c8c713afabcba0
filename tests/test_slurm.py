"""The workflow on a real one-node SLURM cluster via profiles/slurm-ci (docs/spec/workflow.md §5).

tests/slurm/slurm-up.sh starts the cluster (root; slurm-wlm and munge from Debian, which `make test`
installs) with a fake GPU; slurm-down.sh stops it by PID. The smoke preset, cut to the jobs behind
Fig 19 for one video, seed and frame, runs locally and through SLURM from the same data, and must
give the same results; a training job on truncated frames must fail the run, without a hang.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import BIN, ROOT
from xinc.models import load_checkpoint

pytestmark = pytest.mark.slow  # the workflow through a one-node SLURM cluster

SCRIPTS = ROOT / "tests" / "slurm"
PROFILE = ROOT / "profiles" / "slurm-ci"
# the smoke preset on one video, seed and frame; Figs 12/13 name seed 2, so they follow
OVERLAY = """\
datasets:
  vipseg: {videos: []}
seeds: [1]
canvas: {frames: [4]}
figures:
  fig12: {seeds: [1]}
  fig13: {seeds: [1]}
"""
# data, training, pixel groups, canvas statistics (SLURM jobs), a table and a figure (local)
TARGET = "results/smoke/figures/fig19.png"
LIMIT = 300  # seconds a run may take before `timeout` interrupts it (SIGINT: SIGTERM does not)
MARK = "# written by tests/slurm/slurm-up.sh"  # first line of its files in /etc/slurm
SUBMITTED = re.compile(r"submitted with SLURM jobid (\d+) \(log: (\S+)\)")


def cluster_unavailable() -> str | None:
    """Why this machine cannot run the test cluster (a skip reason), or None.

    slurm-wlm missing where root and apt-get could install it is a failure, not a skip: the
    Makefile installs it there.
    """
    path = f"{os.environ.get('PATH', '')}{os.pathsep}/usr/sbin{os.pathsep}/sbin"
    installed = shutil.which("slurmctld", path=path) is not None
    if os.geteuid() != 0:
        return "the test SLURM cluster needs root (daemons, /etc/slurm/slurm.conf)"
    for conf in (Path("/etc/slurm/slurm.conf"), Path("/etc/slurm/gres.conf")):
        if conf.exists() and not conf.read_text().startswith(MARK):
            return f"{conf} is this machine's own: the test cluster would replace it"
    if not installed and shutil.which("apt-get", path=path) is None:
        return "slurm-wlm is not installed and cannot be here (no apt-get)"
    if not installed:
        pytest.fail("slurm-wlm is not installed, though this machine has root and apt-get: "
                    "`make test` installs it (apt-get install --no-install-recommends slurm-wlm "
                    "munge); run that, or `make test`, first")
    return None


@pytest.fixture(scope="module")
def cluster() -> Iterator[Path]:
    """A running one-node cluster; always stopped afterwards, by its daemons' PIDs."""
    reason = cluster_unavailable()
    if reason:
        pytest.skip(reason)
    # the scripts' default state folder: a cluster left over by a killed run stops with a plain
    # tests/slurm/slurm-down.sh
    state = ROOT / ".slurm-ci" / "state"
    env = {**os.environ, "SLURM_CI_STATE": str(state)}
    try:
        up = subprocess.run([str(SCRIPTS / "slurm-up.sh")], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=180)
        if up.returncode != 0:
            pytest.fail(f"tests/slurm/slurm-up.sh failed:\n{up.stdout}\n{up.stderr}")
        yield state
    finally:
        subprocess.run([str(SCRIPTS / "slurm-down.sh")], cwd=ROOT, env=env, timeout=60)


@dataclass
class Run:
    """One finished `snakemake` invocation."""

    returncode: int
    output: str  # stdout and stderr
    workdir: Path

    def submitted(self) -> dict[int, str]:
        """{SLURM job id: its SLURM log} of every job this run submitted."""
        return {int(i): log for i, log in SUBMITTED.findall(self.output)}


class Snakemake:
    """`python -m snakemake` on the overlaid smoke preset, in the background, under `timeout`."""

    def __init__(self, workdir: Path, overlay: Path, *args: str, nice: bool = False) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        cmd = ["nice", "-n", "19"] if nice else []  # nice: only the CPU time others leave
        cmd += ["timeout", "-s", "INT", "-k", "30", str(LIMIT), sys.executable, "-m", "snakemake",
               TARGET, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
               *args, "--configfile", str(ROOT / "presets" / "smoke.yaml"), str(overlay)]
        env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
        self.log = workdir.with_suffix(".out")
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out,
                                         stderr=subprocess.STDOUT)

    def wait(self) -> Run:
        """Its exit status and output, once it ends."""
        returncode = self.proc.wait(timeout=LIMIT + 60)
        return Run(returncode, self.log.read_text(), self.workdir)


def slurm(workdir: Path, overlay: Path, *args: str) -> Snakemake:
    """The same, submitting through the slurm-ci profile."""
    return Snakemake(workdir, overlay, "--profile", str(PROFILE), *args)


def need(run: Run, what: str) -> Run:
    """`run`, or fail the test with its output and job logs when it did not succeed."""
    if run.returncode != 0:
        logs = "\n".join(f"== {p}\n{p.read_text()[-2000:]}"
                         for p in sorted((run.workdir / "logs").rglob("*.log")))
        pytest.fail(f"{what} failed (exit {run.returncode}):\n{run.output[-6000:]}\n{logs}")
    return run


@dataclass
class Runs:
    """The runs of this module: the same jobs locally and through SLURM, and a failing one."""

    local: Run
    slurm: Run  # the training job asks for a GPU
    failing: Run  # a training job on truncated frames


@pytest.fixture(scope="module")
def runs(cluster, tmp_path_factory) -> Iterator[Runs]:
    """The data jobs run locally once (each SLURM wave costs seconds of status polls); from
    copies of their outputs the rest runs locally, through SLURM and failing, all at once."""
    base = tmp_path_factory.mktemp("slurm-runs")
    overlay = base / "overlay.yaml"
    overlay.write_text(OVERLAY)
    data = Snakemake(base / "local", overlay, "--cores", "2", "--omit-from", "train_nerv",
                     "pixel_groups").wait()
    need(data, "the local run of the data jobs")
    for name in ("slurm", "failing"):
        shutil.copytree(data.workdir, base / name, symlinks=True)
    for frames in (base / "failing" / "data" / "work").rglob("frames*.npy"):
        frames.write_bytes(frames.read_bytes()[:100])  # truncated: training cannot read them
    # one thread a job everywhere (the same numbers); --verbose: the jobs print their environment
    started = [
        slurm(base / "slurm", overlay, "--max-threads", "1",
              "--set-resources", "train_nerv:gpu=1", "--verbose"),
        slurm(base / "failing", overlay, "--until", "train_nerv"),
        # on the CPU time the SLURM jobs leave: their time decides how many status polls they
        # wait for
        Snakemake(data.workdir, overlay, "--cores", "2", "--max-threads", "1", nice=True),
    ]
    try:
        main, failing, local = started
        yield Runs(slurm=need(main.wait(), "the SLURM run"), failing=failing.wait(),
                   local=need(local.wait(), "the local run"))
    finally:
        for run in started:  # only after a failure: interrupted as `timeout` would (SIGINT)
            if run.proc.poll() is None:
                run.proc.send_signal(signal.SIGINT)
                run.proc.wait(timeout=60)


def scontrol(job: int) -> str:
    """`scontrol show job -d`: finished jobs stay listed for MinJobAge (600 s)."""
    return subprocess.run(["scontrol", "show", "job", "-d", str(job)], capture_output=True,
                          text=True, check=True).stdout


def output_files(workdir: Path) -> set[Path]:
    """Files under results/, relative to `workdir`."""
    return {p.relative_to(workdir) for p in (workdir / "results").rglob("*") if p.is_file()}


def assert_same_file(a: Path, b: Path) -> None:
    """Same content: tensors, arrays, tables and pixels; metrics.json but its timing."""
    if a.suffix == ".pt":
        ma, mb = load_checkpoint(a), load_checkpoint(b)
        assert ma.meta == mb.meta, a
        sa, sb = ma.state_dict(), mb.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa), a
    elif a.suffix == ".npz":
        with np.load(a) as za, np.load(b) as zb:
            assert set(za) == set(zb), a
            for key in za:
                np.testing.assert_array_equal(za[key], zb[key], err_msg=f"{a}: {key}")
    elif a.suffix == ".png":
        with Image.open(a) as ia, Image.open(b) as ib:
            np.testing.assert_array_equal(np.asarray(ia), np.asarray(ib), err_msg=str(a))
    elif a.name == "metrics.json":
        ja, jb = json.loads(a.read_text()), json.loads(b.read_text())
        assert ja.pop("seconds") > 0 and jb.pop("seconds") > 0 and ja == jb, a
    else:  # csv, json
        assert a.read_bytes() == b.read_bytes(), a


def test_slurm_run_equals_the_local_run(runs):
    local, slurm_dir = runs.local.workdir, runs.slurm.workdir
    files = output_files(local)
    assert output_files(slurm_dir) == files
    kinds = {p.suffix for p in files}
    assert kinds == {".pt", ".npz", ".csv", ".png", ".json"}, kinds
    for rel in sorted(files):
        assert_same_file(local / rel, slurm_dir / rel)


def test_every_job_but_local_rules_ran_as_a_slurm_job(runs):
    jobs = runs.slurm.submitted()
    assert len(jobs) == runs.slurm.output.count("\nrule ") >= 3  # pixel groups, training, canvas
    logs = " ".join(jobs.values())
    assert "rule_train_nerv" in logs and "rule_pixel_groups" in logs
    for job in jobs:
        assert "JobState=COMPLETED" in scontrol(job), job
    assert "localrule fig19:" in runs.slurm.output  # figures stay on the submitting machine


def test_gpu_resource_becomes_a_slurm_gpu_request(runs):
    calls = re.findall(r"sbatch call: (sbatch .*)", runs.slurm.output)
    train = [c for c in calls if "--comment rule_train_nerv_" in c]
    others = [c for c in calls if "--comment rule_train_nerv_" not in c]
    assert len(train) == 1 and " --gpus=1 " in train[0], train
    assert others and not any("--gpus" in c or "--gres" in c for c in others)
    jobs = runs.slurm.submitted()
    for job, log in jobs.items():
        text = Path(log).read_text()  # the job's snakemake prints its environment (--verbose)
        if "rule_train_nerv" in log:
            assert "TresPerJob=gres:gpu:1" in scontrol(job)
            assert "'SLURM_GPUS_ON_NODE': '1'" in text and "'CUDA_VISIBLE_DEVICES': '0'" in text
        else:
            assert "TresPerJob" not in scontrol(job) and "'SLURM_GPUS_ON_NODE'" not in text


def test_failed_slurm_job_is_reported_without_hanging(runs):
    failing = runs.failing
    assert failing.returncode not in (0, 124, 137), failing.output[-3000:]  # 124: timed out
    (job, log), = failing.submitted().items()
    assert "rule_train_nerv" in log
    assert f"SLURM-job '{job}' failed, SLURM status is: 'FAILED'" in failing.output
    assert "Error in rule train_nerv" in failing.output
    assert "JobState=FAILED" in scontrol(job)
    assert "Error in rule train_nerv" in Path(log).read_text()  # the job's own report
