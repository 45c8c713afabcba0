"""The workflow as a user runs it: lint, formatting, config validation, the whole DAG."""

from __future__ import annotations

import base64
import html
import importlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from explorer_files import read_js, unpack
from PIL import Image

from tests.conftest import BIN, ROOT, snakemake
from xinc.canvas import ffn_canvas, nerv_canvas
from xinc.cluster.layer import read_clusters
from xinc.cluster.members import read_members
from xinc.config import load_config, validate
from xinc.config_checks import recorded_config
from xinc.figure_plan import FIGURES
from xinc.flow import read_flow
from xinc.models import load_checkpoint
from xinc.stats import canvas_pair_change, declared_nbytes, read_frame_stats, read_pair_stats

pytestmark = pytest.mark.slow  # the smoke preset's whole DAG (minutes), then dry runs on it


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
        validate({**base, **override})
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
    # one thread per canvas job: on tiny models start-up dominates, so two jobs at a time
    canvas = [f"canvas_stats_{arch}_{ds}" for arch in ("nerv", "ffn")
              for ds in ("cityscapes_vps", "vipseg")]
    one_thread = [f"{rule}=1" for rule in (*canvas, "canvas_stats_nerv_untrained",
                                           "canvas_stats_ffn_untrained", "pair_stats")]
    result = snakemake(
        "--cores", "2", "--configfile", str(ROOT / "presets" / "smoke.yaml"),
        "--directory", str(workdir), "--set-threads", *one_thread,
    )
    if result.returncode != 0:
        logs = "\n".join(
            f"== {p}\n{p.read_text()[-3000:]}" for p in sorted((workdir / "logs").rglob("*.log"))
        ) if (workdir / "logs").is_dir() else ""
        pytest.fail(f"smoke run failed:\n{result.stderr[-6000:]}\n{logs}")
    return workdir


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_smoke_dag_produces_every_figure(smoke_run, name):
    figures = results(smoke_run) / "figures"
    png, csv = figures / f"{name}.png", figures / f"{name}.csv"
    with Image.open(png) as image:
        pixels = np.asarray(image.convert("L"))
    assert pixels.shape[0] > 200 and pixels.std() > 5, f"{png} is blank"
    table = pd.read_csv(csv)
    module = importlib.import_module(f"xinc.plots.{FIGURES[name].module}")
    assert list(table.columns) == module.COLUMNS and len(table) > 0, csv
    assert (figures / f"{name}_summary.csv").is_file() == FIGURES[name].summary


def test_smoke_figures_show_what_the_config_selects(smoke_run):
    figures = results(smoke_run) / "figures"
    fig06 = pd.read_csv(figures / "fig06.csv")
    assert set(fig06["arch"]) == {"nerv", "ffn"} and set(fig06["seed"]) == {1}
    assert set(fig06["frame"]) == {4}  # the key frame of both videos
    assert (fig06["pixels"] >= 0).all() and (fig06["pixels"] <= 32 * 64).all()
    assert set(pd.read_csv(figures / "fig11.csv")["layer"]) == {"l1", "b1"}
    fig19 = pd.read_csv(figures / "fig19.csv")
    assert set(fig19["layer"]) == {"b2", "b1"} and set(fig19["frame"]) == {4, 9, 14}
    fig09 = pd.read_csv(figures / "fig09.csv")
    assert set(zip(fig09["frame_prev"], fig09["frame"], strict=True)) == {(0, 1), (4, 5)}


def test_smoke_findings_restate_every_claim(smoke_run):
    findings = pd.read_csv(results(smoke_run) / "tables" / "findings.csv")
    assert set(findings["figure"]) == {"fig04", "fig06", "fig07", "fig08", "fig09", "fig10"}
    assert (findings["n"] <= 4).all() and (findings["n"] >= 1).all()  # 2 videos x 2 seeds
    clusters = findings[findings["figure"] == "fig10"]  # one unit: video 0001, seed set 1 2
    assert set(clusters["statistic"]) == {"seed_mixing", "seed_mixing_untrained",
                                          "stability_ari", "ari_umap_raw"}
    assert len(clusters) == 4 * 7 and (clusters["n"] == 1).all()
    assert set(findings["data"]) == {"synthetic"}
    finite = findings.dropna(subset=["value"])
    assert (finite["ci_low"] <= finite["value"] + 1e-12).all()
    assert (finite["value"] <= finite["ci_high"] + 1e-12).all()


def test_smoke_instance_tables_equal_the_panoptic_labels(smoke_run):
    for ds, vid in (("cityscapes_vps", "0001"), ("vipseg", "1_xincSynth01a")):
        table = pd.read_csv(results(smoke_run) / "tables" / "instances" / ds / f"{vid}.csv")
        work = next((smoke_run / "data" / "work" / ds).glob(f"*/{vid}/32x64"))
        meta = json.loads((work / "meta.json").read_text())
        panoptic = np.load(work / "panoptic.npy")
        assert sorted(set(table["frame"])) == [4, 9, 14]
        for frame, rows in table.groupby("frame"):
            labels = panoptic[meta["annotated_t"].index(frame)]
            ids, counts = np.unique(labels, return_counts=True)
            want = {int(i) if i >= 0 else -2: int(c) for i, c in zip(ids, counts, strict=True)}
            assert dict(zip(rows["pan_id"], rows["area"], strict=True)) == want
        tracks = table.groupby("pan_id")["track"].nunique()
        assert (tracks == 1).all()  # one name per segment over time


def test_smoke_flow_files(smoke_run):
    for path in sorted((results(smoke_run) / "flow").rglob("*.npz")):
        flow = read_flow(path)
        assert flow["u"].shape == (32, 64)
        np.testing.assert_allclose(flow["magnitude"], np.hypot(flow["u"], flow["v"]), rtol=1e-5)


def test_smoke_models_report_psnr(smoke_run):
    metrics = sorted((results(smoke_run) / "models").rglob("metrics.json"))
    assert {m.relative_to(results(smoke_run) / "models").parts[0] for m in metrics} == {
        "nerv", "ffn"}
    for path in metrics:
        psnr = json.loads(path.read_text())["psnr"]
        assert np.isfinite(psnr) and psnr > 5, path
    table = pd.read_csv(results(smoke_run) / "tables" / "table_s1.csv").set_index("arch")
    assert table.loc["nerv", "params"] == 21501 and table.loc["ffn", "params"] == 851
    assert table.loc["nerv", "n"] == 4 and table.loc["ffn", "n"] == 4  # two videos, two seeds
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


def report_data(page: str, name: str):
    """The JSON value a Snakemake HTML report assigns in its `<script id="{name}">` block."""
    block = page.split(f'<script id="{name}">', 1)[1].split("</script>", 1)[0]
    return json.loads(block.split("=", 1)[1].strip().removesuffix(";"))


def test_smoke_report(smoke_run):
    """The report holds every figure (the PNG itself, embedded) and table with its caption,
    and describes the run with the values of its resolved configuration."""
    report = smoke_run / "report.html"
    result = snakemake(
        "--configfile", str(ROOT / "presets" / "smoke.yaml"), "--directory", str(smoke_run),
        "--report", str(report),
    )
    assert result.returncode == 0, result.stderr
    page = report.read_text()
    entries: dict[str, list[tuple[str, dict]]] = {}
    for path, entry in report_data(page, "results").items():
        entries.setdefault(entry["job_properties"]["rule"], []).append((path, entry))
    tables = {"table_s1": "table_s1", "findings": "findings", "cluster_table": "clusters"}
    for rule in (*FIGURES, *tables):
        assert len(entries.get(rule, [])) == 1, f"{rule}: {len(entries.get(rule, []))} entries"
        path, entry = entries[rule][0]
        caption = (ROOT / "workflow" / "report" / f"{tables.get(rule, rule)}.rst").read_text()
        assert caption.split("**")[1] in html.unescape(entry["caption"]), rule
        header, data = entry["data_uri"].split(",", 1)
        assert header.startswith(f"data:{entry['mime_type']};") and header.endswith(";base64")
        assert base64.b64decode(data) == (smoke_run / path).read_bytes(), path
    assert {entries[name][0][1]["mime_type"] for name in FIGURES} == {"image/png"}
    config = yaml.safe_load((results(smoke_run) / "config.yaml").read_text())
    description = report_data(page, "workflow-desc")
    for value in (config["canvas"]["mode"], config["canvas"]["time_index"], config["source"],
                  config["stats"]["gabor"], str(config["seeds"]), str(config["working_size"]),
                  f"results/{config['run']}/config.yaml"):
        assert str(value) in description, value


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
    assert len(files) == 2 * 2 * 2 * 2  # videos x seeds x pairs (t = 1, 5) x layers (Fig 9's)
    assert {f.stem for f in files} == {"head", "b3"}
    for path in files[::3]:
        delta, meta = read_pair_stats(path)
        assert (meta["frame"] - 1, meta["layer"]) == (meta["frame_prev"], path.stem)
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


def canvas_jobs(plan: dict[str, int], arch: str) -> int:
    """Jobs of the canvas rules of `arch` (one rule per dataset and frame list; one job per
    model, or per video and seed for the FFNs), the untrained models' excluded."""
    return sum(jobs for rule, jobs in plan.items()
               if rule.startswith(f"canvas_stats_{arch}_") and not rule.endswith("_untrained"))


def test_mistyped_pretrained_path_is_an_error_after_training(smoke_run, tmp_path):
    result = snakemake("-n", *overlay(tmp_path, "pretrained:\n  nerv: mine/{dataset}/{video}/"
                                      "s{seed}.pth\n"), "--directory", str(smoke_run))
    assert result.returncode != 0
    assert "Nothing to be done" not in result.stdout + result.stderr
    assert "config key pretrained.nerv: 4 of 4 checkpoints" in output(result)
    assert "mine/cityscapes_vps/0001/s1.pth" in output(result)
    assert "mine/vipseg/1_xincSynth01a/s1.pth" in output(result)


def test_pretrained_checkpoints_replace_the_trained_models(smoke_run, tmp_path):
    mine = tmp_path / "mine"
    for ckpt in sorted((results(smoke_run) / "models" / "nerv").rglob("ckpt.pt")):
        ds, vid, seed = ckpt.parts[-4:-1]
        dst = mine / ds / vid / f"{seed}.pt"
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ckpt, dst)
    text = f"pretrained:\n  nerv: {mine}/{{dataset}}/{{video}}/s{{seed}}.pt\n"
    result = snakemake("-n", *overlay(tmp_path, text), "--directory", str(smoke_run))
    assert result.returncode == 0, result.stderr
    plan = planned_rules(result)
    assert plan["import_nerv"] == 4 and canvas_jobs(plan, "nerv") == 4  # 2 videos x 2 seeds
    assert "train_nerv" not in plan and "train_ffn_vipseg" not in plan


def test_missing_dataset_root_is_an_error_after_a_run(smoke_run, tmp_path):
    text = "source: real\ndatasets:\n  vipseg: {root: no/such/folder}\n"
    result = snakemake("-n", *overlay(tmp_path, text), "--directory", str(smoke_run))
    assert result.returncode != 0
    assert "config key datasets.vipseg.root: no/such/folder is not a folder" in output(result)
    assert "filesystem latency" not in result.stdout + result.stderr


def test_runs_keep_their_own_results_and_share_data(smoke_run, tmp_path):
    before = {p: p.stat().st_mtime_ns for p in results(smoke_run).rglob("*") if p.is_file()}
    result = snakemake("-n", *overlay(tmp_path, "run: other\ntrain:\n  nerv:\n    epochs: 2\n"),
                       "--directory", str(smoke_run))
    assert result.returncode == 0, result.stderr
    plan = planned_rules(result)
    assert plan["train_nerv"] == 4 and plan["fig04"] == 1 and plan["run_config"] == 1
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
    assert recorded == recorded_config(load_config(str(ROOT / "presets" / "smoke.yaml"), ROOT))
    assert "chunk" not in recorded["canvas"] and "device" not in recorded  # speed knobs
    changed = snakemake("-n", *overlay(tmp_path, "train:\n  nerv:\n    epochs: 5\n"),
                        "--directory", str(smoke_run))
    assert "results/smoke/config.yaml records another configuration " \
        "(train.nerv.epochs: 4 → 5)" in changed.stderr
    assert "Set `run:` to a new name to keep both" in changed.stderr


def test_failed_job_shows_its_error_on_the_console(smoke_run, tmp_path):
    work = tmp_path / "copy"
    shutil.copytree(smoke_run, work, symlinks=True)
    stats = results(work) / "stats" / "ffn" / "vipseg" / "1_xincSynth01a" / "s1" / "f4" / "l2.npz"
    stats.write_bytes(stats.read_bytes()[:200])  # a damaged statistics file
    result = snakemake("--cores", "1", "--configfile", str(ROOT / "presets" / "smoke.yaml"),
                       "--directory", str(work), "fig06", "--forcerun", "fig06")
    assert result.returncode != 0
    assert "[fig06] error:" in result.stderr
    assert "l2.npz: truncated or unreadable" in result.stderr
    assert "rerun it with `snakemake --forcerun canvas_stats_ffn_vipseg`" in result.stderr
    assert not (results(work) / "figures" / "fig06.png").exists()


def test_a_figure_key_reruns_only_that_figure(smoke_run, tmp_path):
    result = snakemake("-n", *overlay(tmp_path, "figures:\n  fig03: {neurons: 2}\n"),
                       "--directory", str(smoke_run))
    assert result.returncode == 0, result.stderr
    assert planned_rules(result) == {"fig03": 1, "run_config": 1, "all": 1}
    switch = snakemake("-n", *overlay(tmp_path, "stats:\n  gridcells: lattice\n", "g.yaml"),
                       "--directory", str(smoke_run))
    assert set(planned_rules(switch)) == {"fig04", "fig16", "findings", "run_config", "all"}


def test_speed_knobs_rerun_nothing(smoke_run, tmp_path):
    text = "canvas:\n  chunk: 7\ndevice: cpu\n"
    result = snakemake("-n", *overlay(tmp_path, text), "--set-threads",
                       "canvas_stats_nerv_vipseg=1", "--directory", str(smoke_run))
    assert result.returncode == 0, result.stderr
    assert "Nothing to be done" in output(result)
    assert "records another configuration" not in result.stderr


@pytest.mark.parametrize("name", ["fig16", "fig12"])
def test_forcing_one_figure_is_one_job(smoke_run, name):
    """Fig 12 too: its members and their maps are their own rule's output."""
    result = snakemake("-n", "--configfile", str(ROOT / "presets" / "smoke.yaml"),
                       "--directory", str(smoke_run), "-f", f"results/smoke/figures/{name}.png")
    assert planned_rules(result) == {name: 1}


def test_figures_and_tables_are_local_rules():
    """Seconds of plotting (or of writing the explorer page) are never submitted to a cluster."""
    local = {"table_s1", "findings", "instance_table", "run_config", "cluster_table", "explorer"}
    rules = ROOT / "workflow" / "rules"
    for path in rules.glob("*.smk"):
        for block in path.read_text().split("\nrule ")[1:]:
            name = block.split(":")[0]
            assert ("localrule: True" in block) == (name in local), name
    figures = (rules / "figures.smk").read_text().split("for _name in SELECTIONS:")[1]
    assert "localrule: True" in figures


def test_same_config_twice_gives_identical_tables(smoke_run, tmp_path):
    work = tmp_path / "again"
    shutil.copytree(smoke_run, work, symlinks=True)
    # one figure of each kind of inputs (frames, summary, objects over time, motion) and the
    # tables: each recomputed from the same statistics must give the same bytes
    rules = ["fig01", "fig04", "fig08", "fig09", "findings", "instance_table"]
    written = [*(results(work) / "figures").glob("*.csv"),
               *(results(work) / "tables").rglob("*.csv")]
    before = {p: p.read_bytes() for p in written}
    result = snakemake("--cores", "2", "--configfile", str(ROOT / "presets" / "smoke.yaml"),
                       "--directory", str(work), "--forcerun", *rules)
    assert result.returncode == 0, result.stderr
    assert all(f"localrule {rule}:" in output(result) for rule in rules)
    for path, content in before.items():
        assert path.read_bytes() == content, path


CLUSTER_FILES = [f"clusters/cityscapes_vps/0001/f4/{arch}/{layer}/seeds_1-2.npz"
                 for arch, layer in (("ffn", "l1"), ("ffn", "l2"), ("ffn", "l3"),
                                     ("nerv", "head"), ("nerv", "b3"), ("nerv", "b2"),
                                     ("nerv", "b1"))]


def test_smoke_clusters_cover_every_alive_neuron_of_both_seeds(smoke_run):
    run = results(smoke_run)
    table = pd.read_csv(run / "tables" / "clusters.csv", dtype={"video": str})
    assert len(table.drop_duplicates(["video", "arch", "layer"])) == len(CLUSTER_FILES)
    for name in CLUSTER_FILES:
        c = read_clusters(run / name)
        meta = c["meta"]
        assert meta["seeds"] == [1, 2] and meta["feature"] == "gabor" and meta["null_model"]
        alive = {seed: read_frame_stats(smoke_run / meta["sources"][i])["alive"]
                 for i, seed in enumerate((1, 2))}
        for seed, mask in alive.items():
            assert np.array_equal(c["neuron"][c["seed"] == seed], np.flatnonzero(mask)), name
        sizes = np.bincount(c["labels"])
        assert (np.diff(sizes) <= 0).all() and len(sizes) == meta["k_used"]  # 0 = largest
        assert len(c["stability_labels"]) == 2 and np.isfinite(c["trust"]["null_mixing"])
        rows = table[(table["arch"] == meta["arch"]) & (table["layer"] == meta["layer"])
                     & (table["video"] == meta["video"])]
        assert rows["size"].tolist() == sizes.tolist()
        assert np.allclose(rows["layer_mixing"], c["trust"]["mixing"])


def test_smoke_members_are_the_neurons_maps(smoke_run):
    """Figs 12/13 members: drawn from their clusters, maps equal the full canvas's rows."""
    run = results(smoke_run)
    shown = pd.read_csv(run / "figures" / "fig12.csv")
    for arch, layer in (("ffn", "l2"), ("nerv", "b2"), ("nerv", "head")):
        base = run / "clusters" / "cityscapes_vps" / "0001" / "f4" / arch / layer
        members = read_members(base / "seeds_1-2_members.npz")
        clusters = read_clusters(base / "seeds_1-2.npz")
        for cluster, seed, neuron in zip(members["cluster"], members["seed"],
                                         members["neuron"], strict=True):
            point = (clusters["seed"] == seed) & (clusters["neuron"] == neuron)
            assert clusters["labels"][point].tolist() == [cluster]
        assert set(members["cluster"]) == set(range(4))
        for seed in (1, 2):
            rows = members["seed"] == seed
            frame = "" if arch == "nerv" else "f4/"
            model = load_checkpoint(run / "models" / arch / "cityscapes_vps" / "0001" /
                                    f"{frame}s{seed}" / "ckpt.pt")
            if arch == "nerv":
                full = nerv_canvas(model, 4 / model.meta["frames"], [layer])[layer]
            else:
                full = ffn_canvas(model, 32, 64, layers=[layer])[layer]
            np.testing.assert_array_equal(members["maps"][rows],
                                          full[members["neuron"][rows]].numpy())
        drawn = shown[(shown["arch"] == arch) & (shown["layer"] == layer)]
        assert sorted(zip(drawn["seed"], drawn["neuron"], strict=True)) == sorted(
            zip(members["seed"].tolist(), members["neuron"].tolist(), strict=True))


def test_same_config_twice_gives_identical_clusters(smoke_run, tmp_path):
    """UMAP and k-means are seeded and single-threaded: recomputed, the same arrays and CSVs."""
    work = tmp_path / "again"
    shutil.copytree(smoke_run, work, symlinks=True)
    names = [CLUSTER_FILES[0], CLUSTER_FILES[-1]]  # FFN L1; NeRV B1 with stability and null
    before = {n: read_clusters(results(work) / n) for n in names}
    csvs = {n: (results(work) / n).with_suffix(".csv").read_bytes() for n in names}
    result = snakemake("--cores", "2", "--configfile", str(ROOT / "presets" / "smoke.yaml"),
                       "--directory", str(work), "-f",
                       *(f"results/smoke/{n}" for n in names))
    assert result.returncode == 0, result.stderr
    assert output(result).count("rule cluster_layer:") == 2
    for name in names:
        again = read_clusters(results(work) / name)
        assert again["meta"] == before[name]["meta"] and again["trust"] == before[name]["trust"]
        for key, array in before[name].items():
            if isinstance(array, np.ndarray):
                assert np.array_equal(again[key], array), (name, key)
        assert (results(work) / name).with_suffix(".csv").read_bytes() == csvs[name]


def test_joint_embedding_pools_both_architectures(smoke_run, tmp_path):
    """clusters.joint_archs: one more cluster job of every traced layer of FFN and NeRV, mixing
    measured over the architecture; Figs 10 and 14 gain its column."""
    work = tmp_path / "joint"
    shutil.copytree(smoke_run, work, symlinks=True)
    joint = overlay(tmp_path, "clusters:\n  joint_archs: true\n")
    plan = snakemake("-n", *joint, "--directory", str(work))
    assert plan.returncode == 0, plan.stderr
    assert {"cluster_layer", "fig10", "fig14", "cluster_table", "findings"} <= \
        set(planned_rules(plan))
    target = "results/smoke/clusters/cityscapes_vps/0001/f4/joint/all/seeds_1-2.npz"
    result = snakemake("--cores", "2", *joint, "--directory", str(work), target)
    assert result.returncode == 0, result.stderr
    c = read_clusters(work / target)
    assert c["meta"]["mix"] == "arch" and c["meta"]["n_neighbors"] == 15
    parts = {(a, la) for a, la in zip(c["arch"].tolist(), c["layer"].tolist(), strict=True)}
    assert parts == {(a, la) for a, la in (("ffn", "l1"), ("ffn", "l2"), ("ffn", "l3"),
                                           ("nerv", "head"), ("nerv", "b3"), ("nerv", "b2"),
                                           ("nerv", "b1"))}
    per_layer = sum(len(read_clusters(results(smoke_run) / name)["xy"])
                    for name in CLUSTER_FILES)
    assert len(c["xy"]) == per_layer  # the same alive neurons as the per-layer files


def test_annotated_frames_plan_six_nerv_frames_per_video(smoke_run, tmp_path):
    result = snakemake("-n", *overlay(tmp_path, "canvas:\n  frames: annotated\n"),
                       "--directory", str(smoke_run))
    assert result.returncode == 0, result.stderr
    plan = planned_rules(result)
    # new frames: Cityscapes-VPS 19, 24, 29 and VIPSeg 0, 6, 12, 18, 24, 30: every NeRV's
    # canvas job reruns (one job per model); the key frame moves for VIPSeg (0), so its FFNs
    # retrain
    assert canvas_jobs(plan, "nerv") == 2 * 2
    assert plan["train_ffn_vipseg"] == 1 and "train_ffn_cityscapes_vps" not in plan


def test_paper_preset_plans_every_job(tmp_path):
    """The paper preset on (empty) folders shaped like the real datasets: every job planned."""
    cs, vip = tmp_path / "cs", tmp_path / "vip"
    cs.mkdir()
    paper = load_config(str(ROOT / "presets" / "paper.yaml"), ROOT)
    for vid in paper["datasets"]["vipseg"]["videos"]:
        for sub, ext in (("images", "jpg"), ("panomasks", "png")):
            folder = vip / sub / vid
            folder.mkdir(parents=True)
            for i in range(36):
                (folder / f"{5 * i:08d}.{ext}").touch()
    roots = tmp_path / "roots.yaml"
    roots.write_text(f"datasets: {{cityscapes_vps: {{root: {cs}}}, vipseg: {{root: {vip}}}}}\n")
    result = snakemake("-n", "--configfile", str(ROOT / "presets" / "paper.yaml"), str(roots),
                       "--directory", str(tmp_path))
    assert result.returncode == 0, output(result)
    plan = planned_rules(result)
    assert plan["train_nerv"] == 9 * 5 and canvas_jobs(plan, "ffn") == 9 * 5
    assert canvas_jobs(plan, "nerv") == 9 * 5 and plan["pair_stats"] == 9 * 5 * 2
    assert all(plan[name] == 1 for name in FIGURES)
    # clusters: Fig 10 (1 video) and Fig 14 (5) over 5 seeds, Figs 12 and 13 (1 video each)
    # on seed 1, every layer; untrained models of every seed of the six five-seed videos
    assert plan["cluster_layer"] == (1 + 5) * 7 + 2 * 7
    assert plan["canvas_stats_nerv_untrained"] == plan["canvas_stats_ffn_untrained"] == 6 * 5
    assert plan["cluster_members_nerv"] == plan["cluster_members_ffn"] == 2
    # + the explorer: one data job per model (9 videos x 5 seeds x 2 archs) and the page
    assert sum(plan.values()) == 585 - 9 * 5 * 5 + 56 + 60 + 4 + 1 + 4 + 9 * 5 * 2 + 1


# ---------------------------------------------------------------- the canvas explorer (issue 15)
# The smoke run's explorer (presets/smoke.yaml: every analysed frame) opened from file:// in
# headless Chromium: the ranked neurons and the map it shows against the checkpoint's canvas.

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
EXPLORER_ARTIFACT = ROOT / "tests" / "artifacts" / "explorer.png"


@pytest.fixture(scope="module")
def chromium():
    """Headless Chromium under Playwright, or a skip that says what is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = "playwright is not installed (pip install -c constraints.txt -e '.[dev]')"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    if not CHROMIUM.is_file():
        reason = f"{CHROMIUM} is missing (`make browser-deps` installs Debian's chromium)"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                             args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def pixel_top(maps: np.ndarray, x: int, y: int, k: int) -> tuple[list[int], list[float]]:
    """The top-k neurons of pixel (x, y) by |C| (ties: lower id; zero |C| not listed) and
    their shares of Σ|C|, straight from the full canvas."""
    size = np.abs(maps[:, y, x].astype(np.float64))
    order = sorted(range(len(size)), key=lambda n: (-size[n], n))[:k]
    order = [n for n in order if size[n] > 0]
    return order, [size[n] / size.sum() for n in order]


def settle(page) -> None:
    page.wait_for_function("document.body.dataset.busy === '0'", timeout=10_000)


def test_smoke_explorer_in_a_browser(smoke_run, chromium, tmp_path):
    """Click a pixel: the ranked neurons are the canvas's top-k; click a neuron: the map shown
    is its map within 8-bit quantisation; an overlay shows; the URL hash restores the view; no
    console error and no request outside file://."""
    import re

    root = results(smoke_run) / "explorer"
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    errors, requests = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto((root / "index.html").as_uri())
    settle(page)
    page.select_option("#model", "nerv:2")
    settle(page)
    page.select_option("#frame", "9")
    settle(page)
    x, y = 20, 12  # a pixel of explorer.grid (presets/smoke.yaml): its top neurons have maps
    box = page.locator("#frame-img").bounding_box()
    zoom = box["width"] / 64
    page.mouse.click(box["x"] + (x + 0.5) * zoom, box["y"] + (y + 0.5) * zoom)
    settle(page)

    model = load_checkpoint(results(smoke_run) / "models" / "nerv" / "cityscapes_vps" / "0001" /
                            "s2" / "ckpt.pt")
    full = {k: v.numpy() for k, v in nerv_canvas(model, 9 / model.meta["frames"]).items()}
    for layer in ("head", "b3", "b2", "b1"):
        rows = page.locator(f"#pixel table[data-layer='{layer}'] tr.neuron")
        shown = [int(n) for n in rows.evaluate_all("rs => rs.map(r => r.dataset.neuron)")]
        shares = [float(s) for s in rows.evaluate_all("rs => rs.map(r => r.dataset.share)")]
        want, want_shares = pixel_top(full[layer], x, y, 8)
        assert shown == want, layer
        np.testing.assert_allclose(shares, want_shares, atol=0.5e-4 + 1e-9)

    page.locator("#pixel table[data-layer='b2'] tr.neuron[data-has-map='1']").first.click()
    settle(page)
    tile = page.locator("#map").evaluate("d => ({...d.dataset, pos: getComputedStyle(d)"
                                         ".backgroundPosition, img: getComputedStyle(d)"
                                         ".backgroundImage})")
    neuron = int(page.locator("#pixel tr.neuron.selected").get_attribute("data-neuron"))
    assert tile["atlas"] == "data/nerv/cityscapes_vps/0001/s2/f9/b2_maps.png"
    assert tile["img"].endswith('/f9/b2_maps.png")')
    col, row, scale = int(tile["col"]), int(tile["row"]), float(tile["scale"])
    offset = [float(v) for v in re.findall(r"-?[\d.]+", tile["pos"])]
    assert offset == [-col * 64 * int(tile["zoom"]), -row * 32 * int(tile["zoom"])]
    with Image.open(root / tile["atlas"]) as image:
        index = np.asarray(image)[row * 32:(row + 1) * 32, col * 64:(col + 1) * 64]
    decoded = (index.astype(np.float64) - 127.5) / 127.5 * scale
    assert np.abs(decoded - full["b2"][neuron]).max() <= scale / 127.5 + 1e-7

    page.locator("#overlay-instances").check()
    settle(page)
    overlay = page.locator("img.overlay[data-overlay='instances']")
    assert overlay.is_visible() and overlay.evaluate("i => i.naturalWidth") == 64

    view = page.url
    assert "f=9" in view and f"n=b2:{neuron}" in view and "o=instances" in view
    again = chromium.new_page(viewport={"width": 1400, "height": 1000})
    again.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    again.on("request", lambda r: requests.append(r.url))
    again.goto(view)
    settle(again)
    assert again.url == view and again.locator("#frame").input_value() == "9"
    assert again.locator("#overlay-instances").is_checked()
    assert again.locator("#map").get_attribute("data-tile") == tile["tile"]
    assert [int(n) for n in again.locator("#pixel table[data-layer='b2'] tr.neuron")
            .evaluate_all("rs => rs.map(r => r.dataset.neuron)")] == pixel_top(
                full["b2"], x, y, 8)[0]

    # a point of the cluster scatter (NeRV B2 at the key frame, seeds 1 and 2) selects its
    # neuron, and its seed's model
    again.select_option("#layer", "b2")
    settle(again)
    _, scatter = read_js(root / "clusters" / "cityscapes_vps" / "0001" / "f4" / "nerv" /
                         "b2" / "seeds_1-2.js")
    xs = 8 + 304 * unpack(scatter["x"]).astype(float) / 65535  # as explorer.js draws
    ys = 8 + 304 * (1 - unpack(scatter["y"]).astype(float) / 65535)
    gap = np.hypot(xs[:, None] - xs[None], ys[:, None] - ys[None]) + np.eye(len(xs)) * 1e9
    own = np.flatnonzero(unpack(scatter["seed"]) == scatter["seeds"].index(1))
    point = int(own[np.argmax(gap[own].min(1))])  # seed 1's most isolated point
    px, py = xs[point], ys[point]
    again.locator("#scatter").scroll_into_view_if_needed()
    canvas = again.locator("#scatter").bounding_box()
    again.mouse.click(canvas["x"] + px * canvas["width"] / 320,
                      canvas["y"] + py * canvas["height"] / 320)
    settle(again)
    picked = int(unpack(scatter["neuron"])[point])
    assert again.locator("#model").input_value() == "nerv:1"
    assert f"n=b2:{picked}" in again.url
    assert "cluster" in again.locator("#neuron-about").inner_text()

    again.screenshot(path=str(tmp_path / "explorer.png"), full_page=True)
    EXPLORER_ARTIFACT.parent.mkdir(exist_ok=True)
    shutil.copyfile(tmp_path / "explorer.png", EXPLORER_ARTIFACT)
    assert errors == []
    assert requests and all(url.startswith("file://") for url in requests), requests
