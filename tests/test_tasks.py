"""Workflow steps as library calls: NeRV frame time, importing checkpoints trained elsewhere."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from xinc.data import generate, prepare_video, working_resolution
from xinc.intermediate import IntermediateFileError, writing_rules
from xinc.io import save_npz
from xinc.models import build_model, load_checkpoint, save_checkpoint
from xinc.models.authors import to_authors_state_dict
from xinc.plots import StatsInput
from xinc.stats import grid_groups, read_frame_stats
from xinc.train.nerv import evaluate_nerv, nerv_inputs
from xinc.workflow_steps import (
    canvas_stats,
    frame_time,
    import_model,
    load_model,
    load_nerv_frames,
    make_pixel_groups,
    read_json,
    trace_checkpoint,
)

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
    from xinc.workflow_steps import trace_frame

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


def _checkpoint(path, arch: str, **meta) -> None:
    settings = {"width": 4} if arch == "ffn" else {"fc_dim": 6, "fc_hw": [1, 2]}
    save_checkpoint(path, build_model(arch, settings), {"height": 16, "width": 32, **meta})


@pytest.mark.parametrize("frame", [31, 999, -1, -5])
def test_trace_refuses_a_frame_outside_the_nerv_video(tmp_path, frame):
    _checkpoint(tmp_path / "ckpt.pt", "nerv", frames=31)
    with pytest.raises(ValueError, match=rf"ckpt.pt: frame {frame} .* 31-frame .* 0 … 30"):
        trace_checkpoint(tmp_path / "ckpt.pt", tmp_path / "out", frame=frame)
    assert not (tmp_path / "out").exists()


def test_trace_ffn_frame_is_the_one_it_was_trained_on(tmp_path):
    ckpt = tmp_path / "ckpt.pt"
    _checkpoint(ckpt, "ffn", frame=4, frames=30)
    with pytest.raises(ValueError, match="trained on frame 4, not frame 5"):
        trace_checkpoint(ckpt, tmp_path / "out", frame=5, layers=["l3"])
    trace_checkpoint(ckpt, tmp_path / "out", layers=["l3"])  # omitted: the recorded frame
    assert json.loads(str(read_frame_stats(tmp_path / "out" / "l3.npz")["meta_json"]))[
        "frame"] == 4
    _checkpoint(ckpt, "ffn")  # records no frame: --frame labels the statistics
    trace_checkpoint(ckpt, tmp_path / "out", frame=7, layers=["l3"])
    assert json.loads(str(read_frame_stats(tmp_path / "out" / "l3.npz")["meta_json"]))[
        "frame"] == 7
    with pytest.raises(ValueError, match="frame -1"):
        trace_checkpoint(ckpt, tmp_path / "out", frame=-1, layers=["l3"])
    with pytest.raises(ValueError, match=r"layer 'b1'.*l1, l2, l3"):
        trace_checkpoint(ckpt, tmp_path / "out", layers=["b1"])


LAYOUTS = [
    ("data/prepared/cityscapes_vps/0001/frames.npy", ("prepare_video",)),
    ("data/prepared/synthetic/vipseg/1_a/640x1280/meta.json", ("prepare_video",)),
    ("/home/u/work/xinc/data/prepared/vipseg/1_a/segments.csv", ("prepare_video",)),
    ("data/work/vipseg/1_a/32x64/frames_pil.npy", ("working_res",)),
    ("data/work/synthetic/vipseg/1_a/640x1280/32x64/frames_bicubic.npy", ("working_res",)),
    ("data/prepared/vipseg/synthetic-tiny-seed0/1_a/panoptic.npy", ("prepare_video",)),
    ("data/work/vipseg/synthetic-tiny-seed0/1_a/32x64/segments.csv", ("working_res",)),
    ("data/synthetic/vipseg.truth.npz", ("synth_dataset",)),
    ("data/synthetic/tiny-seed0/vipseg.truth.npz", ("synth_dataset",)),
    ("results/stats/models/nerv/vipseg/1_a/s0/ckpt.pt", ("train_nerv", "import_nerv")),
    ("results/models/nerv/vipseg/1_a/s0/ckpt.pt", ("train_nerv", "import_nerv")),
    ("results/run1/models/ffn/vipseg/1_a/f3/s0/metrics.json", ("train_ffn_vipseg", "import_ffn")),
    ("results/run1/pixel_groups/ffn/vipseg/1_a/f3.npz", ("pixel_groups",)),
    ("results/stats/nerv/vipseg/1_a/s0/f3/head.npz", ("canvas_stats_nerv_vipseg",)),
    ("results/run1/stats/ffn/vipseg/1_a/s0/f3/l1.npz", ("canvas_stats_ffn_vipseg",)),
    ("results/run1/pair/nerv/vipseg/1_a/s0/t3/b1.npz", ("pair_stats",)),
    ("frames.npy", ()),
    ("downloads/model_best.pth", ()),
    ("results/models/nerv/notes.txt", ()),
]


@pytest.mark.parametrize(("path", "rules"), LAYOUTS)
def test_rules_that_write_an_intermediate_file(path, rules):
    assert writing_rules(path) == rules


def _truncate(path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


@pytest.fixture
def work(tmp_path):
    """A 4-frame working-resolution folder laid out as the workflow's."""
    out = tmp_path / "data" / "work" / "cityscapes_vps" / "0001" / "16x32"
    out.mkdir(parents=True)
    frames = np.zeros((4, 16, 32, 3), np.uint8)
    np.save(out / "frames_pil.npy", frames)
    np.save(out / "frames_bicubic.npy", frames.astype(np.float32))
    np.save(out / "panoptic.npy", np.zeros((1, 16, 32), np.int32))
    (out / "meta.json").write_text(json.dumps(META | {"T": 4, "annotated_t": [1],
                                                       "working_size": [16, 32]}))
    return out


def test_truncated_npy_names_the_file_and_its_rule(work):
    _truncate(work / "frames_bicubic.npy", 200)  # header intact, data cut
    with pytest.raises(IntermediateFileError) as err:
        load_nerv_frames(work / "frames_bicubic.npy")
    message = str(err.value)
    assert message.startswith(f"{work / 'frames_bicubic.npy'}: truncated or unreadable .npy")
    assert message.endswith("rule working_res: rerun it with `snakemake --forcerun working_res`")
    assert "\n" not in message


def test_truncated_memory_mapped_npy_and_empty_json(work, tmp_path):
    groups = tmp_path / "f1.npz"
    _truncate(work / "frames_pil.npy", 300)
    with pytest.raises(IntermediateFileError, match=r"frames_pil\.npy: .*rule working_res"):
        make_pixel_groups(work / "frames_pil.npy", work / "panoptic.npy", work / "meta.json", 1,
                          groups, clusters=2, grid=(2, 2), seed=0)
    (work / "meta.json").write_text("")
    with pytest.raises(IntermediateFileError,
                       match=r"meta\.json: truncated or unreadable \.json file.*working_res"):
        read_json(work / "meta.json")


def test_truncated_groups_and_checkpoint_name_their_rules(work, tmp_path):
    results = tmp_path / "results"
    ckpt = results / "models" / "nerv" / "cityscapes_vps" / "0001" / "s0" / "ckpt.pt"
    ckpt.parent.mkdir(parents=True)
    _checkpoint(ckpt, "nerv", frames=4)
    groups = results / "pixel_groups" / "nerv" / "cityscapes_vps" / "0001" / "f1.npz"
    save_npz(groups, **grid_groups(16, 32, (2, 2)))
    _truncate(groups, groups.stat().st_size // 2)
    canvas = {"time_index": "exact", "mode": "reference", "chunk": None, "bias": "split",
              "neuron": "kernel"}
    with pytest.raises(IntermediateFileError, match=r"f1\.npz: .*rule pixel_groups"):
        canvas_stats(ckpt, groups, work / "meta.json", 1, [tmp_path / "head.npz"], ["head"],
                     canvas=canvas, stats={"sample_neurons": 2, "seed": 0}, device="cpu")
    _truncate(ckpt, ckpt.stat().st_size // 2)
    with pytest.raises(IntermediateFileError) as err:
        load_model(ckpt)
    assert "rule train_nerv (or import_nerv)" in str(err.value)
    assert "delete" not in str(err.value)


def test_canvas_job_records_every_label_the_figures_read(work, tmp_path):
    """The figures label a statistics file from its meta alone (never its path): the canvas
    job records dataset, video, arch, layer, seed and frame, untrained models included."""
    (work / "meta.json").write_text(json.dumps(META | {"dataset": "cityscapes_vps", "T": 4,
                                                       "annotated_t": [1],
                                                       "working_size": [16, 32]}))
    ckpt, groups = tmp_path / "ckpt.pt", tmp_path / "groups.npz"
    _checkpoint(ckpt, "nerv", frames=4, seed=3)
    save_npz(groups, **grid_groups(16, 32, (2, 2)))
    canvas = {"time_index": "exact", "mode": "reference", "chunk": None, "bias": "split",
              "neuron": "kernel"}
    for untrained in (False, True):
        out = tmp_path / f"anywhere_{untrained}" / "x.npz"
        canvas_stats(ckpt, groups, work / "meta.json", 2, [out], ["head"], canvas=canvas,
                     stats={"sample_neurons": 2, "seed": 0}, device="cpu", untrained=untrained)
        assert StatsInput.from_path(out).labels() == {
            "dataset": "cityscapes_vps", "video": "0001", "arch": "nerv", "layer": "head",
            "seed": 3, "frame": 2}


def test_unreadable_user_files_get_no_rule_advice(tmp_path):
    notes = tmp_path / "notes.pt"
    notes.write_text("not a checkpoint")
    with pytest.raises(IntermediateFileError) as err:
        load_model(notes)
    assert str(err.value).startswith(f"{notes}: truncated or unreadable .pt file")
    assert "rule" not in str(err.value) and "delete" not in str(err.value)
    with pytest.raises(FileNotFoundError, match="no_such.pt: file not found"):
        load_model(tmp_path / "no_such.pt")
    with pytest.raises(FileNotFoundError, match=r"meta\.json: file not found.*prepare_video"):
        read_json(tmp_path / "data" / "prepared" / "vipseg" / "v" / "meta.json")


def test_truncated_statistics_name_the_canvas_rule(tmp_path):
    from xinc.stats import read_frame_stats, read_pair_stats

    stats = tmp_path / "results" / "demo" / "stats" / "nerv" / "vipseg" / "v" / "s1" / "f0"
    stats.mkdir(parents=True)
    path = stats / "b1.npz"
    save_npz(path, total=np.ones(4))
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(IntermediateFileError, match="written by rule canvas_stats_nerv_"):
        read_frame_stats(path)
    pair = tmp_path / "results" / "demo" / "pair" / "nerv" / "b1.npz"
    pair.parent.mkdir(parents=True)
    save_npz(pair, total=np.ones(4))
    with pytest.raises(IntermediateFileError, match="not a contribution-change file.*pair_stats"):
        read_pair_stats(pair)
