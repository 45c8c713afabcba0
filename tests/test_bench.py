"""Training benchmark: runs on tiny sizes and returns a well-formed result (no timing checks)."""

from __future__ import annotations

import json
import math

import pytest

from xinc.bench.train import format_report, nerv_settings, run

COMMON_KEYS = {
    "kind",
    "device",
    "threads",
    "frames",
    "size",
    "params",
    "model_settings",
    "repeats",
    "unit",
    "variants",
    "baseline",
    "ratio",
    "notes",
}
VARIANT_KEYS = {"seconds", "values", "median", "min", "max"}


def check_variants(result: dict, names: list[str], baseline: str) -> None:
    assert list(result["variants"]) == names
    assert result["baseline"] == baseline and result["ratio"][baseline] == 1.0
    base = result["variants"][baseline]["median"]
    for name, v in result["variants"].items():
        assert set(v) == VARIANT_KEYS
        assert len(v["seconds"]) == len(v["values"]) == result["repeats"]
        assert all(math.isfinite(s) for s in v["seconds"])  # NeRV: differences of two runs
        assert v["min"] <= v["median"] <= v["max"]
        assert result["ratio"][name] == pytest.approx(v["median"] / base)
    json.dumps(result)  # plain data


def test_ffn_bench_structure() -> None:
    result = run(
        "ffn",
        frames=3,
        size=(8, 16),
        steps=2,
        repeats=2,
        batch_models=(0, 2),
        model_settings={"width": 8},
        device="cpu",
        threads=1,
    )
    assert set(result) == COMMON_KEYS | {"steps"}
    assert result["unit"] == "models/min" and result["steps"] == 2 and result["size"] == [8, 16]
    assert result["params"] == (16 * 8 + 8) + (8 * 8 + 8) + (8 * 3 + 3)
    check_variants(result, ["one_by_one", "batched_auto3", "batched2"], "one_by_one")
    for v in result["variants"].values():
        assert v["values"] == pytest.approx([60 * 3 / s for s in v["seconds"]])
    report = format_report(result)
    assert "models/min" in report and "batched2" in report and "one_by_one" in report


def test_nerv_bench_structure() -> None:
    result = run(
        "nerv",
        frames=4,
        size=(32, 64),
        epochs=1,
        repeats=1,
        model_settings={"fc_hw": [2, 4], "fc_dim": 6},
        device="cpu",
        threads=1,
    )
    assert set(result) == COMMON_KEYS | {"epochs"}
    assert result["unit"] == "s/epoch" and result["epochs"] == 1
    check_variants(result, ["train_nerv", "textbook"], "textbook")
    assert result["variants"]["train_nerv"]["values"] == result["variants"]["train_nerv"]["seconds"]
    report = format_report(result)
    assert "s/epoch" in report and "train_nerv" in report and "textbook" in report


def test_bench_arguments() -> None:
    assert nerv_settings(128, 256) == {}  # the paper model exactly
    assert nerv_settings(64, 128) == {"fc_hw": [4, 8]}
    with pytest.raises(ValueError, match="multiple of 16"):
        nerv_settings(60, 128)
    with pytest.raises(ValueError, match="unknown benchmark"):
        run("mlp")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"batch_models": (0, -1)}, "batch_models"),
    ({"threads": 0}, "threads"),
    ({"size": (0, 16)}, "size"),
    ({"device": "bogus"}, "device 'bogus'"),
])
def test_bench_checks_its_arguments_before_training(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        run("ffn", **kwargs)
