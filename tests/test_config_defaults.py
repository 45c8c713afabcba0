"""One source for the configuration: the schema is package data, and the trainers' defaults are
the schema's; an installed xinc reads its config outside the project folder."""

from __future__ import annotations

import json
import tomllib
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

import xinc
from tests.conftest import ROOT
from xinc.cli import main
from xinc.config import load_config, validate
from xinc.train import FFNTrainConfig, NeRVTrainConfig

SCHEMA = Path(xinc.__file__).parent / "config.schema.yaml"


@pytest.mark.parametrize(("settings", "section"), [(NeRVTrainConfig, "nerv"),
                                                    (FFNTrainConfig, "ffn")])
def test_trainer_defaults_are_the_schemas(settings, section):
    schema = yaml.safe_load(SCHEMA.read_text())
    keys = schema["properties"]["train"]["properties"][section]["properties"]
    assert {f.name: f.default for f in fields(settings)} == {
        name: spec["default"] for name, spec in keys.items()}


def test_the_schema_ships_with_the_package():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "config.schema.yaml" in pyproject["tool"]["setuptools"]["package-data"]["xinc"]
    assert not (ROOT / "workflow" / "schemas").exists()  # no second copy for the workflow


def test_outside_a_project_the_schema_defaults_apply(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no config.yaml, no presets/
    assert load_config() == validate({})
    assert main(["params"]) == 0
    assert json.loads(capsys.readouterr().out) == {"ffn": 32971, "nerv": 978557}  # the paper's


def test_outside_a_project_a_preset_is_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="no presets/ folder.*YAML file's path"):
        load_config("smoke")
    smoke = load_config(str(ROOT / "presets" / "smoke.yaml"))
    assert smoke["run"] == "smoke" and smoke["train"]["nerv"]["epochs"] == 4  # the preset's
    assert smoke["models"]["nerv"]["modelsize"] == 1.0  # the schema's, not config.yaml's 0.3
    assert load_config("smoke", ROOT)["models"]["nerv"]["modelsize"] == 0.3
