"""The `xinc` command: synthetic data, parameter counts, tracing one checkpoint."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from xinc import __version__
from xinc.cli import build_parser, main
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


def one_line_error(capsys) -> str:
    """The stderr of a failed command: exactly one line starting `xinc: error:`."""
    err = capsys.readouterr().err
    assert err.startswith("xinc: error: ") and err.count("\n") == 1, err
    return err


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"xinc {__version__}"


def _parsers(parser: argparse.ArgumentParser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def test_every_argument_has_help_that_shows_its_default():
    for parser in _parsers(build_parser()):
        formatter = parser._get_formatter()
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._VersionAction):
                continue
            assert action.help, (parser.prog, action.dest)
            if action.option_strings and not action.required:
                text = formatter._get_help_string(action) % {"default": action.default}
                assert "default" in text, (parser.prog, action.dest, text)


def test_trace_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["trace", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: reference)" in out and "(default: split)" in out
    assert "--frame" in out and "trained on" in out


@pytest.mark.parametrize("argv", [
    ["bench", "canvas", "--cases", "bogus"],
    ["bench", "canvas", "--preset", "smoke"],
    ["bench", "canvas", "--naive-layers", "l1"],
    ["bench", "canvas", "--repeats", "0"],
    ["bench", "train", "--arch", "ffn", "--batch-models", "-1"],
    ["bench", "train", "--arch", "ffn", "--steps", "0"],
    ["bench", "train", "--arch", "nerv", "--size", "0", "16"],
    ["trace", "x.pt", "out", "--frame", "one"],
])
def test_bad_options_fail_before_any_work(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert "error:" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("bench", ["train", "canvas"])
def test_bench_on_missing_cuda_is_one_line(bench, capsys):
    argv = ["bench", bench, "--device", "cuda"] + (["--arch", "ffn"] if bench == "train" else [])
    assert main(argv) == 2
    assert "CUDA" in one_line_error(capsys)


def test_trace_of_a_missing_or_foreign_file_is_one_line(tmp_path, capsys):
    assert main(["trace", str(tmp_path / "no_such.pt"), str(tmp_path / "out")]) == 2
    assert "no_such.pt: file not found" in one_line_error(capsys)
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    assert main(["trace", str(notes), str(tmp_path / "out")]) == 2
    err = one_line_error(capsys)
    assert "notes.txt: truncated or unreadable" in err and "delete" not in err


def test_trace_refuses_impossible_frames(tmp_path, capsys):
    ckpt = tmp_path / "ckpt.pt"
    save_checkpoint(ckpt, build_model("nerv", {"fc_dim": 6, "fc_hw": [1, 2]}),
                    {"height": 16, "width": 32, "frames": 31})
    for frame in ("999", "-5", "31"):
        assert main(["trace", str(ckpt), str(tmp_path / "out"), "--frame", frame]) == 2
        assert f"frame {frame}" in one_line_error(capsys)
    save_checkpoint(ckpt, build_model("ffn", {"width": 4}),
                    {"height": 16, "width": 32, "frame": 3})
    assert main(["trace", str(ckpt), str(tmp_path / "out"), "--frame", "1"]) == 2
    assert "trained on frame 3, not frame 1" in one_line_error(capsys)
    assert main(["trace", str(ckpt), str(tmp_path / "out"), "--layers", "l3"]) == 0
    meta = json.loads(str(read_frame_stats(tmp_path / "out" / "l3.npz")["meta_json"]))
    assert meta["frame"] == 3


def test_trace_of_a_checkpoint_without_frame_size(tmp_path, capsys):
    ckpt = tmp_path / "ckpt.pt"
    save_checkpoint(ckpt, build_model("ffn", {"width": 4}), {})
    assert main(["trace", str(ckpt), str(tmp_path / "out")]) == 2
    assert "'height'" in one_line_error(capsys)


def test_params_of_a_broken_preset_is_one_line(tmp_path, capsys):
    preset = tmp_path / "broken.yaml"
    preset.write_text("models: [\n")
    assert main(["params", "--preset", str(preset)]) == 2
    assert "broken.yaml" in one_line_error(capsys)


def test_synth_keeps_a_users_folder(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert main(["synth", "vipseg", str(out), "--scale", "tiny"]) == 2
    assert "not written by the synthetic generator" in one_line_error(capsys)
    assert (out / "notes.txt").read_text() == "keep me"


def test_bench_canvas_choices_are_the_benchmarks():
    from xinc import cli
    from xinc.bench import canvas

    assert cli.BENCH_CASES == canvas.CASES and cli.NERV_LAYERS == canvas.NERV_LAYERS
