"""The mass thresholds τ_a, neurons per pixel and the value curve of the per-frame statistics
(docs/formats.md §6; `xinc.stats.tau`, `xinc.stats.mass`), with the instance means and neuron
feature vectors of the same streams: chunked = dense numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from xinc.canvas import iter_canvas
from xinc.models import build_model
from xinc.stats import (
    FrameStats,
    MassHistogram,
    canvas_frame_stats,
    canvas_pair_change,
    frame_stats,
    grid_groups,
    pixel_groups,
)
from xinc.stats import tau as tau_mod
from xinc.stats.tau import VALUE_LEVELS


def brute_tau(values: np.ndarray, a: float) -> float:
    """docs/method.md §8.5 literally: sort descending, first value where the cumsum reaches
    (1 − a)·total."""
    s = np.sort(values.ravel().astype(np.float64))[::-1]
    cs = np.cumsum(s)
    if cs[-1] == 0:
        return 0.0
    return float(s[np.argmax(cs >= (1 - a) * cs[-1])])


def check_curve(values: np.ndarray, mass: np.ndarray, flat: np.ndarray) -> None:
    """`MassHistogram.curve` against a sort: each quantile in the coarse bin (high 16 bits) of
    the exact one (`method="lower"`), its mass fraction within that bin's mass of the exact
    one, both non-decreasing."""
    flat = flat.astype(np.float32)
    exact = np.quantile(flat, VALUE_LEVELS, method="lower")
    bins = exact.astype(np.float32).view(np.int32) >> 16
    lo = (bins << 16).view(np.float32).astype(np.float64)
    hi = ((bins + 1) << 16).view(np.float32).astype(np.float64)
    assert np.all((values == exact) | ((lo <= values) & (values < hi)))
    keys = flat.view(np.int32) >> 16
    wide = flat.astype(np.float64)
    total = wide.sum()
    if total == 0:
        assert np.all(mass == 0)
        return
    bin_mass = np.bincount(keys, weights=wide, minlength=int(bins.max()) + 1)[bins] / total
    sorted_flat = np.sort(wide)
    ranks = np.floor(VALUE_LEVELS * (len(flat) - 1)).astype(np.int64)
    exact_mass = np.cumsum(sorted_flat)[ranks] / total
    assert np.all(np.abs(mass - exact_mass) <= bin_mass + 1e-12)
    assert np.all(np.diff(values) >= 0) and np.all(np.diff(mass) >= -1e-15)


def dense_more(maps: np.ndarray, labels: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    a = np.abs(maps.astype(np.float64))
    n, h, w = a.shape
    out: dict[str, np.ndarray] = {}
    for key, area in (("10", 0.1), ("50", 0.5)):
        tau = brute_tau(np.abs(maps), area)
        out[f"tau_{key}"] = tau
        out[f"neurons_per_pixel_{key}"] = (np.abs(maps) > np.float32(tau)).mean(0)
    out["alive"] = a.sum((1, 2)) > 0
    lo, hi = a.min((1, 2)), a.max((1, 2))
    span = np.where(hi > lo, hi - lo, 1.0)
    mm = np.where((hi > lo)[:, None, None], (a - lo[:, None, None]) / span[:, None, None], 0.0)
    for g, lab in labels.items():
        groups = lab.max() + 1
        means = np.stack([a[:, lab == q].mean(1) for q in range(groups)], 1)
        if g == "instances":
            out["instance_means"] = means
        if g in ("gabor", "rgb"):
            out[f"features_{g}"] = np.stack([mm[:, lab == q].mean(1) for q in range(groups)], 1)
    if h >= 16 and w >= 16:
        pooled = mm[:, :h // 16 * 16, :w // 16 * 16].reshape(n, h // 16, 16, w // 16, 16)
        out["features_spatial16"] = pooled.mean((2, 4)).reshape(n, -1)
    return out


def make_maps(seed: int, n: int = 29, h: int = 32, w: int = 48) -> np.ndarray:
    rng = np.random.default_rng(seed)
    maps = rng.standard_cauchy((n, h, w)).astype(np.float32)
    maps[rng.random(maps.shape) < 0.3] = 0
    maps[[i for i in (3, 17) if i < n]] = 0  # dead neurons
    maps[5 % n] = 2.5  # a constant (alive) neuron
    if seed % 2:  # heavy ties: few distinct magnitudes
        maps = np.round(maps).clip(-4, 4)
    return maps


def make_labels(h: int, w: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed + 100)
    labels = {g: rng.integers(0, k, (h, w)).astype(np.int32)
              for g, k in (("instances", 4), ("rgb", 6), ("gabor", 5))}
    for lab in labels.values():
        lab.ravel()[:lab.max() + 1] = np.arange(lab.max() + 1)  # no empty group
    return {**labels, **grid_groups(h, w, (2, 4))}


def stream(maps: np.ndarray, chunk: int, seed: int):
    order = np.random.default_rng(seed).permutation(len(maps))
    parts = [order[i:i + chunk] for i in range(0, len(maps), chunk)]

    def chunks():
        for idx in parts:
            yield torch.from_numpy(idx), torch.from_numpy(maps[idx])
    return chunks


def check_against_dense(stats: dict[str, np.ndarray], maps: np.ndarray,
                        labels: dict[str, np.ndarray]) -> None:
    ref = dense_more(maps, labels)
    n, h, w = maps.shape
    for key in ("10", "50"):
        assert stats[f"tau_{key}"].dtype == np.float64 and stats[f"tau_{key}"].shape == ()
        assert float(stats[f"tau_{key}"]) == ref[f"tau_{key}"]
        npp = stats[f"neurons_per_pixel_{key}"]
        assert npp.dtype == np.float32 and npp.shape == (h, w)
        np.testing.assert_allclose(npp, ref[f"neurons_per_pixel_{key}"], rtol=1e-6)
    assert stats["value_curve"].dtype == np.float64 and stats["value_curve"].shape == (2001,)
    np.testing.assert_array_equal(stats["value_curve_q"], np.linspace(0, 1, 2001))
    check_curve(stats["value_curve"], stats["value_curve_mass"], np.abs(maps).ravel())
    assert np.array_equal(stats["alive"], ref["alive"]) and stats["alive"].dtype == bool
    for key in ("instance_means", "features_gabor", "features_rgb", "features_spatial16"):
        if key not in ref:
            assert key not in stats
            continue
        assert stats[key].shape == ref[key].shape, key
        assert stats[key].dtype == (np.float64 if key == "instance_means" else np.float32)
        np.testing.assert_allclose(stats[key], ref[key], rtol=1e-5, atol=1e-6, err_msg=key)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("chunk", [1, 7, 100])
def test_new_keys_equal_dense(seed, chunk):
    maps = make_maps(seed)
    n, h, w = maps.shape
    labels = make_labels(h, w, seed)
    stats = frame_stats(stream(maps, chunk, seed), labels, n, h, w)
    check_against_dense(stats, maps, labels)
    assert stats["features_spatial16"].shape == (n, (h // 16) * (w // 16))
    assert stats["features_gabor"].shape == (n, 5)
    assert np.all(stats["features_gabor"][[3, 17, 5]] == 0)  # dead and constant maps
    if seed == 0:
        assert stats["tau_50"] > 0 and stats["tau_10"] < stats["tau_50"]


@pytest.mark.parametrize("cap", [0, 300, 3000])
def test_pixel_pass_when_the_kept_pairs_overflow(monkeypatch, cap):
    """Past AMBIGUOUS_CAP kept τ-bin values (at the first chunk, midway, or never) pass 2
    falls back to feeding every value to the fine histogram and pass 3 counts the pixels:
    the same exact τ and neurons per pixel."""
    monkeypatch.setattr(tau_mod, "AMBIGUOUS_CAP", cap)
    maps = make_maps(0)
    n, h, w = maps.shape
    labels = make_labels(h, w, 0)
    acc = FrameStats(labels, n, h, w)
    chunks = stream(maps, 4, 0)
    for method in ("update", "update_counts"):
        for ids, part in chunks():
            getattr(acc, method)(ids, part)
    assert acc.needs_pixel_pass == (cap < 3000)
    if acc.needs_pixel_pass:
        for ids, part in chunks():
            acc.update_pixels(ids, part)
    check_against_dense(acc.result(), maps, labels)


def test_all_zero_and_odd_sizes():
    maps = np.zeros((4, 17, 19), dtype=np.float32)
    stats = frame_stats(stream(maps, 3, 0), {}, 4, 17, 19)
    assert stats["tau_10"] == 0 and stats["tau_50"] == 0
    assert not stats["neurons_per_pixel_10"].any() and not stats["alive"].any()
    assert np.all(stats["value_curve"] == 0) and np.all(stats["value_curve_mass"] == 0)
    assert stats["features_spatial16"].shape == (4, 1)
    maps = make_maps(4, n=20, h=9, w=40)
    stats = frame_stats(stream(maps, 4, 0), {}, 20, 9, 40)
    check_against_dense(stats, maps, {})
    assert "features_spatial16" not in stats


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from([0.0, 1e-30, 0.25, 0.5, 1.0, 3.0, 1e5]) | st.floats(0, 1e3),
                min_size=1, max_size=60),
       st.integers(1, 5))
def test_mass_histogram_matches_sort(values, parts):
    x = np.array(values, dtype=np.float32)
    hist = MassHistogram((0.1, 0.5, 0.9), VALUE_LEVELS)
    for c in np.array_split(x, parts):
        hist.add_coarse(torch.from_numpy(c))
    for c in np.array_split(x[::-1].copy(), parts):
        hist.add_fine(torch.from_numpy(c))
    for a in (0.1, 0.5, 0.9):
        assert hist.tau(a) == brute_tau(x, a)
    check_curve(*hist.curve(), x)


def test_pass_order_is_enforced():
    maps = make_maps(0, n=5, h=4, w=6)
    acc = FrameStats({}, 5, 4, 6)
    ids, t = torch.arange(5), torch.from_numpy(maps)
    acc.update(ids, t)
    with pytest.raises(RuntimeError, match="pass 2"):
        acc.update_pixels(ids, t)
    acc.update_counts(ids, t)
    assert not acc.needs_pixel_pass  # float32: pass 2 already counted neurons per pixel
    quick = acc.result()
    acc.update_pixels(ids, t)  # an explicit pass 3 is still allowed and agrees
    with pytest.raises(ValueError, match="twice"):
        acc.update_pixels(ids[:1], t[:1])
    full = acc.result()
    for key in ("neurons_per_pixel_10", "neurons_per_pixel_50"):
        assert np.array_equal(quick[key], full[key])
    assert full["tau_50"] == brute_tau(np.abs(maps), 0.5)
    acc = FrameStats({}, 5, 4, 6)  # float64 maps need pass 3
    acc.update(ids, t.double())
    acc.update_counts(ids, t.double())
    assert acc.needs_pixel_pass
    with pytest.raises(RuntimeError, match="incomplete"):
        acc.result()
    acc.update_pixels(ids, t.double())
    assert np.array_equal(acc.result()["neurons_per_pixel_50"], quick["neurons_per_pixel_50"])


def test_pixel_pass_fallback(monkeypatch):
    module = tau_mod
    monkeypatch.setattr(module, "AMBIGUOUS_CAP", 0)
    maps = make_maps(2)
    n, h, w = maps.shape
    calls = []
    chunks = stream(maps, 5, 0)

    def counted():
        calls.append(1)
        return chunks()
    stats = frame_stats(counted, {}, n, h, w)
    assert len(calls) == 3
    check_against_dense(stats, maps, {})


def synthetic_groups(h: int, w: int) -> dict[str, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w]
    frame = np.stack([xx / w, yy / h, 0.5 + 0.4 * np.sin(xx / 3.0)], -1).astype(np.float32)
    pan = np.where(xx < w // 2, 7000, 26001 + (yy >= h // 2)).astype(np.int32)
    pan[:2, :3] = -1
    return pixel_groups(frame, pan, k=4, grid=(2, 2), seed=0)


def test_canvas_frame_stats_ffn_end_to_end():
    torch.manual_seed(0)
    model = build_model("ffn", {"width": 8}).eval()
    h, w = 16, 32
    groups = synthetic_groups(h, w)
    stats = canvas_frame_stats(model, "l1", groups, height=h, width=w, chunk=3)
    maps = torch.cat([m for _, m in iter_canvas(model, "l1", height=h, width=w)]).numpy()
    labels = {g: groups[g] for g in ("instances", "rgb", "gabor")}
    check_against_dense(stats, maps, labels)
    assert stats["instance_means"].shape == (maps.shape[0], len(groups["instances_ids"]))


def test_canvas_frame_stats_nerv_end_to_end_and_pair():
    torch.manual_seed(0)
    model = build_model("nerv", {"fc_dim": 5, "fc_hw": [2, 3]}).eval()
    h, w = model.cfg.output_size
    groups = synthetic_groups(h, w)
    stats = canvas_frame_stats(model, "b3", groups, t=0.2, chunk=5)
    maps = torch.cat([m for _, m in iter_canvas(model, "b3", t=0.2)]).numpy()
    check_against_dense(stats, maps, {g: groups[g] for g in ("instances", "rgb", "gabor")})
    nxt = torch.cat([m for _, m in iter_canvas(model, "b3", t=0.3)]).numpy()
    delta = canvas_pair_change(model, "b3", 0.2, 0.3, chunk=4)
    np.testing.assert_allclose(delta, np.abs(np.abs(nxt) - np.abs(maps)).sum(0, dtype=np.float64),
                               rtol=1e-5, atol=1e-6)


def test_histograms_split_over_threads_equal_one_pass(monkeypatch):
    values = torch.from_numpy(np.random.default_rng(3).random(3_000_000, dtype=np.float32))
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
    hist = MassHistogram([0.1, 0.5], VALUE_LEVELS)
    hist.add_coarse(values)
    keys = values.numpy().view(np.int32) >> 16
    np.testing.assert_array_equal(hist.count, np.bincount(keys, minlength=len(hist.count)))
    np.testing.assert_allclose(hist.mass, np.bincount(keys, weights=values.numpy().astype(
        np.float64), minlength=len(hist.mass)), rtol=1e-12)
    hist.add_fine(values)
    check_curve(*hist.curve(), values.numpy())
    assert hist.tau(0.5) == brute_tau(values.numpy(), 0.5)
