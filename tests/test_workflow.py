"""The workflow as a user runs it: lint, formatting, config validation, the whole DAG."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import BIN, ROOT, snakemake
from xinc.config import load_config, validate
from xinc.models import load_checkpoint
from xinc.stats import canvas_pair_change, declared_nbytes, read_frame_stats, read_pair_stats


def test_snakemake_lint_is_clean():
    result = snakemake("--lint")
    assert result.returncode == 0, result.stdout + result.stderr


def test_snakefmt_and_ruff_are_clean():
    fmt = subprocess.run(
        [str(BIN / "snakefmt"), "--check", "Snakefile", "workflow/rules"],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert fmt.returncode == 0, fmt.stderr
    ruff = subprocess.run(
        [str(BIN / "ruff"), "check", "xinc", "workflow/scripts", "tests"],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert ruff.returncode == 0, ruff.stdout


def test_presets_validate_and_fill_defaults():
    paper = load_config("paper", ROOT)
    assert paper["seeds"] == [1, 10, 20, 30, 40]
    assert paper["train"]["nerv"]["epochs"] == 1000
    smoke = load_config("smoke", ROOT)
    assert smoke["train"]["nerv"]["batch_size"] == 2  # filled from the schema's default


@pytest.mark.parametrize(
    ("override", "key", "words"),
    [
        ({"train": {"nerv": {"epochs": -1}}}, "train.nerv.epochs", "minimum"),
        ({"train": {"nerv": {"epoch": 10}}}, "train.nerv", "'epoch' was unexpected"),
        ({"canvas": {"colour": "red"}}, "canvas", "'colour' was unexpected"),
    ],
)
def test_bad_config_names_the_key(override, key, words):
    base = yaml.safe_load((ROOT / "config.yaml").read_text())
    with pytest.raises(ValueError) as err:
        validate({**base, **override}, ROOT)
    assert f"config key {key}" in str(err.value)
    assert words in str(err.value)


def test_snakemake_rejects_bad_config_with_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  nerv:\n    epochs: -3\n  ffnn: {}\n")
    result = snakemake("-n", "--configfile", str(bad), "--directory", str(tmp_path))
    assert result.returncode != 0
    text = result.stdout + result.stderr
    assert "'ffnn' was unexpected" in text or "epochs" in text


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    """The whole DAG on presets/smoke.yaml in a scratch directory."""
    workdir = tmp_path_factory.mktemp("smoke")
    result = snakemake(
        "--cores", "2", "--configfile", str(ROOT / "presets" / "smoke.yaml"),
        "--directory", str(workdir),
    )
    if result.returncode != 0:
        logs = "\n".join(
            f"== {p}\n{p.read_text()[-3000:]}" for p in sorted((workdir / "logs").rglob("*.log"))
        ) if (workdir / "logs").is_dir() else ""
        pytest.fail(f"smoke run failed:\n{result.stderr[-6000:]}\n{logs}")
    return workdir


def test_smoke_dag_produces_every_figure(smoke_run):
    figures = smoke_run / "results" / "figures"
    for name in ("fig03", "fig04", "fig06"):
        png, csv = figures / f"{name}.png", figures / f"{name}.csv"
        assert png.stat().st_size > 5000, f"{png} is too small to be a plot"
        table = pd.read_csv(csv)
        assert len(table) > 0, f"{csv} is empty"
    fig06 = pd.read_csv(figures / "fig06.csv")
    assert set(fig06["arch"]) == {"nerv", "ffn"}
    assert (fig06["pixels"] >= 0).all() and (fig06["pixels"] <= 32 * 64).all()


def test_smoke_models_report_psnr(smoke_run):
    metrics = sorted((smoke_run / "results" / "models").rglob("metrics.json"))
    assert {m.relative_to(smoke_run / "results" / "models").parts[0] for m in metrics} == {
        "nerv", "ffn"}
    for path in metrics:
        psnr = json.loads(path.read_text())["psnr"]
        assert np.isfinite(psnr) and psnr > 5, path
    table = pd.read_csv(smoke_run / "results" / "tables" / "table_s1.csv").set_index("arch")
    assert table.loc["nerv", "params"] == 21501 and table.loc["ffn", "params"] == 851
    assert table.loc["nerv", "n"] == 2 and table.loc["ffn", "n"] == 2  # two videos, one seed
    assert (table["bpp_mean"] > 0).all()


def test_smoke_prepared_labels_equal_generator_truth(smoke_run):
    truth = np.load(smoke_run / "data" / "synthetic" / "cityscapes_vps.truth.npz")
    prepared = np.load(smoke_run / "data" / "prepared" / "cityscapes_vps" / "0001" / "panoptic.npy")
    np.testing.assert_array_equal(prepared, truth["0001/panoptic"])


def test_smoke_second_run_has_nothing_to_do(smoke_run):
    result = snakemake(
        "--cores", "2", "--configfile", str(ROOT / "presets" / "smoke.yaml"),
        "--directory", str(smoke_run),
    )
    assert result.returncode == 0, result.stderr
    assert "Nothing to be done" in result.stdout + result.stderr


def test_smoke_report(smoke_run):
    report = smoke_run / "report.html"
    result = snakemake(
        "--configfile", str(ROOT / "presets" / "smoke.yaml"), "--directory", str(smoke_run),
        "--report", str(report),
    )
    assert result.returncode == 0, result.stderr
    html = report.read_text(errors="replace")
    assert "fig04" in html and len(html) > 100_000


def test_console_command_prints_paper_parameter_counts():
    exe = shutil.which("xinc", path=str(BIN)) or f"{sys.executable} -m xinc.cli"
    out = subprocess.run(
        [*exe.split(), "params", "--preset", "paper"], cwd=ROOT, capture_output=True, text=True
    )
    assert json.loads(out.stdout) == {"ffn": 32971, "nerv": 978557}


def test_smoke_canvas_files_hold_only_declared_statistics(smoke_run):
    files = sorted((smoke_run / "results" / "stats").rglob("*.npz"))
    assert {f.parent.parent.parent.parent.parent.name for f in files} == {"nerv", "ffn"}
    for path in files:
        stats = read_frame_stats(path)
        meta = json.loads(str(stats["meta_json"]))
        n, h, w = meta["neurons"], meta["height"], meta["width"]
        groups = {g: len(stats[f"areas_{g}"]) for g in meta["groupings"]}
        declared = declared_nbytes(n, h, w, groups, len(stats["sample_ids"]))
        assert set(stats) - {"meta_json"} == set(declared), path
        for key, nbytes in declared.items():
            assert stats[key].nbytes == nbytes, (path, key)
        # zip member and .npy headers: at most ~300 bytes per array
        bound = sum(declared.values()) + stats["meta_json"].nbytes + 300 * len(stats)
        assert path.stat().st_size <= bound, path
        if n * h * w * 4 > bound:  # then not even one layer's canvas could hide in the file
            assert path.stat().st_size < n * h * w * 4


def test_smoke_pair_stats_equal_direct_computation(smoke_run):
    files = sorted((smoke_run / "results" / "pair").rglob("*.npz"))
    layers = load_config(str(ROOT / "presets" / "smoke.yaml"))["canvas"]["layers"]["nerv"]
    assert len(files) == 2 * len(layers)  # two videos, one seed, t = 1
    for path in files:
        delta, meta = read_pair_stats(path)
        assert (meta["frame_prev"], meta["frame"], meta["layer"]) == (0, 1, path.stem)
        ckpt = smoke_run / "results" / "models" / "nerv" / meta["dataset"] / meta["video"] / \
            f"s{meta['seed']}" / "ckpt.pt"
        model = load_checkpoint(ckpt)
        want = canvas_pair_change(model, path.stem, meta["t_prev"], meta["t"])
        assert delta.shape == (32, 64) and (delta >= 0).all() and delta.max() > 0
        np.testing.assert_allclose(delta, want, rtol=1e-6, atol=0)
