"""The real-data path through the workflow, offline: the synthetic datasets as the official
archives, served by a loopback imitation of Dropbox, the Cityscapes site (login) and Google
Drive; downloaded, verified, extracted, selected and prepared by Snakemake."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from http_fixture import LoopbackServer

from tests.conftest import ROOT, snakemake
from xinc.data.official_archives import write_official_archives
from xinc.data.synth import generate
from xinc.figure_plan import FIGURES

pytestmark = pytest.mark.slow  # the real-data workflow on a loopback server, paper dry runs

USER, PASSWORD = "xinc-tester", "s3cret-Pa55word"
CITY_VIDEO, VIPSEG_VIDEO = "0001", "1_xincSynth01a"
SEQUENCE = "leftImg8bit_sequence_trainvaltest.zip"
VIPSEG_VARIANT = "real-72p-jpeg75-crop64x128"


def _archives(tmp: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    """{archive name: path} of the tiny synthetic datasets, and {dataset: truth npz}."""
    archives, truths = {}, {}
    for ds in ("cityscapes_vps", "vipseg"):
        layout, truths[ds] = tmp / "layout" / ds, tmp / f"{ds}.truth.npz"
        generate(ds, layout, truths[ds], seed=0, scale="tiny")
        archives |= write_official_archives(ds, layout, tmp / "archives")
    return archives, truths


def _serve(server: LoopbackServer, archives: dict[str, Path]) -> dict:
    """Put each archive where its source serves it; return the downloads config."""
    data = {name: path.read_bytes() for name, path in archives.items()}
    site = server.add_cityscapes(USER, PASSWORD, {
        1: ("gtFine_trainvaltest.zip", data["gtFine_trainvaltest.zip"]),
        14: (SEQUENCE, data[SEQUENCE])})
    vps = "cityscapes-vps-dataset-1.0.zip"
    pinned = {"size": None, "md5": None, "sha256": None}  # stand-ins of the pinned files
    overrides = {
        vps: {"url": server.add_dropbox("ecem4kq0fdkver4", vps, data[vps])},
        "gtFine_trainvaltest.zip": pinned,
        SEQUENCE: pinned,
        **{name: {"url": server.add(f"/repo/{name}", data[name]), **pinned}
           for name in ("panoVIPSeg_categories.json", "train.txt", "val.txt", "test.txt")},
    }
    drive = server.add_drive("1B13QUiE82xf7N6nVHclb4ErN-Zuai-sZ", data["VIPSeg.tar"],
                             strict=True)
    return {"allow_hosts": ["127.0.0.1"], "retries": 1, "timeout": 10,
            "cityscapes_base_url": site.rstrip("/"), "drive_url": drive, "archives": overrides}


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> Iterator[dict]:
    """The data stage on the loopback server, then a dry run of the analyses."""
    tmp = tmp_path_factory.mktemp("real")
    archives, truths = _archives(tmp)
    server = LoopbackServer()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    config = {"run": "real", "source": "real", "downloads": _serve(server, archives),
              "datasets": {"cityscapes_vps": {"videos": [CITY_VIDEO]},
                           "vipseg": {"videos": [VIPSEG_VIDEO], "target_height": 72,
                                      "require_size": [72, 128]}}}
    (tmp / "real.yaml").write_text(yaml.safe_dump(config))
    args = ["--configfile", str(ROOT / "presets" / "smoke.yaml"), str(tmp / "real.yaml"),
            "--directory", str(tmp / "work")]
    env = {"CITYSCAPES_USERNAME": USER, "CITYSCAPES_PASSWORD": PASSWORD}
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        first = snakemake("--cores", "2", *args)
        second = snakemake("-n", *args)
    finally:
        for key, value in saved.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    work = tmp / "work"
    if first.returncode != 0:
        logs = "\n".join(f"== {p}\n{p.read_text()[-2000:]}"
                         for p in sorted((work / "logs").rglob("*.log")))
        pytest.fail(f"data stage failed:\n{first.stderr[-5000:]}\n{logs}")
    yield {"work": work, "first": first, "second": second, "server": server,
           "archives": archives, "truths": truths}


def test_prepared_labels_equal_the_generator_truth(real_run):
    work = real_run["work"]
    for ds, vid, variant in (("cityscapes_vps", CITY_VIDEO, "real"),
                             ("vipseg", VIPSEG_VIDEO, VIPSEG_VARIANT)):
        truth = np.load(real_run["truths"][ds])
        prepared = work / "data" / "prepared" / ds / variant / vid
        np.testing.assert_array_equal(np.load(prepared / "panoptic.npy"),
                                      truth[f"{vid}/panoptic"])
        meta = json.loads((prepared / "meta.json").read_text())
        assert meta["annotated_t"] == truth[f"{vid}/annotated_t"].tolist()
        frames = np.load(prepared / "frames.npy").astype(int)
        diff = np.abs(frames - truth[f"{vid}/frames"].astype(int)).mean()
        assert diff == 0 if ds == "cityscapes_vps" else diff < 3  # the JPEG q75 round trip


def test_selection_lists_every_candidate_with_its_reason(real_run):
    path = (real_run["work"] / "data" / "prepared" / "vipseg" / VIPSEG_VARIANT / "videos.csv")
    videos = pd.read_csv(path, dtype={"video": str}).set_index("video")
    assert videos.loc[VIPSEG_VIDEO, "selected"] and videos.loc[VIPSEG_VIDEO, "reason"] == \
        "configured"
    assert not videos["selected"].drop(VIPSEG_VIDEO).any()
    assert videos.loc["3_xincSynth03c", "n_frames"] == 46


def test_only_the_configured_videos_frames_are_fetched(real_run):
    sequence = real_run["archives"][SEQUENCE].stat().st_size
    fetched = sum(req.bytes for req in real_run["server"].requests
                  if req.path.startswith("/file-handling/?packageID=14"))
    assert 0 < fetched < 0.6 * sequence  # one of the two videos, plus the central directory
    frames = real_run["work"] / "data" / "raw" / "leftImg8bit_sequence"
    assert len(list(frames.rglob("*_leftImg8bit.png"))) == 30


def test_the_password_is_in_no_log_param_or_record(real_run):
    work, first = real_run["work"], real_run["first"]
    assert PASSWORD not in first.stdout + first.stderr
    for path in work.rglob("*"):
        if path.is_file() and path.stat().st_size < 5_000_000:
            assert PASSWORD.encode() not in path.read_bytes(), path


def test_second_invocation_plans_the_analyses_and_no_data_job(real_run):
    first, second = real_run["first"], real_run["second"]
    assert "run the same command again afterwards to plan the analyses" in first.stderr
    assert second.returncode == 0, second.stderr[-3000:]
    assert "run the same command again" not in second.stderr
    planned = second.stdout.split("Job stats:")[1]
    assert "train_nerv" in planned and "fig01" in planned
    for rule in ("download_archive", "extract_archive", "select_videos", "official_prep",
                 "fetch_sequence_frames", "prepare_video", "working_res"):
        assert rule not in planned


def test_paper_preset_plans_the_data_stage_offline(tmp_path):
    result = snakemake("-n", "--configfile", str(ROOT / "presets" / "paper.yaml"),
                       "--directory", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    table = result.stdout.split("Job stats:")[1].split("total")[0]
    counts = {row.split()[0]: int(row.split()[1]) for row in table.splitlines()[3:]
              if row.strip()}
    assert counts == {"download_archive": 7, "extract_archive": 3, "select_videos": 2,
                      "fetch_sequence_frames": 1, "official_prep_cityscapes_vps": 4,
                      "official_prep_vipseg": 5, "prepare_video": 9, "working_res": 9,
                      "all": 1}
    assert not (tmp_path / "data").exists()  # a dry run downloads nothing


def _selected(videos: list[str], frames: int, annotated: str) -> str:
    head = ("video,split,n_frames,n_annotated,height,width,selected,reason,prepared_frames,"
            "annotated_t,has_masks\n")
    return head + "".join(f"{v},val,{frames},{frames},720,1280,True,configured,{frames},"
                          f"{annotated},True\n" for v in videos)


def test_paper_preset_plans_every_figure_once_videos_are_selected(tmp_path):
    paper = yaml.safe_load((ROOT / "presets" / "paper.yaml").read_text())
    for ds, variant, frames, annotated in (
            ("cityscapes_vps", "real", 30, "4 9 14 19 24 29"),
            ("vipseg", "real-720p-jpeg75-crop640x1280", 36, " ".join(map(str, range(36))))):
        path = tmp_path / "data" / "prepared" / ds / variant / "videos.csv"
        path.parent.mkdir(parents=True)
        path.write_text(_selected(paper["datasets"][ds]["videos"], frames, annotated))
    result = snakemake("-n", "--configfile", str(ROOT / "presets" / "paper.yaml"),
                       "--directory", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    plan = result.stdout.split("Job stats:")[1]
    for name in FIGURES:
        assert f"\n{name} " in plan
    assert "download_archive" in plan and "train_nerv" in plan
