"""The findings table on hand-made figure tables with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xinc import findings
from xinc.findings import COLUMNS, bootstrap_mean, compute, render
from xinc.stats import gini

UNITS = [("synthetic", "v0", 1), ("synthetic", "v0", 2), ("synthetic", "v1", 1)]


def _variance(ratio: float = 4.0, grids=("grid_contiguous",)) -> pd.DataFrame:
    """Per unit: grid v = 1, 2, 3 over three neurons; every other grouping `ratio` × that.
    A later frame with different numbers must be ignored (key frame = earliest)."""
    rows = []
    for ds, vid, seed in UNITS:
        for frame, scale in ((0, 1.0), (5, 100.0)):
            for grouping in ("instances", "rgb", "gabor", *grids):
                factor = 1.0 if grouping.startswith("grid_") else ratio * scale
                for nid, v in enumerate((1.0, 2.0, 3.0)):
                    rows.append({"dataset": ds, "video": vid, "arch": "ffn", "layer": "l2",
                                 "seed": seed, "frame": frame, "grouping": grouping,
                                 "rank": nid, "neuron_id": nid, "v": v * factor})
    return pd.DataFrame(rows)


def _pixels() -> pd.DataFrame:
    rows = []
    for ds, vid, seed in UNITS:
        for arch, layer, counts in (("ffn", "l1", [5, 5, 5, 5]), ("nerv", "head", [0, 0, 0, 9])):
            for nid, c in enumerate(counts):
                rows.append({"dataset": ds, "video": vid, "arch": arch, "layer": layer,
                             "seed": seed, "frame": 0, "rank": nid, "neuron_id": nid,
                             "pixels": c})
    return pd.DataFrame(rows)


def _npp() -> pd.DataFrame:
    """CV per (unit, layer, area): FFN 0.1 (L1) and 0.3 (L3); NeRV 1.0 (head) plus unit index."""
    rows = []
    for i, (ds, vid, seed) in enumerate(UNITS):
        for arch, layer, cv in (("ffn", "l1", 0.1), ("ffn", "l3", 0.3), ("nerv", "head", 1.0 + i)):
            for area in (0.1, 0.5):
                rows.append({"dataset": ds, "video": vid, "arch": arch, "layer": layer,
                             "seed": seed, "frame": 0, "area": area, "tau": 1.0, "mean": 1.0,
                             "std": cv, "cv": cv * (2 if area == 0.5 else 1), "min": 0.0,
                             "max": 1.0, "source": "x.npz:neurons_per_pixel"})
    return pd.DataFrame(rows)


def _shares() -> pd.DataFrame:
    """Two frames per unit: (0.6, 0.4, 0) and (0.2, 0.5, 0.3); 'other' is absent at frame 0."""
    rows = []
    for ds, vid, seed in UNITS:
        for frame, kinds in ((0, {"thing": 0.6, "stuff": 0.4}),
                             (5, {"thing": 0.2, "stuff": 0.5, "other": 0.3})):
            for kind, share in kinds.items():
                rows.append({"dataset": ds, "video": vid, "arch": "nerv", "layer": "b3",
                             "seed": seed, "frame": frame, "kind": kind, "share": share})
    return pd.DataFrame(rows)


def _motion() -> pd.DataFrame:
    rows = []
    for i, (ds, vid, seed) in enumerate(UNITS):
        for prev, frame, flow, diff in ((0, 1, 0.8, 0.3), (9, 10, 0.6 + 0.1 * i, 0.5)):
            for layer in ("head", "b3"):
                rows.append({"dataset": ds, "video": vid, "seed": seed, "layer": layer,
                             "frame_prev": prev, "frame": frame, "spearman_flow": flow,
                             "spearman_diff": diff, "pearson_flow": flow,
                             "pearson_diff": diff, "pixels": 32})
    return pd.DataFrame(rows)


def _all() -> dict:
    return {"variance": _variance(), "pixels": _pixels(), "npp": _npp(), "shares": _shares(),
            "motion": _motion()}


def _get(df: pd.DataFrame, figure: str, arch: str, layer: str, stat: str) -> pd.Series:
    sel = df[(df.figure == figure) & (df.arch == arch) & (df.layer == layer)
             & (df.statistic == stat)]
    assert len(sel) == 1, (figure, arch, layer, stat, sel)
    return sel.iloc[0]


def test_gini_known_values():
    assert gini([3, 3, 3, 3]) == 0.0
    assert gini([0, 0, 0, 0]) == 0.0
    for n in (2, 5, 10):
        assert gini([0] * (n - 1) + [7]) == pytest.approx((n - 1) / n)
    assert np.isnan(gini([]))
    # the formula's mean-difference form
    x = np.array([1.0, 2.0, 7.0])
    want = np.abs(x[:, None] - x[None, :]).sum() / (2 * x.size**2 * x.mean())
    assert gini(x) == pytest.approx(want)


def test_bootstrap_identical_values_degenerate():
    assert bootstrap_mean([0.1, 0.1, 0.1, 0.1], seed=3) == (0.1, 0.1, 0.1)
    assert bootstrap_mean([2.5]) == (2.5, 2.5, 2.5)


def test_bootstrap_ci_contains_mean_and_is_seeded():
    v = np.random.default_rng(1).normal(size=20)
    mean, low, high = bootstrap_mean(v, seed=7, n_boot=500)
    assert mean == pytest.approx(v.mean())
    assert low < mean < high
    assert bootstrap_mean(v, seed=7, n_boot=500) == (mean, low, high)
    assert bootstrap_mean(v, seed=8, n_boot=500) != (mean, low, high)
    _, low90, high90 = bootstrap_mean(v, seed=7, n_boot=500, level=0.9)
    assert low <= low90 and high90 <= high


def test_variance_ratio():
    df = compute(_variance(), None, None, None, None, data="synthetic", n_boot=50)
    assert list(df.columns) == COLUMNS
    assert list(df.statistic) == [f"ratio_{g}_to_grid_contiguous"
                                  for g in ("instances", "rgb", "gabor")]
    assert (df.value == 4.0).all() and (df.ci_low == 4.0).all() and (df.ci_high == 4.0).all()
    assert (df.n == 3).all() and (df.figure == "fig04").all() and (df.data == "synthetic").all()
    both = compute(_variance(grids=("grid_lattice", "grid_contiguous")), None, None, None, None,
                   data="synthetic", n_boot=50)
    assert list(both.statistic) == [f"ratio_{g}_to_{grid}"
                                    for grid in ("grid_lattice", "grid_contiguous")
                                    for g in ("instances", "rgb", "gabor")]


def test_gini_rows_and_npp_comparison():
    df = compute(None, _pixels(), _npp(), None, None, data="synthetic", n_boot=200)
    assert _get(df, "fig06", "ffn", "l1", "gini_pixels_per_neuron").value == 0.0
    assert _get(df, "fig06", "nerv", "head", "gini_pixels_per_neuron").value == pytest.approx(0.75)
    assert _get(df, "fig07", "ffn", "l3", "cv_npp_10").value == pytest.approx(0.3)
    assert _get(df, "fig07", "ffn", "l3", "cv_npp_50").value == pytest.approx(0.6)
    head = _get(df, "fig07", "nerv", "head", "cv_npp_10")
    assert head.value == pytest.approx(2.0) and head.n == 3
    assert head.ci_low <= 2.0 <= head.ci_high
    # NeRV mean CV (1 + i) minus FFN mean CV (0.2), averaged over units i = 0, 1, 2
    comp = _get(df, "fig07", "nerv-ffn", "all", "cv_npp_10")
    assert comp.value == pytest.approx(1.8)
    assert _get(df, "fig07", "nerv-ffn", "all", "cv_npp_50").value == pytest.approx(3.6)


def test_shares_average_over_frames():
    df = compute(None, None, None, _shares(), None, data="synthetic", n_boot=50)
    assert list(df.statistic) == ["share_thing", "share_stuff", "share_other"]
    np.testing.assert_allclose(df.value, [0.4, 0.45, 0.15])
    assert (df.n == 3).all()


def test_motion_means_over_pairs_then_units():
    df = compute(None, None, None, None, _motion(), data="synthetic", n_boot=50)
    assert list(df.layer.unique()) == ["head", "b3"]
    assert (df.arch == "nerv").all()
    # unit i: flow (0.8 + 0.6 + 0.1 i) / 2, diff 0.4 -> mean over i: 0.75 and 0.4
    assert _get(df, "fig09", "nerv", "b3", "spearman_flow").value == pytest.approx(0.75)
    assert _get(df, "fig09", "nerv", "b3", "spearman_diff").value == pytest.approx(0.4)
    assert _get(df, "fig09", "nerv", "head", "spearman_flow_minus_diff").value == \
        pytest.approx(0.35)


def test_empty_inputs_drop_their_claims():
    empty = compute(None, pd.DataFrame(), pd.DataFrame(columns=["cv"]), None, None,
                    data="synthetic")
    assert list(empty.columns) == COLUMNS and empty.empty
    parts = _all()
    parts["motion"] = pd.DataFrame()
    df = compute(**parts, data="synthetic", n_boot=50)
    assert "fig09" not in set(df.figure)
    assert list(df.figure.unique()) == ["fig04", "fig06", "fig07", "fig08"]
    assert not df[["value", "ci_low", "ci_high"]].isna().any().any()


def test_missing_column_raises():
    with pytest.raises(ValueError, match="pixels"):
        compute(None, _pixels().drop(columns="pixels"), None, None, None, data="x")


def test_row_order_and_single_unit_interval():
    one = {k: v[v.video == "v1"] for k, v in _all().items()}
    df = compute(**one, data="synthetic", n_boot=50)
    assert (df.n == 1).all()
    assert (df.ci_low == df.value).all() and (df.ci_high == df.value).all()
    layers = list(df[df.figure == "fig06"].layer)
    assert layers == ["l1", "head"]
    order = [findings.ARCH_ORDER.index(a) for a in df[df.figure == "fig07"].arch]
    assert order == sorted(order)


def test_render_deterministic(tmp_path):
    parts = _all()
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    df = render(*parts.values(), a, data="synthetic", seed=5, n_boot=300)
    shuffled = {k: v.sample(frac=1.0, random_state=0) for k, v in parts.items()}
    render(*shuffled.values(), b, data="synthetic", seed=5, n_boot=300)
    assert a.read_bytes() == b.read_bytes()
    assert list(pd.read_csv(a).columns) == COLUMNS
    assert len(pd.read_csv(a)) == len(df)
    assert ((df.ci_low <= df.value) & (df.value <= df.ci_high)).all()
