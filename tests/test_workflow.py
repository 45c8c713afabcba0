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


def test_snakemake_rejects_bad_config_in_a_few_lines(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  nerv:\n    epochs: -3\n  ffnn: {}\n")
    result = snakemake("-n", "--configfile", str(bad), "--directory", str(tmp_path))
    assert result.returncode != 0
    text = result.stdout + result.stderr
    assert "config key train: Additional properties are not allowed ('ffnn' was unexpected); " \
        "allowed keys: ffn, nerv, nerv_target" in text
    assert "config key train.nerv.epochs: -3 is less than the minimum of 1" in text
    assert len(text.splitlines()) < 40, text  # not the schema and config dump


def test_list_values_from_the_command_line_get_a_hint(tmp_path):
    result = snakemake("-n", "--config", "seeds=[1,2]", "--directory", str(tmp_path))
    assert result.returncode != 0
    assert "config key seeds.0: '1' is not of type 'integer'" in output(result)
    assert "pass it with --configfile" in output(result)


def test_working_size_the_nerv_cannot_render_fails_before_any_job(tmp_path):
    overlay = tmp_path / "size.yaml"
    overlay.write_text("working_size: [30, 64]\n")
    result = snakemake("--cores", "1", "--configfile", str(ROOT / "presets" / "smoke.yaml"),
                       str(overlay), "--directory", str(tmp_path))
    assert result.returncode != 0
    assert "config key working_size: [30, 64] is not what the NeRV renders" in output(result)
    assert "multiples of 16" in output(result)
    assert not (tmp_path / "data").exists() and not (tmp_path / "results").exists()


def results(workdir: Path) -> Path:
    """The smoke preset's run folder (config `run: smoke`)."""
    return workdir / "results" / "smoke"


def output(result: subprocess.CompletedProcess) -> str:
    """What Snakemake printed (it reports some errors on stdout, some on stderr)."""
    return result.stdout + result.stderr


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
    figures = results(smoke_run) / "figures"
    for name in ("fig03", "fig04", "fig06"):
        png, csv = figures / f"{name}.png", figures / f"{name}.csv"
        assert png.stat().st_size > 5000, f"{png} is too small to be a plot"
        table = pd.read_csv(csv)
        assert len(table) > 0, f"{csv} is empty"
    fig06 = pd.read_csv(figures / "fig06.csv")
    assert set(fig06["arch"]) == {"nerv", "ffn"}
    assert (fig06["pixels"] >= 0).all() and (fig06["pixels"] <= 32 * 64).all()


def test_smoke_models_report_psnr(smoke_run):
    metrics = sorted((results(smoke_run) / "models").rglob("metrics.json"))
    assert {m.relative_to(results(smoke_run) / "models").parts[0] for m in metrics} == {
        "nerv", "ffn"}
    for path in metrics:
        psnr = json.loads(path.read_text())["psnr"]
        assert np.isfinite(psnr) and psnr > 5, path
    table = pd.read_csv(results(smoke_run) / "tables" / "table_s1.csv").set_index("arch")
    assert table.loc["nerv", "params"] == 21501 and table.loc["ffn", "params"] == 851
    assert table.loc["nerv", "n"] == 2 and table.loc["ffn", "n"] == 2  # two videos, one seed
    assert (table["bpp_mean"] > 0).all()


def test_smoke_prepared_labels_equal_generator_truth(smoke_run):
    truth = np.load(smoke_run / "data" / "synthetic" / "tiny-seed0" / "cityscapes_vps.truth.npz")
    prepared = np.load(smoke_run / "data" / "prepared" / "cityscapes_vps" / "synthetic-tiny-seed0"
                       / "0001" / "panoptic.npy")
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
    files = sorted((results(smoke_run) / "stats").rglob("*.npz"))
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
    files = sorted((results(smoke_run) / "pair").rglob("*.npz"))
    layers = load_config(str(ROOT / "presets" / "smoke.yaml"))["canvas"]["layers"]["nerv"]
    assert len(files) == 2 * len(layers)  # two videos, one seed, t = 1
    for path in files:
        delta, meta = read_pair_stats(path)
        assert (meta["frame_prev"], meta["frame"], meta["layer"]) == (0, 1, path.stem)
        ckpt = results(smoke_run) / "models" / "nerv" / meta["dataset"] / meta["video"] / \
            f"s{meta['seed']}" / "ckpt.pt"
        model = load_checkpoint(ckpt)
        want = canvas_pair_change(model, path.stem, meta["t_prev"], meta["t"])
        assert delta.shape == (32, 64) and (delta >= 0).all() and delta.max() > 0
        np.testing.assert_allclose(delta, want, rtol=1e-6, atol=0)


def overlay(tmp_path: Path, text: str, name: str = "overlay.yaml") -> list[str]:
    """--configfile arguments: the smoke preset, then `text` as a YAML overlay."""
    path = tmp_path / name
    path.write_text(text)
    return ["--configfile", str(ROOT / "presets" / "smoke.yaml"), str(path)]


def planned_rules(result: subprocess.CompletedProcess) -> dict[str, int]:
    """{rule: jobs} from a dry run's job table."""
    table = result.stdout.split("Job stats:")[1].split("total")[0]
    rows = [line.split() for line in table.splitlines()[3:] if line.strip()]
    return {row[0]: int(row[1]) for row in rows}


def test_mistyped_pretrained_path_is_an_error_after_training(smoke_run, tmp_path):
    result = snakemake("-n", *overlay(tmp_path, "pretrained:\n  nerv: mine/{dataset}/{video}/"
                                      "s{seed}.pth\n"), "--directory", str(smoke_run))
    assert result.returncode != 0
    assert "Nothing to be done" not in result.stdout + result.stderr
    assert "config key pretrained.nerv: 2 of 2 checkpoints" in output(result)
    assert "mine/cityscapes_vps/0001/s1.pth" in output(result)
    assert "mine/vipseg/1_xincSynth01a/s1.pth" in output(result)


def test_pretrained_checkpoints_replace_the_trained_models(smoke_run, tmp_path):
    mine = tmp_path / "mine"
    for ckpt in sorted((results(smoke_run) / "models" / "nerv").rglob("ckpt.pt")):
        ds, vid, seed = ckpt.parts[-4:-1]
        dst = mine / ds / vid / f"{seed}.pt"
        dst.parent.mkdir(parents=True)
        shutil.copy(ckpt, dst)
    text = f"pretrained:\n  nerv: {mine}/{{dataset}}/{{video}}/s{{seed}}.pt\n"
    result = snakemake("-n", *overlay(tmp_path, text), "--directory", str(smoke_run))
    assert result.returncode == 0, result.stderr
    plan = planned_rules(result)
    assert plan["import_nerv"] == 2 and plan["canvas_nerv"] == 2
    assert "train_nerv" not in plan and "train_ffn_vipseg" not in plan


def test_real_source_without_root_is_an_error_after_a_run(smoke_run, tmp_path):
    result = snakemake("-n", *overlay(tmp_path, "source: real\n"), "--directory",
                       str(smoke_run))
    assert result.returncode != 0
    assert "config key datasets.vipseg.root: not set, but source is 'real'" in output(result)
    assert "filesystem latency" not in result.stdout + result.stderr


def test_runs_keep_their_own_results_and_share_data(smoke_run, tmp_path):
    before = {p: p.stat().st_mtime_ns for p in results(smoke_run).rglob("*") if p.is_file()}
    result = snakemake("-n", *overlay(tmp_path, "run: other\ntrain:\n  nerv:\n    epochs: 2\n"),
                       "--directory", str(smoke_run))
    assert result.returncode == 0, result.stderr
    plan = planned_rules(result)
    assert plan["train_nerv"] == 2 and plan["fig04"] == 1 and plan["run_config"] == 1
    assert not {"synth_dataset", "prepare_video", "working_res"} & set(plan)  # data is shared
    assert "results/other/models/nerv/vipseg" in result.stdout
    assert "results/smoke/" not in result.stdout
    after = {p: p.stat().st_mtime_ns for p in results(smoke_run).rglob("*") if p.is_file()}
    assert after == before
    other_data = snakemake("-n", *overlay(tmp_path, "run: other\nsynthetic: {seed: 3}\n"),
                           "--directory", str(smoke_run))
    assert planned_rules(other_data)["synth_dataset"] == 2  # other data, other folders
    assert "data/synthetic/tiny-seed3/vipseg" in other_data.stdout


def test_run_records_its_resolved_config(smoke_run, tmp_path):
    recorded = yaml.safe_load((results(smoke_run) / "config.yaml").read_text())
    assert recorded == load_config(str(ROOT / "presets" / "smoke.yaml"), ROOT)
    changed = snakemake("-n", *overlay(tmp_path, "train:\n  nerv:\n    epochs: 5\n"),
                        "--directory", str(smoke_run))
    assert "results/smoke/config.yaml records another configuration " \
        "(train.nerv.epochs: 4 → 5)" in changed.stderr
    assert "Set `run:` to a new name to keep both" in changed.stderr


def test_failed_job_shows_its_error_on_the_console(smoke_run, tmp_path):
    work = tmp_path / "copy"
    shutil.copytree(smoke_run, work, symlinks=True)
    target = "results/smoke/pair/nerv/vipseg/1_xincSynth01a/s1/t40/head.npz"
    result = snakemake("--cores", "1", *overlay(tmp_path, "canvas:\n  pair_frames: [40]\n"),
                       "--directory", str(work), target)
    assert result.returncode != 0
    assert "[pair_stats ds=vipseg vid=1_xincSynth01a seed=1 t=40] error:" in result.stderr
    assert "set canvas.pair_frames within 1 … 30" in result.stderr
    assert not (work / target).exists()
