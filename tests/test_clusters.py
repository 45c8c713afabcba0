"""Neuron clusters (xinc.cluster): known answers on synthetic blobs, trust measures by hand,
determinism, file round trips, member draws, per-neuron maps (`iter_canvas(ids=…)`) and the
untrained null model (`initial_model` / `untrained_copy`)."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pandas as pd
import pytest
import torch

from xinc.canvas import ffn_canvas, iter_canvas, layer_names, n_neurons, nerv_canvas
from xinc.cluster.embed import kmeans_labels, relabel_by_size
from xinc.cluster.jobs import cluster_table
from xinc.cluster.layer import (
    POINT_COLUMNS,
    TRUST_COLUMNS,
    ClusterSettings,
    cluster_points,
    read_clusters,
    trust_rows,
    write_clusters,
)
from xinc.cluster.members import draw_members, neuron_maps
from xinc.cluster.points import Points, read_points
from xinc.cluster.trust import layer_mixing, mixing_entropy
from xinc.io import save_npz
from xinc.models import build_model, initial_model, untrained_copy

SEEDS = (0, 1, 2)
BLOB_PER_SEED = (40, 30, 20)  # points per seed in blob 0, 1, 2: blob 0 largest, then 1, 2
FAST = ClusterSettings(n_neighbors=10, k=3, epochs=50, stability=2)


def blob_points(*, mixed: bool = True, dim: int = 32, seed: int = 0,
                arch: tuple[str, ...] = ("nerv",)) -> tuple[Points, np.ndarray]:
    """Three well-separated gaussian blobs (centres ~80 apart, unit noise) and the blob of each
    point. mixed: every seed has BLOB_PER_SEED[b] points in blob b; else seed b makes up blob b
    alone (with the same blob sizes). Points come seed by seed (as read_points orders them),
    blobs interleaved within a seed; `arch[i % len(arch)]` labels seed i."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=10.0, size=(3, dim))
    if mixed:
        per_seed = [np.repeat([0, 1, 2], BLOB_PER_SEED) for _ in SEEDS]
    else:
        per_seed = [np.full(BLOB_PER_SEED[s], s) for s in SEEDS]
    per_seed = [rng.permutation(b) for b in per_seed]
    blob = np.concatenate(per_seed)
    seeds = np.concatenate([np.full(len(b), s, np.int64) for s, b in zip(SEEDS, per_seed,
                                                                          strict=True)])
    neuron = np.concatenate([np.arange(len(b), dtype=np.int64) for b in per_seed])
    features = (centres[blob] + rng.normal(size=(len(blob), dim))).astype(np.float32)
    archs = np.array([arch[s % len(arch)] for s in seeds], "U8")
    return Points(features, seeds, neuron, archs, np.full(len(blob), "b2", "U8")), blob


@pytest.fixture(autouse=True)
def torch_one_thread():
    """One torch thread per test: the maps are tiny, and two contended threads on a shared
    2-core machine are several times slower. Set before every test, since a UMAP run (numba's
    OpenMP layer) raises torch's thread count to NUMBA_NUM_THREADS in this process."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def mixed_blobs():
    points, blob = blob_points()
    return points, blob, cluster_points(points, FAST)


# --------------------------------------------------------------------------- known answers


def test_blobs_give_blob_clusters_and_full_trust(mixed_blobs):
    """Three separated blobs with every seed in each: k=3 clusters are exactly the blobs,
    numbered by size (blob 0 is the largest), in the main run, on the raw vectors and in
    every stability run; every trust measure says so."""
    points, blob, r = mixed_blobs
    assert np.array_equal(r["labels"], blob)  # same partition and relabel_by_size numbering
    assert np.array_equal(r["raw_labels"], blob)
    assert r["stability_labels"].shape == (2, len(points))
    assert all(np.array_equal(run, blob) for run in r["stability_labels"])
    assert r["stability_states"].tolist() == [43, 44]  # umap_seed + 1, …
    assert r["xy"].shape == (len(points), 2) and r["xy"].dtype == np.float32
    trust = json.loads(str(r["trust_json"]))
    assert trust["mixing"] > 0.98
    assert trust["ari_umap_raw"] > 0.99
    assert trust["stability_ari_mean"] > 0.99 and trust["stability_ari_min"] > 0.99
    assert trust["silhouette_umap"] > 0.5 and trust["silhouette_raw"] > 0.5
    assert math.isnan(trust["null_mixing"])
    meta = json.loads(str(r["meta_json"]))
    assert meta["points"] == len(points) == 270 and meta["mix"] == "seed"
    assert meta["k_used"] == 3 and meta["n_neighbors_used"] == 10
    assert meta["null_model"] is False


def test_single_seed_blobs_do_not_mix():
    """Each blob made up by one seed: the clusters are still the blobs, mixing ≈ 0."""
    points, blob = blob_points(mixed=False)
    r = cluster_points(points, ClusterSettings(n_neighbors=10, k=3, epochs=50, stability=0))
    assert np.array_equal(r["labels"], blob)
    trust = json.loads(str(r["trust_json"]))
    assert trust["mixing"] < 0.02
    assert r["stability_labels"].shape == (0, len(points))
    assert math.isnan(trust["stability_ari_mean"]) and math.isnan(trust["stability_ari_min"])


@pytest.mark.filterwarnings("ignore:Graph is not fully connected")
def test_null_model_and_arch_mixing():
    """The null model's points are embedded alone and their mixing stored; mix="arch"
    measures the mixing over architectures, not seeds."""
    points, _ = blob_points()
    null, null_blob = blob_points(mixed=False, seed=1)  # per-seed blobs: null mixing ≈ 0
    r = cluster_points(points, ClusterSettings(n_neighbors=10, k=3, epochs=50, stability=0),
                       null=null, meta={"layer": "b2"})
    assert r["null_xy"].shape == (len(null), 2)
    assert np.array_equal(r["null_labels"], null_blob)
    assert np.array_equal(r["null_seed"], null.seed)
    assert np.array_equal(r["null_neuron"], null.neuron)
    trust = json.loads(str(r["trust_json"]))
    assert np.isfinite(trust["null_mixing"]) and trust["null_mixing"] < 0.02
    assert trust["mixing"] > 0.98
    meta = json.loads(str(r["meta_json"]))
    assert meta["null_model"] is True and meta["layer"] == "b2"

    # seeds 0, 2 are one arch and seed 1 another; seed 1's points are moved onto their own
    # blobs: each cluster then holds one arch (arch mixing 0); seeds 0 and 2 still share theirs
    two, blob = blob_points(arch=("nerv", "ffn"))
    feats = two.features.copy()
    feats[two.seed == 1] += 200.0
    two = Points(feats, two.seed, two.neuron, two.arch, two.layer)
    groups = blob + 3 * (two.seed == 1)
    s = ClusterSettings(n_neighbors=10, k=6, epochs=50, stability=0)
    by_arch = cluster_points(two, s, mix="arch")
    assert json.loads(str(by_arch["meta_json"]))["mix"] == "arch"
    assert pd.crosstab(by_arch["labels"], groups).gt(0).sum(axis=1).eq(1).all()  # clusters = groups
    assert json.loads(str(by_arch["trust_json"]))["mixing"] < 0.02
    # seeds 0 and 2 share their clusters equally (H = log 2 / log 3), seed 1's are its own
    by_seed = layer_mixing(by_arch["labels"], two.seed)
    assert by_seed == pytest.approx(2 / 3 * math.log(2) / math.log(3))


def test_small_layers_cap_neighbours_and_k(caplog):
    """Fewer points than n_neighbors + 1 / k: both are capped, the file records the used ones."""
    rng = np.random.default_rng(3)
    n = 5
    pts = Points(rng.normal(size=(n, 4)).astype(np.float32), np.arange(n) % 2,
                 np.arange(n), np.full(n, "ffn", "U8"), np.full(n, "l1", "U8"))
    r = cluster_points(pts, ClusterSettings(n_neighbors=10, k=6, epochs=50, stability=0))
    meta = json.loads(str(r["meta_json"]))
    assert (meta["n_neighbors_used"], meta["k_used"]) == (4, 5)
    assert sorted(r["labels"].tolist()) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="too few"):
        cluster_points(Points(pts.features[:2], pts.seed[:2], pts.neuron[:2], pts.arch[:2],
                              pts.layer[:2]), FAST)


def test_three_points_are_a_clear_error():
    """UMAP's spectral initialisation fails on 3 points: refused before, with the reason."""
    rng = np.random.default_rng(0)
    pts = Points(rng.normal(size=(3, 4)).astype(np.float32), np.array([0, 1, 0]),
                 np.arange(3), np.full(3, "ffn"), np.full(3, "l1"))
    with pytest.raises(ValueError, match="3 alive neurons: too few.*at least 4"):
        cluster_points(pts, ClusterSettings(n_neighbors=10, k=6, epochs=50, stability=0))


# --------------------------------------------------------------------------- pieces by hand


def test_relabel_by_size_hand_examples():
    """Numbered by decreasing count; equal counts by first occurrence; any label values."""
    assert relabel_by_size(np.array([5, 7, 7, 7, 5, 9])).tolist() == [1, 0, 0, 0, 1, 2]
    assert relabel_by_size(np.array([2, 2, 0, 1, 1, 0, 3])).tolist() == [0, 0, 1, 2, 2, 1, 3]
    assert relabel_by_size(np.array([-1, 4, 4])).tolist() == [1, 0, 0]
    out = relabel_by_size(np.array([3, 3, 3]))
    assert out.tolist() == [0, 0, 0] and out.dtype == np.int64


def test_kmeans_labels_largest_first():
    """k-means on 1-d groups of sizes 2, 5, 3 → labels 2, 0, 1 whatever k-means numbers."""
    x = np.array([0.0, 0.1, 10, 10.1, 10.2, 10.3, 10.4, 20, 20.1, 20.2])[:, None]
    assert kmeans_labels(x, 3, seed=0, n_init=4).tolist() == [2] * 2 + [0] * 5 + [1] * 3


def test_mixing_entropy_hand_value():
    """Seed 0 has 4 points (3 in cluster 0, 1 in cluster 1), seed 1 has 2 (1 and 1).
    Cluster 0: w = (3/4, 1/2) → p = (0.6, 0.4); cluster 1: w = (1/4, 1/2) → p = (1/3, 2/3);
    H = −Σ p log p / log 2; the layer's value is the size-weighted mean (4 and 2 points)."""
    labels = np.array([0, 0, 0, 1, 0, 1])
    seeds = np.array([0, 0, 0, 0, 1, 1])
    h, present = mixing_entropy(labels, seeds)

    def entropy(*p):
        return -sum(q * math.log(q) for q in p) / math.log(2)

    expect = [entropy(0.6, 0.4), entropy(1 / 3, 2 / 3)]
    np.testing.assert_allclose(h, expect, rtol=1e-12)
    np.testing.assert_allclose(h, [0.9709505944546686, 0.9182958340544896], rtol=1e-12)
    assert present.tolist() == [2, 2]
    assert layer_mixing(labels, seeds) == pytest.approx((4 * expect[0] + 2 * expect[1]) / 6)
    # a cluster of one seed: H = 0, one group present; string groups work too
    h, present = mixing_entropy(np.array([0, 0, 1, 1]), np.array(["a", "a", "a", "b"]))
    assert h[0] == 0.0 and present.tolist() == [1, 2]
    # equal shares in every cluster (seed 0: 1 + 1 points, seed 1: 2 + 2): H = 1
    h, _ = mixing_entropy(np.array([0, 1, 0, 0, 1, 1]), np.array([0, 0, 1, 1, 1, 1]))
    np.testing.assert_allclose(h, [1.0, 1.0])


def test_mixing_entropy_one_group_is_nan():
    h, present = mixing_entropy(np.array([0, 1, 1]), np.array([7, 7, 7]))
    assert np.isnan(h).all() and len(h) == 2 and present.tolist() == [1, 1]
    assert math.isnan(layer_mixing(np.array([0, 1, 1]), np.array([7, 7, 7])))


# --------------------------------------------------------------------------- determinism


def test_cluster_points_deterministic_and_files_byte_identical(mixed_blobs, tmp_path,
                                                               monkeypatch):
    """Same points → identical arrays; the npz and csv files are byte-identical (also when
    written at another wall-clock time)."""
    points, _, first = mixed_blobs
    again = cluster_points(points, FAST)
    assert first.keys() == again.keys()
    for key in ("xy", "labels", "stability_labels", "raw_labels"):
        assert np.array_equal(first[key], again[key]), key
    assert str(first["trust_json"]) == str(again["trust_json"])
    write_clusters(tmp_path / "a.npz", tmp_path / "a.csv", first)
    later = time.time() + 3600
    monkeypatch.setattr(time, "time", lambda: later)
    write_clusters(tmp_path / "b.npz", tmp_path / "b.csv", again)
    monkeypatch.undo()
    for ext in ("npz", "csv"):
        assert (tmp_path / f"a.{ext}").read_bytes() == (tmp_path / f"b.{ext}").read_bytes()
    table = pd.read_csv(tmp_path / "a.csv")
    assert list(table.columns) == POINT_COLUMNS and len(table) == len(points)
    assert table["cluster"].tolist() == first["labels"].tolist()
    assert table["neuron"].tolist() == points.neuron.tolist()


@pytest.mark.slow  # UMAP in worker processes
def test_parallel_umap_runs_match_serial(mixed_blobs):
    """jobs=2 (joblib processes) gives the same arrays as jobs=1."""
    points, _, serial = mixed_blobs
    parallel = cluster_points(points, FAST, jobs=2)
    for key in ("xy", "labels", "stability_labels", "raw_labels"):
        assert np.array_equal(serial[key], parallel[key]), key
    assert str(serial["trust_json"]) == str(parallel["trust_json"])


# --------------------------------------------------------------------------- statistics files


def fake_stats(path, *, alive, features=None, meta=None, kind="gabor"):
    """A minimal statistics file: alive, features_<kind>, meta_json."""
    arrays = {"alive": np.asarray(alive, bool),
              "meta_json": np.array(json.dumps(meta))}
    if features is not None:
        arrays[f"features_{kind}"] = np.asarray(features, np.float32)
    save_npz(path, **arrays)
    return path


def test_read_points_drops_dead_in_file_then_id_order(tmp_path):
    rng = np.random.default_rng(0)
    f1 = rng.normal(size=(5, 3)).astype(np.float32)
    f2 = rng.normal(size=(4, 3)).astype(np.float32)
    a = fake_stats(tmp_path / "a.npz", alive=[1, 0, 1, 1, 0], features=f1,
                   meta={"arch": "nerv", "layer": "b1", "seed": 7})
    b = fake_stats(tmp_path / "b.npz", alive=[1, 1, 0, 1], features=f2,
                   meta={"arch": "ffn", "layer": "l2", "seed": 3})
    points, dead = read_points([a, b], "gabor")
    assert points.neuron.tolist() == [0, 2, 3, 0, 1, 3]
    assert points.seed.tolist() == [7, 7, 7, 3, 3, 3]
    assert points.arch.tolist() == ["nerv"] * 3 + ["ffn"] * 3
    assert points.layer.tolist() == ["b1"] * 3 + ["l2"] * 3
    assert np.array_equal(points.features, np.concatenate([f1[[0, 2, 3]], f2[[0, 1, 3]]]))
    assert points.features.dtype == np.float32 and len(points) == 6
    assert dead == {"nerv/b1/s7": 2, "ffn/l2/s3": 1}
    # the other file first → its points first
    swapped, _ = read_points([b, a], "gabor")
    assert swapped.seed.tolist() == [3, 3, 3, 7, 7, 7]


def test_read_points_errors(tmp_path):
    meta = {"arch": "nerv", "layer": "b1", "seed": 0}
    rgb = fake_stats(tmp_path / "rgb.npz", alive=[1, 1], features=np.ones((2, 3)), meta=meta,
                     kind="rgb")
    with pytest.raises(ValueError, match=r"rgb\.npz.*features_gabor.*holds features rgb"):
        read_points([rgb], "gabor")
    with pytest.raises(ValueError, match="unknown feature kind 'shape'"):
        read_points([rgb], "shape")
    with pytest.raises(ValueError, match="no statistics files"):
        read_points([], "rgb")
    no_seed = fake_stats(tmp_path / "noseed.npz", alive=[1], features=np.ones((1, 3)),
                         meta={"arch": "nerv", "layer": "b1"})
    with pytest.raises(ValueError, match=r"noseed\.npz.*records no seed"):
        read_points([no_seed], "gabor")
    short = fake_stats(tmp_path / "short.npz", alive=[1, 1, 1], features=np.ones((2, 3)),
                       meta=meta)
    with pytest.raises(ValueError, match="2 feature vectors for 3 neurons"):
        read_points([short], "gabor")
    wide = fake_stats(tmp_path / "wide.npz", alive=[1], features=np.ones((1, 5)), meta=meta)
    narrow = fake_stats(tmp_path / "narrow.npz", alive=[1], features=np.ones((1, 3)),
                        meta=meta)
    with pytest.raises(ValueError, match="different lengths"):
        read_points([wide, narrow], "gabor")


# --------------------------------------------------------------------------- cluster table


def test_trust_rows_and_cluster_table(mixed_blobs, tmp_path):
    """One row per cluster, TRUST_COLUMNS in order, sizes summing to the points, the file's
    labels and layer-wide trust repeated on every row; cluster_table stacks files."""
    points, blob, r = mixed_blobs
    info = {"dataset": "synth", "video": "v", "frame": 4, "arch": "nerv", "layer": "b2",
            "seeds": [0, 1, 2], "feature": "gabor"}
    r = {**r, "meta_json": np.array(json.dumps({**json.loads(str(r["meta_json"])), **info}))}
    write_clusters(tmp_path / "c.npz", tmp_path / "c.csv", r)
    c = read_clusters(tmp_path / "c.npz")
    assert np.array_equal(c["labels"], blob) and c["meta"]["frame"] == 4
    rows = trust_rows(tmp_path / "c.npz")
    assert list(rows.columns) == TRUST_COLUMNS
    assert rows["cluster"].tolist() == [0, 1, 2]
    assert rows["size"].tolist() == [120, 90, 60] and rows["size"].sum() == len(points)
    assert (rows["seeds"] == "0 1 2").all() and (rows["seeds_present"] == 3).all()
    assert (rows["seed_set"] == "0 1 2").all() and (rows["mixing_of"] == "seed").all()
    np.testing.assert_allclose(rows["mixing"], 1.0)  # equal shares by construction
    assert (rows["layer_mixing"] == c["trust"]["mixing"]).all()
    assert (rows["points"] == len(points)).all() and (rows["frame"] == 4).all()

    single, _ = blob_points(mixed=False)
    write_clusters(tmp_path / "d.npz", tmp_path / "d.csv",
                   cluster_points(single, ClusterSettings(n_neighbors=10, k=3, epochs=50,
                                                          stability=0), meta=info))
    table = cluster_table([tmp_path / "c.npz", tmp_path / "d.npz"], tmp_path / "t.csv")
    assert list(table.columns) == TRUST_COLUMNS and len(table) == 6
    assert table["size"].sum() == len(points) + len(single)
    assert table["mixing"].iloc[3:].tolist() == [0.0, 0.0, 0.0]
    assert table["seeds_present"].iloc[3:].tolist() == [1, 1, 1]
    back = pd.read_csv(tmp_path / "t.csv")
    assert list(back.columns) == TRUST_COLUMNS and len(back) == 6
    empty = cluster_table([], tmp_path / "e.csv")
    assert list(empty.columns) == TRUST_COLUMNS and len(empty) == 0


# --------------------------------------------------------------------------- members


LABELS = np.array([0, 1, 0, 2, 0, 1, 0, 3, 0, 1, 2, 0])  # sizes 6, 3, 2, 1


def test_draw_members_without_replacement():
    cluster, slot, index = draw_members(LABELS, shown=3, per_cluster=4, seed=5)
    assert cluster.tolist() == [0] * 4 + [1] * 3 + [2] * 2  # cluster 3 not shown
    assert slot.tolist() == [0, 1, 2, 3, 0, 1, 2, 0, 1]
    assert np.array_equal(LABELS[index], cluster)
    for c in range(3):
        assert len(set(index[cluster == c].tolist())) == (cluster == c).sum()  # distinct
    assert sorted(index[cluster == 1].tolist()) == [1, 5, 9]  # all of a small cluster
    same = draw_members(LABELS, shown=3, per_cluster=4, seed=5)
    assert all(np.array_equal(a, b) for a, b in zip((cluster, slot, index), same, strict=True))
    other = [draw_members(LABELS, shown=3, per_cluster=4, seed=s)[2] for s in range(6, 10)]
    assert any(not np.array_equal(index, o) for o in other)
    # shown beyond the clusters present: only those that exist
    cluster, _, _ = draw_members(LABELS, shown=10, per_cluster=1, seed=0)
    assert cluster.tolist() == [0, 1, 2, 3]


def test_draw_members_reference_repeats():
    """`reference`: exactly per_cluster per cluster, with replacement (a 2-point cluster
    drawn 4 times must repeat)."""
    cluster, slot, index = draw_members(LABELS, shown=3, per_cluster=4, seed=1,
                                        draw="reference")
    assert cluster.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert slot.tolist() == [0, 1, 2, 3] * 3
    assert np.array_equal(LABELS[index], cluster)
    assert len(set(index[cluster == 2].tolist())) <= 2
    again = draw_members(LABELS, shown=3, per_cluster=4, seed=1, draw="reference")
    assert np.array_equal(index, again[2])
    with pytest.raises(ValueError, match="unknown draw 'random'"):
        draw_members(LABELS, shown=3, per_cluster=4, seed=1, draw="random")


# --------------------------------------------------------------------------- maps of few neurons


def small_nerv():
    torch.manual_seed(0)
    return build_model("nerv", {"fc_dim": 5, "fc_hw": [2, 3], "out": "0.0"}).eval()


def small_ffn():
    torch.manual_seed(0)
    return build_model("ffn", {"width": 16}).eval()


IDS = [5, 3, 5, 0]


@pytest.mark.parametrize("mode", ["reference", "exact"])
def test_neuron_maps_equal_canvas_rows_nerv(mode):
    model = small_nerv()
    dense = nerv_canvas(model, 0.25, mode=mode)
    for layer in layer_names(model):
        got = neuron_maps(model, layer, IDS, t=0.25, mode=mode)
        assert got.dtype == np.float32
        assert np.array_equal(got, dense[layer][IDS].numpy()), layer
        # iter_canvas itself: the ids in the order given, in chunks, repeats kept
        n = n_neurons(model, layer)
        ids = [n - 1, 7, 2, 7, 0, 11]
        parts = list(iter_canvas(model, layer, t=0.25, mode=mode, chunk=4, ids=ids))
        assert [len(p[0]) for p in parts] == [4, 2]
        assert torch.cat([p[0] for p in parts]).tolist() == ids
        assert torch.equal(torch.cat([p[1] for p in parts]), dense[layer][ids]), layer
        with pytest.raises(ValueError, match="outside"):
            neuron_maps(model, layer, [0, n], t=0.25, mode=mode)
        with pytest.raises(ValueError, match="outside"):
            list(iter_canvas(model, layer, t=0.25, mode=mode, ids=[-1]))


def test_neuron_maps_nerv_separate_bias_and_channels():
    """The switches reach the selected maps too (bias pseudo-neurons, channel neurons)."""
    model = small_nerv()
    for bias, neuron in (("separate", "kernel"), ("split", "channel")):
        dense = nerv_canvas(model, 0.5, bias=bias, neuron=neuron)
        for layer in ("head", "b2"):
            n = n_neurons(model, layer, bias=bias, neuron=neuron)
            ids = [n - 1, 0, 1]
            got = neuron_maps(model, layer, ids, t=0.5, bias=bias, neuron=neuron)
            assert np.array_equal(got, dense[layer][ids].numpy()), (bias, neuron, layer)


@pytest.mark.parametrize("mode", ["reference", "exact"])
def test_neuron_maps_equal_canvas_rows_ffn(mode):
    """FFN: the selected maps are the canvas rows (to float32 rounding: see the xfail below)."""
    model = small_ffn()
    dense = ffn_canvas(model, 9, 13, mode=mode)
    for layer in layer_names(model):
        got = neuron_maps(model, layer, IDS, height=9, width=13, mode=mode)
        assert got.shape == (4, 9, 13) and got.dtype == np.float32
        np.testing.assert_allclose(got, dense[layer][IDS].numpy(), rtol=1e-6, atol=1e-7)
        parts = list(iter_canvas(model, layer, height=9, width=13, mode=mode, chunk=3,
                                 ids=[15, 1, 1]))
        assert torch.cat([p[0] for p in parts]).tolist() == [15, 1, 1]
        torch.testing.assert_close(torch.cat([p[1] for p in parts]), dense[layer][[15, 1, 1]],
                                   rtol=1e-6, atol=1e-7)
        n = n_neurons(model, layer)
        with pytest.raises(ValueError, match="outside"):
            neuron_maps(model, layer, [n], height=9, width=13, mode=mode)
        with pytest.raises(ValueError, match="outside"):
            list(iter_canvas(model, layer, height=9, width=13, mode=mode, ids=[-1]))


@pytest.mark.parametrize("mode", [
    "reference",
    pytest.param("exact", marks=pytest.mark.xfail(
        reason="exact mode multiplies paths @ weight[:, ids]: BLAS rounds other id sets "
               "differently (~1 ulp)")),
])
def test_neuron_maps_ffn_bitwise(mode):
    """As NeRV: a neuron's map should not depend on which ids are computed with it."""
    model = small_ffn()
    dense = ffn_canvas(model, 9, 13, mode=mode)
    for layer in layer_names(model):
        got = neuron_maps(model, layer, IDS, height=9, width=13, mode=mode)
        assert np.array_equal(got, dense[layer][IDS].numpy()), layer


# --------------------------------------------------------------------------- untrained models


def same_state(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize(("arch", "settings"), [
    ("ffn", {"width": 16}),
    ("nerv", {"fc_dim": 5, "fc_hw": [2, 3], "out": "0.0"}),
])
def test_initial_model_and_untrained_copy(arch, settings):
    torch.manual_seed(3)
    expect = build_model(arch, settings)
    assert same_state(initial_model(arch, settings, 3), expect)
    assert not same_state(initial_model(arch, settings, 4), expect)  # the seed matters

    trained = initial_model(arch, settings, 3)
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(1.0)
    trained.meta = {"seed": 3, "frame": 2}
    torch.manual_seed(99)  # the global RNG state must not matter
    fresh = untrained_copy(trained)
    assert type(fresh) is type(trained)
    assert same_state(fresh, initial_model(arch, trained.cfg.to_dict(), 3))
    assert same_state(fresh, expect)
    assert not same_state(fresh, trained)
    assert fresh.meta == {"seed": 3, "frame": 2}
    assert next(fresh.parameters()).device == next(trained.parameters()).device
    trained.meta = {"frame": 2}
    with pytest.raises(ValueError, match="no seed"):
        untrained_copy(trained)
    del trained.meta
    with pytest.raises(ValueError, match="no seed"):
        untrained_copy(trained)
