"""Pixel groupings, streamed frame statistics and the grouping variance (docs/method.md §8)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.filters import gabor_kernel

from xinc.canvas import ffn_canvas, iter_canvas
from xinc.models import build_model
from xinc.stats import (
    GROUPINGS,
    FrameStats,
    canvas_frame_stats,
    declared_nbytes,
    declared_outputs,
    frame_stats,
    gabor_features,
    grid_groups,
    grid_layout,
    grouping_variance,
    instance_groups,
    label_maps,
    pair_change,
    pixel_groups,
    read_frame_stats,
    sample_neurons,
    stats_variances,
    write_frame_stats,
)


def synthetic_frame(h: int, w: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    frame = np.stack([xx / w, yy / h, 0.5 + 0.4 * np.sin(xx / 3.0)], -1)
    frame = np.clip(frame + rng.normal(0, 0.03, frame.shape), 0, 1).astype(np.float32)
    panoptic = np.where(xx < w // 2, 7000, 26001 + (yy >= h // 2)).astype(np.int32)
    panoptic[:2, :3] = -1
    return frame, panoptic


def dense_stats(maps: np.ndarray, labels: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Straightforward float64 definitions of docs/formats.md §6 on a dense [N, H, W] array."""
    a = np.abs(maps.astype(np.float64))
    n = a.shape[0]
    heat = a.sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = a / heat
    out = {"total": a.sum((1, 2)), "heat": heat,
           "pixels_per_neuron": (share > 1.0 / n).sum((1, 2))}
    for g, lab in labels.items():
        groups = lab.max() + 1
        out[f"group_sums_{g}"] = np.stack([a[:, lab == q].sum(1) for q in range(groups)], 1)
        out[f"areas_{g}"] = np.array([(lab == q).sum() for q in range(groups)])
    return out


# --------------------------------------------------------------------------- groupings


@pytest.mark.parametrize(("h", "w", "grid"), [(16, 32, (4, 8)), (12, 26, (4, 6)), (5, 7, (1, 1))])
def test_grid_groups_geometry(h, w, grid):
    sh, sw = grid
    g = grid_groups(h, w, grid)
    lattice, contiguous = g["grid_lattice"], g["grid_contiguous"]
    for y in range(h):
        for x in range(w):
            assert lattice[y, x] == (y % sh) * sw + x % sw
    assert sorted(np.unique(lattice)) == list(range(sh * sw))
    assert sorted(np.unique(contiguous)) == list(range(sh * sw))
    assert np.bincount(lattice.ravel()).sum() == h * w
    for q in range(sh * sw):  # contiguous blocks are rectangles tiling the frame in order
        ys, xs = np.nonzero(contiguous == q)
        assert len(ys) == (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
        assert (ys.min() * sh // h, xs.min() * sw // w) == divmod(q, sw)
    if h % sh == 0 and w % sw == 0:
        assert np.all(np.bincount(contiguous.ravel()) == h * w // (sh * sw))
        assert np.all(np.bincount(lattice.ravel()) == h * w // (sh * sw))
    with pytest.raises(ValueError):
        grid_groups(h, w, (h + 1, 1))


def test_instance_groups_match_panoptic():
    pan = np.array([[5, 5, -1], [2000, 26001, 26001], [2000, -1, 5]], dtype=np.int32)
    labels, ids = instance_groups(pan)
    assert ids.tolist() == [5, 2000, 26001, -2]
    assert labels.dtype == np.int32
    assert np.array_equal(ids[labels], np.where(pan < 0, -2, pan))
    labels, ids = instance_groups(np.full((2, 2), 3000))
    assert ids.tolist() == [3000] and np.all(labels == 0)


def test_pixel_groups_keys_and_labels():
    frame, pan = synthetic_frame(24, 40)
    groups = pixel_groups(frame, pan, k=5, grid=(2, 4), seed=0)
    assert set(groups) == {*GROUPINGS, "instances_ids", "params_json"}
    for g in GROUPINGS:
        lab = groups[g]
        assert lab.shape == (24, 40) and lab.dtype == np.int32
        assert np.array_equal(np.unique(lab), np.arange(lab.max() + 1))
    assert groups["instances_ids"].tolist() == [7000, 26001, 26002, -2]
    assert np.array_equal(groups["instances_ids"][groups["instances"]], np.where(pan < 0, -2, pan))
    assert groups["rgb"].max() + 1 == 5 and groups["gabor"].max() + 1 <= 5
    assert json.loads(str(groups["params_json"])) == {"gabor_mode": "reference", "grid": [2, 4],
                                                      "k": 5, "seed": 0}
    again = pixel_groups((frame * 255).round().astype(np.uint8), pan, k=5, grid=(2, 4), seed=0)
    assert np.array_equal(again["gabor"], groups["gabor"])  # same uint8 grey image
    fixed = pixel_groups(frame, pan, k=5, grid=(2, 4), seed=0, gabor_mode="full")
    assert fixed["gabor"].shape == (24, 40)
    flat = pixel_groups(np.full((6, 8, 3), 0.5), np.zeros((6, 8), int), k=4, grid=(2, 2), seed=0)
    assert np.all(flat["rgb"] == 0)  # one distinct colour → one group
    with pytest.raises(ValueError):
        pixel_groups(frame, pan[:-1], k=5, grid=(2, 4), seed=0)


def test_gabor_reference_bank_wraps_modulo_256():
    rng = np.random.default_rng(1)
    grey = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    feats = gabor_features(grey, "reference")
    assert feats.shape == (20, 30, 6) and feats.dtype == np.uint8
    q = 0
    for sigma in (1, 3):
        for freq in (0.05, 0.25, 0.5):
            kernel = np.real(gabor_kernel(freq, theta=0, sigma_x=sigma, sigma_y=sigma))
            exact = ndimage.convolve(grey.astype(np.float64), kernel, mode="wrap")
            assert np.array_equal(feats[..., q], np.mod(np.trunc(exact), 256).astype(np.uint8))
            q += 1
    fixed = gabor_features(grey, "full")
    assert fixed.shape == (20, 30, 24) and fixed.dtype == np.float64
    with pytest.raises(ValueError):
        gabor_features(grey, "other")


# --------------------------------------------------------------------------- frame stats


def test_sample_neurons():
    ids = sample_neurons(100, 10, seed=3)
    assert ids.dtype == np.int64 and len(set(ids.tolist())) == 10
    assert np.all(np.diff(ids) > 0) and ids.min() >= 0 and ids.max() < 100
    assert np.array_equal(ids, sample_neurons(100, 10, seed=3))
    assert not np.array_equal(ids, sample_neurons(100, 10, seed=4))
    assert np.array_equal(sample_neurons(5, 10, seed=0), np.arange(5))


@pytest.fixture(scope="module")
def random_maps():
    rng = np.random.default_rng(5)
    n, h, w = 37, 12, 20
    maps = rng.normal(size=(n, h, w)).astype(np.float32)
    maps[rng.random(maps.shape) < 0.3] = 0
    maps[[4, 20]] = 0  # dead neurons
    maps[:, 0, 0] = 0  # a pixel no neuron reaches
    labels = {"a": rng.integers(0, 5, (h, w)).astype(np.int32),
              **grid_groups(h, w, (3, 4))}
    return maps, labels


def test_frame_stats_equal_dense(random_maps):
    maps, labels = random_maps
    n, h, w = maps.shape
    order = np.random.default_rng(0).permutation(n)
    chunks = [order[i:i + 6] for i in range(0, n, 6)]

    def stream():
        for idx in chunks:
            yield torch.from_numpy(idx), torch.from_numpy(maps[idx])

    sample = [3, 4, 30]
    extra = {"instances_ids": np.arange(3), "params_json": np.array("{}")}
    stats = frame_stats(stream, {**labels, **extra}, n, h, w, sample, meta={"layer": "x"})
    ref = dense_stats(maps, labels)
    assert set(stats) == {"total", "pixels_per_neuron", "heat", "sample_ids", "sample_maps",
                          "meta_json", *(f"{p}_{g}" for g in labels
                                         for p in ("group_sums", "areas")),
                          # tests/test_stats_tau.py checks these (12×20: no 16×16 pools)
                          "tau_10", "tau_50", "neurons_per_pixel_10", "neurons_per_pixel_50",
                          "value_curve", "value_curve_q", "value_curve_mass", "alive"}
    np.testing.assert_allclose(stats["total"], ref["total"], rtol=1e-6)
    assert stats["total"].dtype == np.float64
    for g in labels:
        np.testing.assert_allclose(stats[f"group_sums_{g}"], ref[f"group_sums_{g}"], rtol=1e-5,
                                   atol=1e-6)
        assert stats[f"group_sums_{g}"].dtype == np.float64
        assert np.array_equal(stats[f"areas_{g}"], ref[f"areas_{g}"])
        assert stats[f"areas_{g}"].dtype == np.int64 and stats[f"areas_{g}"].sum() == h * w
    np.testing.assert_allclose(stats["heat"], ref["heat"], rtol=1e-6)
    assert stats["heat"].dtype == np.float32 and stats["heat"].shape == (h, w)
    assert np.array_equal(stats["pixels_per_neuron"], ref["pixels_per_neuron"])
    assert stats["pixels_per_neuron"].dtype == np.int64
    assert stats["pixels_per_neuron"][[4, 20]].tolist() == [0, 0]
    assert np.array_equal(stats["sample_ids"], sample)
    assert stats["sample_maps"].dtype == np.float16
    assert np.array_equal(stats["sample_maps"], maps[sample].astype(np.float16))
    meta = json.loads(str(stats["meta_json"]))
    assert meta == {"layer": "x", "neurons": n, "height": h, "width": w,
                    "groupings": list(labels)}


def test_pixels_per_neuron_brute_force():
    rng = np.random.default_rng(11)
    maps = rng.standard_cauchy((9, 4, 5)).astype(np.float32)
    stats = frame_stats(lambda: [(torch.arange(9), torch.from_numpy(maps))], {}, 9, 4, 5)
    for i in range(9):
        count = 0
        for y in range(4):
            for x in range(5):
                heat = sum(abs(float(maps[m, y, x])) for m in range(9))
                count += abs(float(maps[i, y, x])) / heat > 1 / 9
        assert stats["pixels_per_neuron"][i] == count


def test_frame_stats_misuse(random_maps):
    maps, labels = random_maps
    n, h, w = maps.shape
    acc = FrameStats(labels, n, h, w)
    acc.update(torch.arange(5), torch.from_numpy(maps[:5]))
    with pytest.raises(ValueError, match="twice"):
        acc.update(torch.arange(3), torch.from_numpy(maps[:3]))
    with pytest.raises(RuntimeError, match="pass 1"):
        acc.update_counts(torch.arange(5), torch.from_numpy(maps[:5]))
    with pytest.raises(RuntimeError, match="incomplete"):
        acc.result()
    with pytest.raises(ValueError, match="frame size"):
        acc.update(torch.arange(5, 7), torch.zeros(2, h + 1, w))
    with pytest.raises(ValueError, match="sample ids"):
        FrameStats(labels, n, h, w, sample_ids=[n])
    for bad in (labels["a"] * 2, labels["a"] - 1):
        with pytest.raises(ValueError, match="none empty"):
            FrameStats({"bad": bad}, n, h, w)


def test_canvas_frame_stats_ffn_and_roundtrip(tmp_path):
    torch.manual_seed(0)
    model = build_model("ffn", {"width": 8}).eval()
    frame, pan = synthetic_frame(16, 24)
    groups = pixel_groups(frame, pan, k=4, grid=(2, 3), seed=0)
    stats = canvas_frame_stats(model, "l2", groups, height=16, width=24, n_sample=3,
                               sample_seed=1, chunk=3, meta={"frame": 0, "seed": 1})
    maps = ffn_canvas(model, 16, 24)["l2"].numpy()
    ref = dense_stats(maps, {g: groups[g] for g in GROUPINGS})
    np.testing.assert_allclose(stats["total"], ref["total"], rtol=1e-6)
    for g in GROUPINGS:
        np.testing.assert_allclose(stats[f"group_sums_{g}"], ref[f"group_sums_{g}"],
                                   rtol=1e-5, atol=1e-6)
    assert np.array_equal(stats["pixels_per_neuron"], ref["pixels_per_neuron"])
    assert np.array_equal(stats["sample_ids"], sample_neurons(8, 3, 1))
    meta = json.loads(str(stats["meta_json"]))
    assert meta["arch"] == "ffn" and meta["layer"] == "l2" and meta["mode"] == "reference"
    assert meta["frame"] == 0 and meta["seed"] == 1 and meta["t"] is None
    path = tmp_path / "stats" / "l2.npz"
    write_frame_stats(path, stats)
    back = read_frame_stats(path)
    assert set(back) == set(stats)
    for key, value in stats.items():
        assert back[key].dtype == value.dtype and np.array_equal(back[key], value), key
    with pytest.raises(ValueError, match="lack"):
        write_frame_stats(path, {"total": stats["total"]})


def test_canvas_frame_stats_nerv_chunks_match_dense():
    torch.manual_seed(0)
    model = build_model("nerv", {"fc_dim": 5, "fc_hw": [2, 3]}).eval()
    h, w = model.cfg.output_size
    frame, pan = synthetic_frame(h, w)
    groups = pixel_groups(frame, pan, k=4, grid=(4, 4), seed=0)
    stats = canvas_frame_stats(model, "b2", groups, t=0.2, n_sample=4)
    maps = torch.cat([m for _, m in iter_canvas(model, "b2", t=0.2, chunk=1000)]).numpy()
    ref = dense_stats(maps, {g: groups[g] for g in GROUPINGS})
    for g in GROUPINGS:
        np.testing.assert_allclose(stats[f"group_sums_{g}"], ref[f"group_sums_{g}"],
                                   rtol=1e-5, atol=1e-6)
    assert np.array_equal(stats["pixels_per_neuron"], ref["pixels_per_neuron"])
    assert json.loads(str(stats["meta_json"]))["t"] == 0.2


@pytest.mark.parametrize("arch", [pytest.param("nerv", marks=pytest.mark.slow), "ffn"])
def test_canvas_frame_stats_follow_the_switches(arch):
    torch.manual_seed(1)
    if arch == "nerv":
        model = build_model("nerv", {"fc_dim": 5, "fc_hw": [2, 3]}).eval()
        layer, kw = "b1", {"t": 0.3}
        h, w = model.cfg.output_size
    else:
        model = build_model("ffn", {"width": 8}).eval()
        layer, kw, (h, w) = "l2", {}, (12, 16)
    groups = grid_groups(h, w, (2, 2))
    for bias, neuron in (("separate", "kernel"), ("split", "channel"), ("separate", "channel")):
        stats = canvas_frame_stats(model, layer, groups, height=h, width=w, bias=bias,
                                   neuron=neuron, mode="exact", **kw)
        maps = torch.cat([m for _, m in iter_canvas(model, layer, height=h, width=w,
                                                    mode="exact", bias=bias, neuron=neuron,
                                                    **kw)])
        meta = json.loads(str(stats["meta_json"]))
        assert (meta["bias"], meta["neuron"], meta["mode"]) == (bias, neuron, "exact")
        assert meta["neurons"] == len(maps) == len(stats["total"])
        np.testing.assert_allclose(stats["total"], maps.abs().sum((1, 2)).double().numpy(),
                                   rtol=1e-5)


@pytest.mark.parametrize(("shape", "grouping", "k", "dtype"), [
    ((37, 12, 20), "grids", 3, torch.float32),  # no pools, labels not from pixel_groups
    ((6, 32, 48), "pixel_groups", 16, torch.float32),  # instances with ids, features, pools
    ((5, 17, 19), "none", 0, torch.float64),  # pass 3, one pool
    ((7, 16, 24), "instances", 2, torch.float16),  # instances without ids, pass 3
])
def test_written_file_holds_exactly_the_declared_arrays(tmp_path, shape, grouping, k, dtype):
    n, h, w = shape
    frame, pan = synthetic_frame(h, w)
    groups = {"grids": {**grid_groups(h, w, (3, 4)), "a": np.arange(h * w).reshape(h, w) % 5},
              "pixel_groups": pixel_groups(frame, pan, k=4, grid=(2, 3), seed=0),
              "none": {},
              "instances": {"instances": instance_groups(pan)[0]}}[grouping]
    maps = torch.from_numpy(np.random.default_rng(n).normal(size=shape)).to(dtype)
    stats = frame_stats(lambda: [(torch.arange(n), maps)], groups, n, h, w,
                        sample_neurons(n, k, 0))
    write_frame_stats(tmp_path / "s.npz", stats)
    back = read_frame_stats(tmp_path / "s.npz")
    sizes = {g: int(lab.max()) + 1 for g, lab in label_maps(groups, h, w).items()}
    declared = declared_outputs(n, h, w, sizes, k, instance_ids="instances_ids" in groups)
    assert set(back) == set(declared)
    for key, (dtype_, shape_) in declared.items():
        assert back[key].shape == shape_, key
        if key == "meta_json":
            assert back[key].dtype.kind == "U"
        else:
            assert back[key].dtype == np.dtype(dtype_), key
    assert {key: back[key].nbytes for key in back if key != "meta_json"} == {
        key: nbytes for key, nbytes in declared_nbytes(n, h, w, sizes, k).items()
        if key in declared}


@pytest.mark.parametrize("chunk", [1, 4, 50])
def test_pair_change_equals_dense(chunk):
    rng = np.random.default_rng(chunk)
    prev = rng.normal(size=(13, 6, 7)).astype(np.float32)
    nxt = prev + rng.normal(scale=0.3, size=prev.shape).astype(np.float32)
    nxt[2] = -prev[2]  # sign flips do not change |C|

    def chunks(maps):
        for i in range(0, 13, chunk):
            ids = torch.arange(i, min(i + chunk, 13))
            yield ids, torch.from_numpy(maps[ids.numpy()])
    delta = pair_change(chunks(prev), chunks(nxt), n_neurons=13)
    ref = np.abs(np.abs(nxt.astype(np.float64)) - np.abs(prev)).sum(0)
    assert delta.dtype == np.float32 and delta.shape == (6, 7)
    np.testing.assert_allclose(delta, ref, rtol=1e-5)
    with pytest.raises(ValueError, match="lockstep"):
        pair_change(chunks(prev), [(torch.arange(1, 2), torch.zeros(1, 6, 7))])
    with pytest.raises(ValueError, match="exactly once"):
        pair_change(chunks(prev), chunks(nxt), n_neurons=14)


def test_grid_groupings_are_summed_by_reshaping_and_agree_with_labels():
    h, w = 12, 20
    grids = grid_groups(h, w, (3, 4))
    assert grid_layout(grids["grid_lattice"]) == ("lattice", 3, 4)
    assert grid_layout(grids["grid_contiguous"]) == ("contiguous", 3, 4)
    shuffled = grids["grid_lattice"].copy()
    shuffled[0, 0], shuffled[0, 1] = shuffled[0, 1], shuffled[0, 0]
    assert grid_layout(shuffled) is None
    assert grid_layout(grid_groups(10, 20, (3, 4))["grid_contiguous"]) is None  # 3 ∤ 10
    maps = torch.randn(5, h, w)
    stats = FrameStats({**grids, "other": shuffled}, 5, h, w)
    stats.update(torch.arange(5), maps)
    flat = maps.abs().reshape(5, -1).double().numpy()
    for name in ("grid_lattice", "grid_contiguous", "other"):
        labels = {**grids, "other": shuffled}[name].ravel()
        want = np.stack([np.bincount(labels, weights=row) for row in flat])
        np.testing.assert_allclose(stats.sums.group_sums[name], want, rtol=1e-5)


def test_workspaces_reuse_and_grow():
    from xinc.stats.workspace import Workspaces

    work, like = Workspaces(), torch.zeros(1)
    a = work.get("x", (2, 3), like)
    assert a.shape == (2, 3) and a.dtype == torch.float32
    b = work.get("x", (3,), like)
    assert b.data_ptr() == a.data_ptr()  # fits: the same memory
    c = work.get("x", (4, 5), like)
    assert c.shape == (4, 5) and c.numel() == 20  # grown
    assert work.get("y", (2,), like, torch.int32).dtype == torch.int32
    assert work.get("x", (4, 5), like).data_ptr() == c.data_ptr()


# --------------------------------------------------------------------------- variance


def test_grouping_variance_hand_example():
    sums = np.array([[2.0, 2.0], [0.0, 0.0], [1.0, 3.0]])
    areas = np.array([1, 3])
    total = np.array([4.0, 0.0, 4.0])
    # neuron 0: E = [1, 3], δ = [1, 1/3]; neuron 2: S = E, δ = 0
    v = grouping_variance(sums, areas, total)
    np.testing.assert_allclose(v[[0, 2]], [2 / 9, 0.0], atol=1e-15)
    assert np.isnan(v[1])
    vs = grouping_variance(sums, areas, total, signed=True)  # δ = [1, −1/3]
    np.testing.assert_allclose(vs[[0, 2]], [8 / 9, 0.0], atol=1e-15)
    assert np.all(np.isnan(grouping_variance(sums[:, :1], areas[:1], total)))
    with pytest.raises(ValueError):
        grouping_variance(sums, areas[:1], total)


def test_stats_variances_signs(random_maps):
    maps, labels = random_maps
    n, h, w = maps.shape
    stats = frame_stats(lambda: [(torch.arange(n), torch.from_numpy(maps))], labels, n, h, w)
    v = stats_variances(stats)
    assert set(v) == set(labels)
    for g in labels:
        signed = g.startswith("grid_")
        expect = grouping_variance(stats[f"group_sums_{g}"], stats[f"areas_{g}"],
                                   stats["total"], signed=signed)
        np.testing.assert_array_equal(v[g], expect)
        assert np.isnan(v[g][[4, 20]]).all() and not np.isnan(np.delete(v[g], [4, 20])).any()
    unsigned = stats_variances(stats, signed_grids=False)["grid_lattice"]
    assert not np.allclose(unsigned, v["grid_lattice"], equal_nan=True)
