"""Config checks that run when the Snakefile loads: schema messages, sizes, named files."""

from __future__ import annotations

import copy

import pytest
import yaml

from tests.conftest import ROOT
from xinc.config import ConfigError, validate
from xinc.config_checks import (
    check_workflow_config,
    config_differences,
    pretrained_paths,
    recorded_differences,
)

VIDEOS = {"cityscapes_vps": ["0001"], "vipseg": ["1_xincSynth01a"]}


def with_changes(config: dict, **changes) -> dict:
    out = copy.deepcopy(config)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = out
        for key in parents:
            node = node[key]
        node[last] = value
    return out


def test_schema_errors_name_key_reason_and_allowed_values():
    base = yaml.safe_load((ROOT / "config.yaml").read_text())
    bad = {**base, "canvas": {"mode": "exactly", "colour": "red"}, "seeds": ["1", "2"]}
    with pytest.raises(ConfigError) as err:
        validate(bad)
    lines = str(err.value).splitlines()
    assert len(lines) <= 6, lines  # a few lines, never the schema and config dump
    text = str(err.value)
    assert "config key canvas.mode: 'exactly' is not one of" in text
    assert "allowed values: reference, exact" in text
    assert "config key canvas: Additional properties" in text and "allowed keys: bias" in text
    assert "config key seeds.0: '1' is not of type 'integer'" in text
    assert "--configfile" in text  # list values from --config arrive as strings


def test_working_size_must_be_what_the_nerv_renders(smoke):
    check_workflow_config(smoke, VIDEOS)  # 2x4 stem x 16 = 32x64: fine
    with pytest.raises(ConfigError) as err:
        check_workflow_config(with_changes(smoke, working_size=[30, 64]), VIDEOS)
    assert "config key working_size: [30, 64]" in str(err.value)
    assert "multiples of 16" in str(err.value) and "[32, 64]" in str(err.value)
    with pytest.raises(ConfigError, match=r"set models.nerv.fc_hw: \[4, 8\]"):
        check_workflow_config(with_changes(smoke, working_size=[64, 128]), VIDEOS)


def test_grid_must_fit_the_frame(smoke):
    with pytest.raises(ConfigError, match="config key stats.grid"):
        check_workflow_config(with_changes(smoke, stats__grid=[2, 65]), VIDEOS)


def test_real_source_reads_existing_roots_or_known_lengths(smoke, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    real = with_changes(smoke, source="real")
    with pytest.raises(ConfigError) as err:  # downloaded: VIPSeg's lengths come later
        check_workflow_config(real, VIDEOS)
    assert "cityscapes_vps" not in str(err.value)
    assert "the frames of '1_xincSynth01a' are known once select_videos" in str(err.value)
    known = {"vipseg": {"1_xincSynth01a": (31, list(range(31)))}}
    plan = check_workflow_config(real, VIDEOS, known)
    assert plan["vipseg"]["1_xincSynth01a"].n_frames == 31
    assert plan["cityscapes_vps"]["0001"].annotated == (4, 9, 14, 19, 24, 29)
    (tmp_path / "cs").mkdir()
    real["datasets"]["cityscapes_vps"]["root"] = "cs"
    real["datasets"]["vipseg"]["root"] = "no/such/folder"
    with pytest.raises(ConfigError) as err:
        check_workflow_config(real, VIDEOS)
    assert "cityscapes_vps" not in str(err.value)
    assert "datasets.vipseg.root: no/such/folder is not a folder" in str(err.value)


def test_pretrained_templates_expand_for_every_video_seed_and_frame(smoke):
    config = with_changes(smoke, seeds=[1, 10],
                          pretrained__ffn="m/{dataset}/{video}/f{frame}s{seed}")
    config["datasets"]["vipseg"]["videos"] = ["a", "b"]
    frames = {"cityscapes_vps": {"0001": [4]}, "vipseg": {"a": [0], "b": [0]}}
    assert pretrained_paths(config, "ffn", frames) == [
        "m/cityscapes_vps/0001/f4s1", "m/cityscapes_vps/0001/f4s10",
        "m/vipseg/a/f0s1", "m/vipseg/a/f0s10", "m/vipseg/b/f0s1", "m/vipseg/b/f0s10"]
    with pytest.raises(ConfigError, match=r"unknown placeholder\(s\) \{frame\}"):
        pretrained_paths(with_changes(smoke, pretrained__nerv="x/{frame}.pth"), "nerv", frames)


def test_missing_pretrained_checkpoints_are_listed(smoke, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ckpt" / "vipseg").mkdir(parents=True)
    (tmp_path / "ckpt" / "vipseg" / "1_xincSynth01a.pth").write_bytes(b"x")
    config = with_changes(smoke, pretrained__nerv="ckpt/{dataset}/{video}.pth")
    with pytest.raises(ConfigError) as err:
        check_workflow_config(config, VIDEOS)
    text = str(err.value)
    assert "pretrained.nerv: 1 of 2 checkpoints" in text
    assert "ckpt/cityscapes_vps/0001.pth" in text and "1_xincSynth01a" not in text
    (tmp_path / "ckpt" / "cityscapes_vps").mkdir()
    (tmp_path / "ckpt" / "cityscapes_vps" / "0001.pth").write_bytes(b"x")
    check_workflow_config(config, VIDEOS)


def test_recorded_config_differences(smoke, tmp_path):
    record = tmp_path / "config.yaml"
    assert recorded_differences(record, smoke) == []
    record.write_text(yaml.safe_dump(smoke))
    assert recorded_differences(record, smoke) == []
    changed = with_changes(smoke, working_size=[64, 128], train__nerv__epochs=9)
    assert recorded_differences(record, changed) == [
        "train.nerv.epochs: 4 → 9", "working_size: [32, 64] → [64, 128]"]
    assert config_differences({"a": 1}, {"b": 2}) == ["a: 1 → None", "b: None → 2"]


def test_cluster_settings_are_checked(smoke):
    shown = with_changes(smoke, clusters__shown=7)
    with pytest.raises(ConfigError, match=r"clusters\.shown: 7 clusters shown but k is 6"):
        check_workflow_config(shown, VIDEOS)
    deeper = with_changes(smoke, canvas__layers={"nerv": ["head", "b4"], "ffn": ["l1"]},
                          clusters__joint_archs=True)
    deeper["clusters"]["n_neighbors"].pop("joint")
    with pytest.raises(ConfigError, match=r"n_neighbors: no entry for b4, joint"):
        check_workflow_config(deeper, VIDEOS)
