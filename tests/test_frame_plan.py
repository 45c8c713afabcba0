"""Which frames and figures the workflow plans when it loads (xinc.frame_plan, figure_plan)."""

from __future__ import annotations

import copy
import re

import pytest

from xinc.config import ConfigError
from xinc.data import annotated_frames, first_annotated_frame
from xinc.figure_plan import FIGURES, figure_panels, figure_selection
from xinc.frame_plan import plan_frames, select_frames, video_length

VIDEOS = {"cityscapes_vps": ["0001"], "vipseg": ["1_xincSynth01a", "2_xincSynth02b"]}
SMOKE_VIDEOS = {"cityscapes_vps": ["0001"], "vipseg": ["1_xincSynth01a"]}


def with_canvas(config: dict, **canvas) -> dict:
    out = copy.deepcopy(config)
    out["canvas"].update(canvas)
    return out


def test_first_annotated_frames_agree_with_the_readers():
    for ds in ("cityscapes_vps", "vipseg"):
        config = {"source": "real", "datasets": {}}
        if ds == "cityscapes_vps":
            n_frames, annotated = video_length(config, ds, "0005")
            assert annotated == annotated_frames(ds, n_frames)
        assert select_frames("first", ds, "v", 30, annotated_frames(ds, 30)) == [
            first_annotated_frame(ds)]


def test_annotated_frames_cityscapes_all_six_vipseg_six_evenly_spaced(smoke):
    plan = plan_frames(with_canvas(smoke, frames="annotated"), VIDEOS)
    assert plan["cityscapes_vps"]["0001"].nerv == (4, 9, 14, 19, 24, 29)
    # 31 annotated frames: floor(i * 30 / 5) = 0, 6, ..., 30; 12 frames: 0, 2, 4, 6, 8, 11
    assert plan["vipseg"]["1_xincSynth01a"].nerv == (0, 6, 12, 18, 24, 30)
    assert plan["vipseg"]["2_xincSynth02b"].nerv == (0, 2, 4, 6, 8, 11)
    assert plan["vipseg"]["2_xincSynth02b"].key == 0
    assert plan["vipseg"]["2_xincSynth02b"].ffn == (0,)  # ffn_frames: key
    every = plan_frames(with_canvas(smoke, frames="annotated", ffn_frames="all"), VIDEOS)
    assert every["cityscapes_vps"]["0001"].ffn == (4, 9, 14, 19, 24, 29)


def test_frame_lists_must_be_annotated(smoke):
    plan = plan_frames(smoke, SMOKE_VIDEOS)  # smoke: [4, 9, 14]
    assert plan["cityscapes_vps"]["0001"].nerv == (4, 9, 14)
    with pytest.raises(ConfigError) as err:
        plan_frames(with_canvas(smoke, frames=[4, 5]), SMOKE_VIDEOS)
    assert "config key canvas.frames: frames [5] of cityscapes_vps/0001 are not annotated" in \
        str(err.value)
    assert "4, 9, 14, 19, 24, 29" in str(err.value)


def test_a_video_without_masks_is_refused(smoke):
    with pytest.raises(ConfigError, match="4_xincSynth04d' has no annotated frames"):
        plan_frames(smoke, {"vipseg": ["4_xincSynth04d"]})


def test_real_vipseg_frames_come_from_the_file_names(tmp_path):
    images, masks = tmp_path / "images" / "v", tmp_path / "panomasks" / "v"
    images.mkdir(parents=True)
    masks.mkdir(parents=True)
    for i in range(8):
        (images / f"{10 * i:08d}.jpg").touch()
        if i % 2 == 0:
            (masks / f"{10 * i:08d}.png").touch()
    config = {"source": "real", "datasets": {"vipseg": {"root": str(tmp_path)}}}
    assert video_length(config, "vipseg", "v") == (8, [0, 2, 4, 6])
    with pytest.raises(ConfigError, match="holds no .jpg frames"):
        video_length(config, "vipseg", "missing")


def test_figure_selection_defaults_and_errors(smoke):
    layers = smoke["canvas"]["layers"]
    sel = figure_selection(FIGURES["fig11"], smoke, VIDEOS, layers)
    assert sel.layers == {"ffn": ("l1",), "nerv": ("b1",)} and sel.seeds == (1,)
    assert sel.videos == (("cityscapes_vps", "0001"), ("vipseg", "1_xincSynth01a"),
                          ("vipseg", "2_xincSynth02b"))
    assert figure_selection(FIGURES["fig09"], smoke, VIDEOS, layers).layers["ffn"] == ()
    motion = copy.deepcopy(smoke)
    motion["figures"]["fig09"]["layers"] = ["head", "l3"]
    with pytest.raises(ConfigError, match="figures.fig09.layers: l3 are FFN layers"):
        figure_selection(FIGURES["fig09"], motion, VIDEOS, layers)
    assert figure_selection(FIGURES["fig19"], smoke, VIDEOS,
                            {"ffn": ["l1"], "nerv": ["head"]}) is None
    config = copy.deepcopy(smoke)
    config["figures"]["fig04"].update(videos=["0001"], seeds=[2], layers=["b2", "l3"])
    sel = figure_selection(FIGURES["fig04"], config, VIDEOS, layers)
    assert sel.videos == (("cityscapes_vps", "0001"),) and sel.seeds == (2,)
    assert sel.layers == {"ffn": ("l3",), "nerv": ("b2",)}
    for key, value, words in (("videos", ["nope"], "nope not among the configured videos"),
                              ("seeds", [7], "[7] not among the trained seeds"),
                              ("layers", ["l9"], "l9 not traced")):
        bad = copy.deepcopy(smoke)
        bad["figures"]["fig06"][key] = value
        with pytest.raises(ConfigError, match=rf"figures.fig06.{key}: .*{re.escape(words)}"):
            figure_selection(FIGURES["fig06"], bad, VIDEOS, layers)


def test_figure_panels_at_the_key_frame_or_over_time(smoke):
    plan = plan_frames(smoke, SMOKE_VIDEOS)
    sel = figure_selection(FIGURES["fig19"], smoke, SMOKE_VIDEOS, smoke["canvas"]["layers"])
    key = figure_panels(sel, plan, arch="nerv")
    assert {(p["video"], p["frame"]) for p in key} == {("0001", 4), ("1_xincSynth01a", 4)}
    over_time = figure_panels(sel, plan, arch="nerv", all_frames=True)
    assert [(p["frame"], p["layer"]) for p in over_time[:4]] == [
        (4, "b2"), (4, "b1"), (9, "b2"), (9, "b1")]
    assert len(over_time) == 2 * 3 * 2  # videos x frames x layers, one seed
