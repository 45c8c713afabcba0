"""Canvas jobs: one process per frame (per-frame rules) against one process per model.

The workflow's canvas rules (`canvas_stats_<arch>_<dataset>`) trace every analysed frame of a
model in one job (`xinc.workflow_steps.canvas_model_stats`); per-frame jobs would start Python,
import torch, create the CUDA context and load the model once per frame. This benchmark runs the
same work both ways as real processes (`python -m xinc.bench.canvas_jobs JOB.json`), one after
another as on a one-GPU machine: `n_frames` processes of one frame each, then one process of all
frames. The models are untrained (tracing costs the same) and built from a preset's model
settings at its working size; pixel groups are random label maps
(`xinc.bench.canvas.synthetic_groups`). Every statistics file of the two ways must be equal
(asserted), so only the time differs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xinc.bench.canvas import synthetic_groups
from xinc.config import load_config
from xinc.io import save_npz, write_json
from xinc.models import build_model, save_checkpoint
from xinc.stats import read_frame_stats

CANVAS = {"mode": "reference", "bias": "split", "neuron": "kernel", "time_index": "exact",
          "chunk": None}
STATS = {"sample_neurons": 4, "seed": 0}


def _inputs(folder: Path, arch: str, preset: str, n_frames: int) -> dict[str, Any]:
    """Checkpoints (one NeRV, or one FFN per frame), groups and meta of one benchmark job."""
    config = load_config(preset)
    height, width = config["working_size"]
    frames = list(range(n_frames))
    meta = folder / "meta.json"
    write_json(meta, {"dataset": "bench", "video": "bench", "working_size": [height, width],
                      "T": n_frames})
    settings = config["models"][arch]
    names = ["nerv.pt"] if arch == "nerv" else [f"ffn_f{f}.pt" for f in frames]
    for i, name in enumerate(names):
        torch.manual_seed(i)
        save_checkpoint(folder / name, build_model(arch, settings),
                        {"height": height, "width": width, "frames": n_frames, "seed": i})
    groups = []
    for f in frames:
        groups.append(folder / f"groups_f{f}.npz")
        save_npz(groups[-1], **synthetic_groups(height, width, seed=f))
    layers = config["canvas"]["layers"][arch]
    return {"ckpts": [str(folder / n) for n in names], "groups": [str(g) for g in groups],
            "meta": str(meta), "frames": frames, "layers": layers}


def _job(spec: dict[str, Any], frames: list[int], out: Path, device: str) -> dict[str, Any]:
    """A job file tracing `frames` of the inputs into `out`."""
    index = [spec["frames"].index(f) for f in frames]
    ckpts = spec["ckpts"] if len(spec["ckpts"]) == 1 else [spec["ckpts"][i] for i in index]
    return {"ckpts": ckpts, "groups": [spec["groups"][i] for i in index], "meta": spec["meta"],
            "frames": frames, "layers": spec["layers"], "device": device,
            "outputs": [str(out / f"f{f}" / f"{layer}.npz") for f in frames
                        for layer in spec["layers"]]}


def _run_process(job: dict[str, Any], folder: Path, name: str) -> float:
    """Wall seconds of one job process, from its start to its exit."""
    path = folder / f"{name}.json"
    path.write_text(json.dumps(job))
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "xinc.bench.canvas_jobs", str(path)], check=True)
    return time.perf_counter() - start


def _same_statistics(a: Path, b: Path) -> None:
    for file in sorted(a.rglob("*.npz")):
        left, right = read_frame_stats(file), read_frame_stats(b / file.relative_to(a))
        for key in left:
            if key != "meta_json" and not np.array_equal(left[key], right[key]):
                raise AssertionError(f"{file.relative_to(a)}: {key} differs between the ways")


def run(arch: str = "nerv", *, preset: str = "smoke", n_frames: int = 6,
        device: str = "cpu") -> dict[str, Any]:
    """Per-frame processes vs one process per model: jobs, wall seconds, ratio."""
    with tempfile.TemporaryDirectory(prefix="xinc-canvas-jobs-") as tmp:
        folder = Path(tmp)
        spec = _inputs(folder, arch, preset, n_frames)
        per_frame = sum(
            _run_process(_job(spec, [f], folder / "per_frame", device), folder, f"frame{f}")
            for f in spec["frames"])
        per_model = _run_process(_job(spec, spec["frames"], folder / "per_model", device),
                                 folder, "model")
        _same_statistics(folder / "per_frame", folder / "per_model")
    return {"arch": arch, "preset": preset, "frames": n_frames, "device": device,
            "layers": spec["layers"], "per_frame": {"jobs": n_frames, "seconds": per_frame},
            "per_model": {"jobs": 1, "seconds": per_model}, "speedup": per_frame / per_model}


def format_report(result: dict[str, Any]) -> str:
    """One line per way, then the ratio."""
    head = (f"canvas jobs: {result['arch']} ({result['preset']} preset, layers "
            f"{', '.join(result['layers'])}), {result['frames']} frames on {result['device']}")
    rows = [f"  {way:<9} {result[way]['jobs']:>3} jobs  {result[way]['seconds']:8.2f} s"
            for way in ("per_frame", "per_model")]
    return "\n".join([head, *rows, f"  per-model speed-up: {result['speedup']:.2f}x"])


def _main(job_file: str) -> None:
    """One canvas job from its JSON description (a subprocess of `run`)."""
    from xinc.workflow_steps import canvas_model_stats

    job = json.loads(Path(job_file).read_text())
    torch.set_num_threads(1)
    canvas_model_stats(job["ckpts"], job["groups"], job["meta"], job["frames"], job["outputs"],
                       job["layers"], canvas=CANVAS, stats=STATS, device=job["device"])


if __name__ == "__main__":
    _main(sys.argv[1])
