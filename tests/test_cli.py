"""The `xinc` command: synthetic data, parameter counts, tracing one checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest

from xinc.cli import main
from xinc.data import SYNTH_VIDEOS
from xinc.models import build_model, save_checkpoint
from xinc.stats import read_frame_stats


def test_synth_writes_layout_and_truth(tmp_path, capsys):
    out = tmp_path / "cityscapes_vps"
    assert main(["synth", "cityscapes_vps", str(out), "--scale", "tiny", "--seed", "3"]) == 0
    assert (out / "panoptic_gt_val_city_vps.json").is_file()
    truth = np.load(tmp_path / "cityscapes_vps.truth.npz")
    first = SYNTH_VIDEOS["cityscapes_vps"][0].video
    assert truth[f"{first}/panoptic"].shape[0] == 6  # labels at frames 4, 9, ..., 29
    assert "wrote" in capsys.readouterr().out


def test_params_of_the_smoke_preset(capsys):
    assert main(["params", "--preset", "smoke"]) == 0
    assert json.loads(capsys.readouterr().out) == {"ffn": 851, "nerv": 21501}


def test_unknown_preset_is_a_clear_error(capsys):
    assert main(["params", "--preset", "no_such_preset"]) == 2
    assert "no_such_preset" in capsys.readouterr().err


@pytest.mark.parametrize("arch", ["ffn", "nerv"])
def test_trace_writes_one_stats_file_per_layer(tmp_path, arch):
    settings = {"width": 8} if arch == "ffn" else {"fc_dim": 6, "fc_hw": [1, 2]}
    model = build_model(arch, settings)
    ckpt = tmp_path / "ckpt.pt"
    save_checkpoint(ckpt, model, {"height": 16, "width": 32, "frames": 4})
    assert main(["trace", str(ckpt), str(tmp_path / "stats"), "--frame", "1"]) == 0
    files = sorted((tmp_path / "stats").glob("*.npz"))
    expected = {"ffn": ["l1", "l2", "l3"], "nerv": ["b1", "b2", "b3", "head"]}[arch]
    assert [f.stem for f in files] == expected
    stats = read_frame_stats(files[0])
    assert stats["heat"].shape == (16, 32)
    sums = stats["group_sums_grid_lattice"]
    assert sums.shape == (len(stats["total"]), 32)
    np.testing.assert_allclose(sums.sum(axis=1), stats["total"], rtol=1e-5)
