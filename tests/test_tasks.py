"""Workflow steps as library calls: NeRV frame time, importing checkpoints trained elsewhere."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from xinc.data import generate, prepare_video, working_resolution
from xinc.models import build_model, load_checkpoint
from xinc.models.authors import to_authors_state_dict
from xinc.tasks import frame_time, import_model, load_nerv_frames
from xinc.train.nerv import evaluate_nerv, nerv_inputs

META = {"video": "0001", "T": 30, "annotated_t": [4, 9, 14, 19, 24, 29]}


def test_frame_time_exact_and_reference():
    nerv = build_model("nerv", {"fc_dim": 6, "fc_hw": [1, 2]})
    assert frame_time(nerv, 9, META) == 9 / 30
    assert frame_time(nerv, 9, META, "reference") == 1 / 6  # the authors' k/A: raw frame 5
    nerv.meta = {"frames": 20}
    assert frame_time(nerv, 9, META) == 9 / 20  # the length the NeRV was trained on wins
    assert frame_time(build_model("ffn", {"width": 4}), 9, META) is None
    with pytest.raises(ValueError, match="not annotated"):
        frame_time(nerv, 5, META, "reference")


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory):
    """A tiny synthetic Cityscapes-VPS video at working resolution 32×64."""
    root = tmp_path_factory.mktemp("data")
    generate("cityscapes_vps", root / "raw", root / "truth.npz", seed=0, scale="tiny")
    prepare_video("cityscapes_vps", root / "raw", "0001", root / "prepared")
    working_resolution(root / "prepared", root / "work", 32, 64)
    return root / "work"


def test_import_authors_nerv_checkpoint(work_dir, tmp_path):
    torch.manual_seed(0)
    model = build_model("nerv", {"fc_dim": 8, "fc_hw": [2, 4]})
    src = tmp_path / "model_best.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in to_authors_state_dict(model).items()},
                "epoch": 1000}, src)
    result = import_model("nerv", src, work_dir / "frames_bicubic.npy", work_dir / "meta.json",
                          tmp_path / "ckpt.pt", tmp_path / "metrics.json", seed=1,
                          settings={"fc_hw": [2, 4]}, device="cpu")
    imported = load_checkpoint(tmp_path / "ckpt.pt")
    t, targets = nerv_inputs(load_nerv_frames(work_dir / "frames_bicubic.npy"))
    with torch.no_grad():
        assert evaluate_nerv(model.eval(), t, targets) == pytest.approx(result["psnr"], abs=1e-6)
        np.testing.assert_array_equal(imported(t[:2]).numpy(), model(t[:2]).numpy())
    assert imported.meta["frames"] == 30 and imported.meta["seed"] == 1
    assert json.loads((tmp_path / "metrics.json").read_text())["source"] == str(src)


def test_import_lightning_ffn_checkpoint(work_dir, tmp_path):
    torch.manual_seed(3)
    model = build_model("ffn", {"width": 8})
    src = tmp_path / "best_model.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
                "global_step": 1000}, src)
    result = import_model("ffn", src, work_dir / "frames_pil.npy", work_dir / "meta.json",
                          tmp_path / "ckpt.pt", tmp_path / "metrics.json", seed=7, frame=4,
                          device="cpu")
    imported = load_checkpoint(tmp_path / "ckpt.pt")
    for name, value in model.state_dict().items():
        torch.testing.assert_close(imported.state_dict()[name], value, rtol=0, atol=0)
    assert imported.meta["frame"] == 4 and result["params"] == 8 * 16 + 8 + 8 * 8 + 8 + 8 * 3 + 3
    assert np.isfinite(result["psnr"])


@pytest.mark.parametrize("mode", ["reference", "exact"])
def test_trace_frame_in_both_modes(tmp_path, mode):
    """The canvas step writes one statistics file per layer in either canvas mode."""
    from xinc.canvas import layer_names
    from xinc.stats import grid_groups, read_frame_stats
    from xinc.tasks import trace_frame

    torch.manual_seed(0)
    model = build_model("nerv", {"fc_dim": 6, "fc_hw": [1, 2]})
    outputs = {layer: tmp_path / f"{layer}.npz" for layer in layer_names(model)}
    trace_frame(model, grid_groups(16, 32, (2, 4)), outputs, t=0.25, height=16, width=32,
                mode=mode, n_sample=2, meta={"frame": 1})
    for layer, path in outputs.items():
        stats = read_frame_stats(path)
        assert json.loads(str(stats["meta_json"]))["mode"] == mode
        np.testing.assert_allclose(stats["group_sums_grid_lattice"].sum(axis=1), stats["total"],
                                   rtol=1e-5, err_msg=layer)
