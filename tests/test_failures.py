"""Bad inputs fail where they are read, in one line naming the file, the problem and the fix:
a corrupt frame, a mask of the wrong size, an out-of-range panoptic id, NaN weights. (A
truncated checkpoint: tests/test_tasks.py::test_truncated_groups_and_checkpoint_name_their_rules.)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from xinc.checks import ContentError, check_masks
from xinc.data import DataLayoutError, working_resolution
from xinc.data.custom import CustomVideo, prepare_custom_video
from xinc.intermediate import IntermediateFileError, read_npy
from xinc.models import import_checkpoint, initial_model, save_checkpoint
from xinc.workflow_steps import load_model, load_nerv_frames

T, H, W = 4, 16, 32
CATEGORIES = [{"id": 1, "name": "road", "isthing": 0, "color": [128, 64, 128]},
              {"id": 2, "name": "car", "isthing": 1, "color": [0, 0, 142]}]
TINY_NERV = {"fc_dim": 8, "fc_hw": [2, 4], "strides": [4, 2, 2]}


def prepared_video(root: Path) -> Path:
    """A prepared video (docs/formats.md §2): 4 frames, masks of frames 0 and 2 (road, a car,
    void)."""
    out = root / "data" / "prepared" / "vipseg" / "synthetic-tiny-seed0" / "clip"
    out.mkdir(parents=True)
    frames = np.random.default_rng(0).integers(0, 256, (T, H, W, 3), dtype=np.uint8)
    panoptic = np.full((2, H, W), 1000, np.int32)
    panoptic[:, 4:10, 8:20] = 2000
    panoptic[:, 0, :] = -1
    np.save(out / "frames.npy", frames)
    np.save(out / "panoptic.npy", panoptic)
    meta = {"dataset": "vipseg", "video": "clip", "T": T, "annotated_t": [0, 2],
            "categories": CATEGORIES}
    (out / "meta.json").write_text(json.dumps(meta))
    return out


def with_masks(prepared: Path, masks: np.ndarray) -> Path:
    np.save(prepared / "panoptic.npy", masks)
    return prepared / "panoptic.npy"


def test_prepared_masks_that_fit_pass(tmp_path):
    prepared = prepared_video(tmp_path)
    working_resolution(prepared, tmp_path / "work", 8, 16)
    assert set(np.unique(np.load(tmp_path / "work" / "panoptic.npy"))) == {-1, 1000, 2000}


def test_mask_of_another_size_names_the_file_the_sizes_and_the_rule(tmp_path):
    prepared = prepared_video(tmp_path)
    path = with_masks(prepared, np.full((2, H // 2, W // 2), 1000, np.int32))
    with pytest.raises(IntermediateFileError) as err:
        working_resolution(prepared, tmp_path / "work", 8, 16)
    assert str(err.value) == (
        f"{path}: the masks are 8x16 but the frames are 16x32; it is written by rule "
        "prepare_video: rerun it with `snakemake --forcerun prepare_video`")
    with_masks(prepared, np.full((3, H, W), 1000, np.int32))
    with pytest.raises(IntermediateFileError, match=r"3 masks for 2 annotated frames \[0, 2\]"):
        working_resolution(prepared, tmp_path / "work", 8, 16)
    assert not (tmp_path / "work").exists()


def test_out_of_range_panoptic_id_names_its_frame_and_pixel(tmp_path):
    prepared = prepared_video(tmp_path)
    masks = np.load(prepared / "panoptic.npy")
    masks[1, 5:7, 3] = 70000
    masks[1, 9, 9] = 3001
    path = with_masks(prepared, masks)
    with pytest.raises(IntermediateFileError) as err:
        working_resolution(prepared, tmp_path / "work", 8, 16)
    assert str(err.value).startswith(
        f"{path}: panoptic id 3001 (category 3) at frame 2, row 9, column 9 is not in the "
        "video's category table (meta.json categories: ids 1, 2) (1 more unknown id); it is "
        "written by rule prepare_video")
    cityscapes = [{"id": i} for i in range(19)]
    with pytest.raises(ContentError, match=r"categories: ids 0–18\)$"):
        check_masks(masks, (T, H, W, 3), [0, 2], cityscapes)
    masks[1, 9, 9] = -7
    with_masks(prepared, masks)
    with pytest.raises(IntermediateFileError,
                       match=r"panoptic id -7 at mask 1, row 9, column 9 is below -1 \(void\)"):
        working_resolution(prepared, tmp_path / "work", 8, 16)


def work_folder(root: Path) -> Path:
    out = root / "data" / "work" / "vipseg" / "synthetic-tiny-seed0" / "clip" / "16x32"
    out.mkdir(parents=True)
    return out


def test_nan_frame_names_the_frame_and_the_rule(tmp_path):
    work = work_folder(tmp_path)
    frames = np.random.default_rng(1).random((T, H, W, 3)).astype(np.float32)
    frames[2, 3, 4] = [np.nan, np.inf, 0.5]
    frames[3, 0, 0, 0] = np.nan
    np.save(work / "frames_bicubic.npy", frames)
    with pytest.raises(IntermediateFileError) as err:
        load_nerv_frames(work / "frames_bicubic.npy")
    assert str(err.value) == (
        f"{work / 'frames_bicubic.npy'}: frame 2 holds 2 NaN or infinite values (3 in 2 of 4 "
        "frames); it is written by rule working_res: rerun it with "
        "`snakemake --forcerun working_res`")


@pytest.mark.parametrize(("array", "problem"), [
    (np.zeros((T, H, W, 3), np.float32), "frames of dtype float32, not uint8"),
    (np.zeros((T, H, W), np.uint8), r"frames of shape \[4, 16, 32\], not \[T, H, W, 3\]"),
])
def test_frames_of_another_kind_name_the_file(tmp_path, array, problem):
    work = work_folder(tmp_path)
    np.save(work / "frames_pil.npy", array)
    with pytest.raises(IntermediateFileError, match=rf"frames_pil\.npy: {problem}; .*working_res"):
        read_npy(work / "frames_pil.npy", mmap_mode="r")


def test_corrupt_frame_image_names_the_file(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for t in range(3):
        Image.fromarray(np.full((H, W, 3), 40 * t, np.uint8)).save(frames / f"f_{t:03d}.png")
    (frames / "f_001.png").write_bytes((frames / "f_001.png").read_bytes()[:40])
    video = CustomVideo.from_config("clip", {"path": "frames"}, tmp_path)
    with pytest.raises(DataLayoutError) as err:
        prepare_custom_video(video, tmp_path / "out", working_size=[16, 32])
    assert str(err.value).startswith(f"{frames / 'f_001.png'}: unreadable image (")
    assert str(err.value).endswith("Fix: give frames of one size, readable as PNG/JPEG")
    assert not (tmp_path / "out").exists()


def nan_checkpoint(path: Path, value: float = float("nan")) -> str:
    """A tiny NeRV checkpoint with one weight set to `value`; returns that parameter's name."""
    model = initial_model("nerv", TINY_NERV, 1)
    name, param = list(model.named_parameters())[2]
    with torch.no_grad():
        param.view(-1)[5] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, model, {"frames": T, "height": 32, "width": 64, "seed": 1})
    return f"{name} holds 1 {'NaN' if value != value else 'infinite'} of its {param.numel()}"


def test_nan_in_a_trained_checkpoint_names_the_parameter_and_the_rule(tmp_path):
    ckpt = tmp_path / "results" / "demo" / "models" / "nerv" / "vipseg" / "clip" / "s1" / "ckpt.pt"
    held = nan_checkpoint(ckpt)
    with pytest.raises(IntermediateFileError) as err:
        load_model(ckpt)
    assert str(err.value) == (
        f"{ckpt}: parameter {held} values: the file is damaged or the training diverged; it is "
        "written by rule train_nerv (or import_nerv): rerun it with "
        "`snakemake --forcerun train_nerv` (or import_nerv)")


def test_nan_in_a_checkpoint_to_import_is_not_imported(tmp_path):
    src, dst = tmp_path / "mine" / "model.pt", tmp_path / "ckpt.pt"
    held = nan_checkpoint(src, float("-inf"))
    with pytest.raises(IntermediateFileError) as err:
        import_checkpoint(src, dst, arch="nerv")
    assert str(err.value).startswith(f"{src}: parameter {held} values")
    assert "rule" not in str(err.value) and "delete" not in str(err.value)
    assert not dst.exists()
