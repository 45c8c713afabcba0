"""Sums over pixels accumulate in float64 (docs/formats.md §6): T, the group sums S and v_n of
neurons spread almost evenly over the groups (δ ≈ 1e-4 … 1e-3) equal the same formulas in float64
numpy on the same float32 maps. (Float32 sums gave v_n errors of 1e-4 … 2e-2 on these maps, over
30 % for single neurons of a trained FFN.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xinc.canvas import iter_canvas
from xinc.models import build_model
from xinc.stats import (
    canvas_frame_stats,
    frame_stats,
    grid_groups,
    grouping_variance,
    pair_change,
)
from xinc.stats.variance import SIGNED_GROUPINGS

H, W = 128, 256
SUM_RTOL = 1e-10  # T and S: float64 sums of 32,768 values (float32 sums: ≈ 1e-7)
V_RTOL = (1e-6, 1e-5)  # v_n: 99th percentile and worst neuron of the relative errors


def kmeans_like(features: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Nearest of k random centres (one k-means assignment step), relabelled 0 … G−1."""
    rng = np.random.default_rng(seed)
    flat = features.reshape(-1, features.shape[-1])
    centres = flat[rng.choice(len(flat), k, replace=False)]
    nearest = ((flat[:, None, :] - centres[None]) ** 2).sum(-1).argmin(1)
    return np.unique(nearest, return_inverse=True)[1].reshape(features.shape[:2]).astype(np.int32)


@pytest.fixture(scope="module")
def labels() -> dict[str, np.ndarray]:
    """Groupings like the workflow's: irregular instances with a thin "other" region, two
    interleaved k-means-like ones, the 8×8 grids."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:H, 0:W] / np.array([H, W])[:, None, None]
    instances = kmeans_like(np.stack([yy, xx], -1), 12, 1)
    instances[np.abs(np.sin(9 * xx + 5 * yy)) < 0.05] = instances.max() + 1  # "other"
    colour = np.stack([np.sin(7 * xx) * yy, np.cos(11 * yy + 3 * xx), xx * yy], -1)
    colour += rng.normal(0, 0.05, colour.shape)
    texture = np.stack([np.sin(40 * xx + 3 * np.sin(9 * yy)), np.cos(31 * yy)], -1)
    return {"instances": instances, "rgb": kmeans_like(colour, 32, 2),
            "gabor": kmeans_like(texture + rng.normal(0, 0.2, texture.shape), 32, 3),
            **grid_groups(H, W, (8, 8))}


def near_uniform_maps(n: int, seed: int) -> np.ndarray:
    """float32 [n, H, W]: a level in [0.5, 2] times 1 + ε·(smooth field + noise), ε log-uniform
    in [10^-3.5, 10^-2.5], random sign."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W] / np.array([H, W])[:, None, None]
    freq = rng.uniform(1, 12, (n, 2, 1, 1))
    field = np.sin(freq[:, 0] * xx + rng.uniform(0, 6, (n, 1, 1))) * np.cos(freq[:, 1] * yy)
    field += 0.3 * rng.normal(size=(n, H, W))
    eps = 10 ** rng.uniform(-3.5, -2.5, (n, 1, 1))
    level = rng.uniform(0.5, 2, (n, 1, 1)) * rng.choice([-1, 1], (n, 1, 1))
    return (level * (1 + eps * field)).astype(np.float32)


def wide_reference(maps: np.ndarray, labels: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """T, S_g, v_g (`grouping_variance`, grids signed), heat and 16×16 pool means of |maps|,
    all in float64."""
    a = np.abs(maps.astype(np.float64)).reshape(len(maps), -1)
    out = {"total": a.sum(1), "heat": a.sum(0).reshape(H, W),
           "pools": a.reshape(-1, H // 16, 16, W // 16, 16).mean((2, 4)).reshape(len(a), -1)}
    for g, lab in labels.items():
        sums = np.stack([np.bincount(lab.ravel(), weights=row) for row in a])
        areas = np.bincount(lab.ravel())
        out[f"group_sums_{g}"] = sums
        out[f"v_{g}"] = grouping_variance(sums, areas, out["total"], signed=g in SIGNED_GROUPINGS)
    return out


def rel_errors(got: np.ndarray, want: np.ndarray) -> tuple[float, float]:
    """(99th percentile, max) of |got − want| / |want|."""
    err = np.abs(got - want) / np.abs(want)
    return float(np.percentile(err, 99)), float(err.max())


def check_precision(stats: dict[str, np.ndarray], maps: np.ndarray,
                    labels: dict[str, np.ndarray]) -> None:
    ref = wide_reference(maps, labels)
    assert 1e-5 < np.nanmedian(np.sqrt(ref["v_rgb"])) < 1e-2  # δ: the neurons are near uniform
    pairs = {"total": (stats["total"], ref["total"], (SUM_RTOL, SUM_RTOL))}
    for g in labels:
        sums = stats[f"group_sums_{g}"]
        pairs[f"S {g}"] = (sums, ref[f"group_sums_{g}"], (SUM_RTOL, SUM_RTOL))
        v = grouping_variance(sums, stats[f"areas_{g}"], stats["total"],
                              signed=g in SIGNED_GROUPINGS)
        pairs[f"v {g}"] = (v, ref[f"v_{g}"], V_RTOL)
    bad = {}
    for name, (got, want, bounds) in pairs.items():
        errors = rel_errors(got, want)
        if errors[0] > bounds[0] or errors[1] > bounds[1]:
            bad[name] = f"p99 {errors[0]:.1e}, max {errors[1]:.1e} (bounds {bounds})"
    assert not bad, f"relative errors too large: {bad}"
    # the heat: the float64 sum rounded once to float32 (per-chunk float32 sums: ≈ 2e-7)
    np.testing.assert_allclose(stats["heat"], ref["heat"], rtol=1.001 * 2.0**-24, atol=0)
    lo, hi = np.abs(maps).min((1, 2)), np.abs(maps).max((1, 2))
    features = (ref["pools"] - lo[:, None]) / (hi - lo)[:, None]
    np.testing.assert_allclose(stats["features_spatial16"], features, rtol=0, atol=1e-6)


def shuffled_chunks(maps: np.ndarray, chunk: int):
    """Chunk factory over `maps` in a shuffled neuron order (the last chunk shorter)."""
    order = np.random.default_rng(chunk).permutation(len(maps))

    def chunks():
        for start in range(0, len(maps), chunk):
            idx = order[start:start + chunk]
            yield torch.from_numpy(idx), torch.from_numpy(maps[idx])
    return chunks


def test_near_uniform_maps_sum_in_float64(labels):
    maps = near_uniform_maps(120, 0)
    stats = frame_stats(shuffled_chunks(maps, 48), labels, len(maps), H, W)
    check_precision(stats, maps, labels)


def test_pair_change_sums_in_float64():
    """Δ = Σ_n | |C_next| − |C_prev| |: each term one float32 rounding off, summed in float64
    over the neurons, rounded once to float32, so within 2·2⁻²⁴ of the float64 formula (float32
    sums over the neurons are not)."""
    prev, nxt = near_uniform_maps(128, 1), near_uniform_maps(128, 2)
    delta = pair_change(shuffled_chunks(prev, 48)(), shuffled_chunks(nxt, 48)(), n_neurons=128)
    want = np.abs(np.abs(nxt.astype(np.float64)) - np.abs(prev)).sum(0)
    np.testing.assert_allclose(delta, want, rtol=1.2e-7, atol=0)


def near_uniform_ffn() -> torch.nn.Module:
    """A paper-size FFN whose layer-3 neurons are nearly uniform: biases of layer 2 in [0.5, 2],
    weights of layer 2 scaled by 10^-2 … 10^-1 (δ ≈ 1e-4 … 1e-3), RGB weights 1/3."""
    torch.manual_seed(0)
    model = build_model("ffn", {}).eval()
    with torch.no_grad():
        hidden = model.net[1].linear
        hidden.bias.uniform_(0.5, 2.0)
        hidden.weight.mul_(10 ** torch.empty(hidden.out_features, 1).uniform_(-2.0, -1.0))
        model.net[2].linear.weight.fill_(1 / 3)
        model.net[2].linear.bias.zero_()
    return model


def test_near_uniform_ffn_layer3(labels):
    model = near_uniform_ffn()
    stats = canvas_frame_stats(model, "l3", labels, height=H, width=W)
    maps = torch.cat([m for _, m in iter_canvas(model, "l3", height=H, width=W)]).numpy()
    check_precision(stats, maps, labels)


def near_uniform_nerv() -> torch.nn.Module:
    """A NeRV with a 128×256 output whose head maps are nearly uniform (δ ≈ 1e-4 … 1e-3): head
    biases raised to [1, 2], of which each kernel gets an equal share."""
    torch.manual_seed(0)
    model = build_model("nerv", {"fc_dim": 5}).eval()
    with torch.no_grad():
        model.head.bias.uniform_(1.0, 2.0)
    return model


def test_near_uniform_nerv_head(labels):
    model = near_uniform_nerv()
    assert model.cfg.output_size == (H, W)
    stats = canvas_frame_stats(model, "head", labels, t=0.2)
    maps = torch.cat([m for _, m in iter_canvas(model, "head", t=0.2)]).numpy()
    check_precision(stats, maps, labels)
