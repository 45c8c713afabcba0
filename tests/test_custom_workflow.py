"""Your own video through the workflow: an mp4 written by OpenCV, analysed with the smoke
settings; without masks the instance-based analyses are left out and the rest runs."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from explorer_files import read_js

from tests.conftest import ROOT, snakemake
from xinc.figure_plan import FIGURES

pytestmark = pytest.mark.slow  # the workflow on a user's video

N_FRAMES, HEIGHT, WIDTH, FPS = 16, 64, 160, 12.0
NEEDS_MASKS = {name for name, spec in FIGURES.items() if spec.masks}


def write_clip(path: Path) -> np.ndarray:
    """A moving-square mp4 of N_FRAMES (RGB frames returned as written)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (WIDTH, HEIGHT))
    yy, xx = np.mgrid[:HEIGHT, :WIDTH]
    frames = []
    for t in range(N_FRAMES):
        frame = np.stack([xx * 255 // WIDTH, yy * 255 // HEIGHT, np.full_like(xx, 90)], -1)
        frame[20:44, 10 + 6 * t:34 + 6 * t] = (240, 40, 40)
        frames.append(frame.astype(np.uint8))
        writer.write(cv2.cvtColor(frames[-1], cv2.COLOR_RGB2BGR))
    writer.release()
    return np.stack(frames)


@pytest.fixture(scope="module")
def custom_run(tmp_path_factory) -> Path:
    """Two invocations: the first prepares the clip (its length is known after
    select_videos), the second runs the analyses."""
    workdir = tmp_path_factory.mktemp("custom")
    write_clip(workdir / "clip.mp4")
    (workdir / "custom.yaml").write_text(
        "run: custom\nseeds: [1]\n"
        "datasets:\n  cityscapes_vps: {videos: []}\n  vipseg: {videos: []}\n"
        "  custom:\n    videos: [clip]\n    files: {clip: {path: clip.mp4}}\n"
        "figures:\n  fig12: {seeds: null}\n  fig13: {videos: null, seeds: null}\n"
        "  fig14: {videos: null}\n"
        "canvas:\n  layers: {nerv: [head, b3], ffn: [l3]}\n")
    args = ["--cores", "2", "--configfile", str(ROOT / "presets" / "smoke.yaml"),
            str(workdir / "custom.yaml"), "--directory", str(workdir)]
    first = snakemake(*args)
    assert first.returncode == 0, first.stderr[-4000:]
    assert "run the same command again afterwards to plan the analyses" in first.stderr
    second = snakemake(*args)
    if second.returncode != 0:
        logs = "\n".join(f"== {p}\n{p.read_text()[-2000:]}"
                         for p in sorted((workdir / "logs").rglob("*.log")))
        pytest.fail(f"custom run failed:\n{second.stderr[-5000:]}\n{logs}")
    (workdir / "second.log").write_text(second.stderr)
    return workdir


def test_custom_clip_is_prepared_from_the_file(custom_run):
    prepared = custom_run / "data" / "prepared" / "custom" / "custom-aspect32x64" / "clip"
    meta = json.loads((prepared / "meta.json").read_text())
    frames = np.load(prepared / "frames.npy")
    assert meta["T"] == N_FRAMES and meta["fps"] == pytest.approx(FPS)
    assert meta["native_size"] == [HEIGHT, WIDTH] and not meta["has_masks"]
    assert frames.shape == (N_FRAMES, 64, 128, 3)  # aspect of 32x64 kept: 64x128 centre crop
    videos = pd.read_csv(prepared.parent / "videos.csv", dtype={"video": str})
    assert videos.loc[0, "video"] == "clip" and videos.loc[0, "prepared_frames"] == N_FRAMES


def test_custom_clip_runs_every_analysis_but_the_instance_based(custom_run):
    figures = custom_run / "results" / "custom" / "figures"
    made = {p.stem for p in figures.glob("fig*.png")}
    traced = {"head", "b3", "l3"}
    shown = {name for name, spec in FIGURES.items() if traced & set(spec.layers)
             or spec.layers == ("*",)}
    assert made == shown - NEEDS_MASKS and "fig09" in made and "fig10" in made
    assert not (custom_run / "results" / "custom" / "tables" / "instances").exists()
    log = (custom_run / "second.log").read_text()
    for name in NEEDS_MASKS & shown:
        assert f"{name} is left out: it needs panoptic masks" in log
    findings = pd.read_csv(custom_run / "results" / "custom" / "tables" / "findings.csv")
    assert set(findings["data"]) == {"custom"}
    assert not {"fig04", "fig08"} & set(findings["figure"])
    assert {"fig06", "fig07"} <= set(findings["figure"])


def test_custom_clip_has_an_explorer_of_its_traced_layers(custom_run):
    """The user's own clip (no masks) in the explorer: its traced layers, one segment."""
    root = custom_run / "results" / "custom" / "explorer"
    manifest = (root / "manifest.js").read_text()
    models = json.loads(manifest[manifest.index("(") + 1:manifest.rindex(")")])["videos"]
    assert [(v["dataset"], v["video"]) for v in models] == [("custom", "clip")]
    by_arch = {m["arch"]: m for m in models[0]["models"]}
    assert by_arch["nerv"]["layers"] == ["head", "b3"] and by_arch["ffn"]["layers"] == ["l3"]
    for arch, model in by_arch.items():
        _, segments = read_js(root / model["path"] / f"{model['layers'][0]}_segments.js")
        assert [s["name"] for f in segments["frames"] for s in f["segments"]] == \
            ["other"] * len(model["frames"]), arch
