"""The paper's claims restated as measured numbers (issue 11 "Findings",
docs/spec/analyses.md §4 item 3).

Inputs are the tables of the figure modules (their `compute` / summary DataFrames, never files):
variance = fig04 (one row per neuron and grouping, v), pixels = fig06 (pixels per neuron),
npp = fig07 (one row per neurons-per-pixel heat map: mean, std, cv), shares = fig08.kind_shares
(share per kind thing/stuff/other per frame), motion = fig09 (per pair and layer Spearman of Δ_t
with |flow| and with |I_t − I_{t−1}|), clusters = the trust table of the neuron clusters
(`xinc.cluster.layer.TRUST_COLUMNS`, one row per cluster). An empty (or None) table drops its
claims.

The unit of replication is one (dataset, video, seed) model. Per unit, architecture and layer one
value is computed: on the unit's key frame (its earliest frame present) for Figs 4, 6 and 7, as
the mean over the analysed frames for Fig 8 and over the pairs for Fig 9. The clusters pool the
seeds, so there the unit is (dataset, video, seed set): its layer-wide measures. Per (arch, layer,
statistic) the table holds the mean over units, a seeded percentile bootstrap interval of that
mean (a fresh ``np.random.default_rng(seed)`` per row, `n_boot` resamples of the units with
replacement; one unit gives [value, value]) and n, the number of units whose value is finite
(units with an undefined value, e.g. a zero median gridcell variance, are left out of n).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from xinc.intermediate import read_intermediate
from xinc.io import save_table
from xinc.plots import StatsInput
from xinc.stats.spread import gini

__all__ = ["CLAIMS", "COLUMNS", "bootstrap_mean", "compute", "findings_from_files", "render",
           "write_findings"]

COLUMNS = ["claim", "figure", "arch", "layer", "statistic", "value", "ci_low", "ci_high", "n",
           "data"]

UNIT = ["dataset", "video", "seed"]
CLAIMS = {
    "fig04": "Neurons organise by instances, colour and texture, not space",
    "fig06": "Representation is distributed: some neurons serve many pixels, others few",
    "fig07": "FFN pixels are served by similar numbers of neurons, NeRV's vary widely",
    "fig08": "No high-level object semantics; things vs stuff",
    "fig09": "Contribution change is dominated by motion",
    "fig10": "Clusters mix seeds: models of different seeds learn shared neuron types",
}
ARCH_ORDER = ("ffn", "nerv", "nerv-ffn", "joint")
LAYER_ORDER = ("l1", "l2", "l3", "head", "b3", "b2", "b1", "all")
GROUPINGS = ("instances", "rgb", "gabor")
GRIDS = ("grid_lattice", "grid_contiguous")
KINDS = ("thing", "stuff", "other")
COMPARED = "nerv-ffn"

_REQUIRED = {
    "variance": [*UNIT, "arch", "layer", "frame", "grouping", "v"],
    "pixels": [*UNIT, "arch", "layer", "frame", "pixels"],
    "npp": [*UNIT, "arch", "layer", "frame", "area", "cv"],
    "shares": [*UNIT, "arch", "layer", "frame", "kind", "share"],
    "motion": [*UNIT, "layer", "spearman_flow", "spearman_diff"],
    "clusters": ["dataset", "video", "seed_set", "arch", "layer", "mixing_of", "layer_mixing",
                 "layer_null_mixing", "layer_stability_ari_mean", "layer_ari_umap_raw"],
}
#: Findings of the clusters: statistic → trust-table column (mixing over seeds; a joint
#: FFN + NeRV embedding gives arch_mixing instead).
CLUSTER_STATS = {"seed_mixing": "layer_mixing", "seed_mixing_untrained": "layer_null_mixing",
                 "stability_ari": "layer_stability_ari_mean", "ari_umap_raw": "layer_ari_umap_raw"}


def bootstrap_mean(values: Sequence[float] | np.ndarray, *, seed: int = 0, n_boot: int = 1000,
                   level: float = 0.95) -> tuple[float, float, float]:
    """(mean, ci_low, ci_high): percentile bootstrap of the mean of `values` with
    ``np.random.default_rng(seed)`` and `n_boot` resamples with replacement; one value gives
    the degenerate interval [value, value]."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise ValueError("bootstrap_mean needs at least one value")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), not {level}")
    mean = float(v.mean())
    if v.size == 1:
        return mean, mean, mean
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(axis=1)
    alpha = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(means, [alpha, 100.0 - alpha])
    return mean, float(low), float(high)


def _present(name: str, df: pd.DataFrame | None) -> bool:
    """True when `df` has rows; raises when it has rows but lacks a required column."""
    if df is None or df.empty:
        return False
    missing = [c for c in _REQUIRED[name] if c not in df.columns]
    if missing:
        raise ValueError(f"findings: the {name} table lacks the columns {missing}")
    return True


def _key_frame(df: pd.DataFrame) -> pd.DataFrame:
    """The rows at the earliest frame of each (unit, arch, layer)."""
    first = df.groupby([*UNIT, "arch", "layer"], sort=False)["frame"].transform("min")
    return df[df["frame"] == first]


def _long(wide: pd.DataFrame, stats: Sequence[str]) -> pd.DataFrame:
    """Per-unit values in long form (UNIT, arch, layer, statistic, unit_value, stat_rank)."""
    wide = wide.reset_index()
    parts = [wide[[*UNIT, "arch", "layer"]].assign(statistic=s, unit_value=wide[s], stat_rank=i)
             for i, s in enumerate(stats) if s in wide.columns]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _variance_units(variance: pd.DataFrame) -> pd.DataFrame:
    """Fig 4: median v(grouping) / median v(gridcells) per unit and layer, per grid variant."""
    med = (_key_frame(variance).groupby([*UNIT, "arch", "layer", "grouping"])["v"].median()
           .unstack("grouping"))
    stats = []
    for grid in GRIDS:
        for g in GROUPINGS:
            if grid in med.columns and g in med.columns:
                name = f"ratio_{g}_to_{grid}"
                with np.errstate(divide="ignore", invalid="ignore"):
                    med[name] = med[g].to_numpy(np.float64) / med[grid].to_numpy(np.float64)
                stats.append(name)
    return _long(med, stats)


def _pixels_units(pixels: pd.DataFrame) -> pd.DataFrame:
    """Fig 6: Gini of the pixels-per-neuron counts per unit and layer (key frame)."""
    g = (_key_frame(pixels).groupby([*UNIT, "arch", "layer"])["pixels"].apply(gini)
         .rename("gini_pixels_per_neuron").to_frame())
    return _long(g, ["gini_pixels_per_neuron"])


def _area_name(area: float) -> str:
    return f"cv_npp_{round(float(area) * 100):d}"


def _npp_units(npp: pd.DataFrame) -> pd.DataFrame:
    """Fig 7: CV of neurons per pixel per unit, layer and area; plus, per unit and area, the
    mean CV over NeRV layers minus the mean CV over FFN layers (arch 'nerv-ffn', layer 'all')."""
    df = _key_frame(npp).assign(stat=lambda d: d["area"].map(_area_name))
    stats = [_area_name(a) for a in sorted(df["area"].astype(float).unique())]
    cv = df.pivot_table(index=[*UNIT, "arch", "layer"], columns="stat", values="cv",
                        aggfunc="mean")
    per_arch = df[np.isfinite(df["cv"].astype(float))].pivot_table(
        index=UNIT, columns=["stat", "arch"], values="cv", aggfunc="mean")
    diff = {}
    for s in stats:
        if (s, "nerv") in per_arch.columns and (s, "ffn") in per_arch.columns:
            diff[s] = per_arch[(s, "nerv")] - per_arch[(s, "ffn")]
    parts = [_long(cv, stats)]
    if diff:
        comp = pd.DataFrame(diff).assign(arch=COMPARED, layer="all")
        parts.append(_long(comp.set_index(["arch", "layer"], append=True), stats))
    return pd.concat(parts, ignore_index=True)


def _shares_units(shares: pd.DataFrame) -> pd.DataFrame:
    """Fig 8: per unit and layer, the mean over its frames of the share of total contribution
    going to things, stuff and other (a kind missing at a frame has share 0 there)."""
    df = shares[shares["kind"].isin(KINDS) & shares["share"].notna()]
    per_frame = (df.pivot_table(index=[*UNIT, "arch", "layer", "frame"], columns="kind",
                                values="share", aggfunc="sum")
                 .reindex(columns=list(KINDS)).fillna(0.0))
    mean = per_frame.groupby(level=[*UNIT, "arch", "layer"]).mean()
    mean.columns = [f"share_{k}" for k in mean.columns]
    return _long(mean, [f"share_{k}" for k in KINDS])


def _motion_units(motion: pd.DataFrame) -> pd.DataFrame:
    """Fig 9: per unit and NeRV layer, the mean over pairs of Spearman(Δ_t, |flow|), of
    Spearman(Δ_t, frame difference) and of their difference (pairs where it is defined)."""
    df = motion.assign(spearman_flow_minus_diff=motion["spearman_flow"] - motion["spearman_diff"])
    if "arch" not in df.columns:
        df = df.assign(arch="nerv")
    stats = ["spearman_flow", "spearman_diff", "spearman_flow_minus_diff"]
    mean = df.groupby([*UNIT, "arch", "layer"])[stats].mean()
    return _long(mean, stats)


def _clusters_units(clusters: pd.DataFrame) -> pd.DataFrame:
    """Fig 10: per (dataset, video, seed set) and layer of a clustering of two seeds or more,
    its seed mixing, that of the untrained models, the stability ARI and the ARI between the
    embedding's and the raw vectors' clusters; for a joint embedding, its mixing over arch."""
    layers = clusters.drop_duplicates(["dataset", "video", "seed_set", "arch", "layer"])
    layers = layers.assign(seed=layers["seed_set"].astype(str))
    parts = []
    seeds = layers[(layers["mixing_of"] == "seed") & layers["seed"].str.contains(" ")]
    if len(seeds):
        wide = seeds.set_index([*UNIT, "arch", "layer"])[list(CLUSTER_STATS.values())]
        parts.append(_long(wide.set_axis(list(CLUSTER_STATS), axis=1), list(CLUSTER_STATS)))
    joint = layers[layers["mixing_of"] == "arch"]
    if len(joint):
        wide = joint.set_index([*UNIT, "arch", "layer"])[["layer_mixing"]]
        parts.append(_long(wide.set_axis(["arch_mixing"], axis=1), ["arch_mixing"]))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _summarise(units: pd.DataFrame, figure: str, *, data: str, seed: int, n_boot: int,
               level: float) -> list[dict]:
    """One row per (arch, layer, statistic) of per-unit values: mean, bootstrap CI, n."""
    if units.empty:
        return []
    units = units[np.isfinite(units["unit_value"].astype(float))].sort_values(UNIT, kind="stable")
    rows = []
    for (arch, layer, stat), grp in units.groupby(["arch", "layer", "statistic"], sort=False):
        value, low, high = bootstrap_mean(grp["unit_value"], seed=seed, n_boot=n_boot,
                                          level=level)
        rows.append({"claim": CLAIMS[figure], "figure": figure, "arch": arch, "layer": layer,
                     "statistic": stat, "value": value, "ci_low": low, "ci_high": high,
                     "n": int(grp.shape[0]), "data": data,
                     "_rank": int(grp["stat_rank"].iloc[0])})
    return rows


def _order(row: dict) -> tuple:
    """Figure, architecture (ffn, nerv, nerv-ffn), layer (l1 l2 l3 head b3 b2 b1 all), statistic."""
    def rank(value: str, order: Sequence[str]) -> tuple[int, str]:
        return (order.index(value), "") if value in order else (len(order), str(value))
    return (list(CLAIMS).index(row["figure"]), rank(row["arch"], ARCH_ORDER),
            rank(row["layer"], LAYER_ORDER), row["_rank"], row["statistic"])


def compute(variance: pd.DataFrame | None, pixels: pd.DataFrame | None,
            npp: pd.DataFrame | None, shares: pd.DataFrame | None,
            motion: pd.DataFrame | None, *, data: str, seed: int = 0, n_boot: int = 1000,
            level: float = 0.95, clusters: pd.DataFrame | None = None) -> pd.DataFrame:
    """The findings table (columns :data:`COLUMNS`), rows in a fixed order; see the module
    docstring for units, key frames and the bootstrap."""
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, not {n_boot}")
    tables = {"fig04": ("variance", variance, _variance_units),
              "fig06": ("pixels", pixels, _pixels_units),
              "fig07": ("npp", npp, _npp_units),
              "fig08": ("shares", shares, _shares_units),
              "fig09": ("motion", motion, _motion_units),
              "fig10": ("clusters", clusters, _clusters_units)}
    rows: list[dict] = []
    for figure, (name, df, units) in tables.items():
        if _present(name, df):
            rows += _summarise(units(df), figure, data=data, seed=seed, n_boot=n_boot,
                               level=level)
    rows.sort(key=_order)
    out = pd.DataFrame(rows, columns=[*COLUMNS, "_rank"]).drop(columns="_rank")
    return out.astype({"n": "int64"})


def write_findings(path: str | Path, df: pd.DataFrame) -> Path:
    """Write the findings table atomically (columns :data:`COLUMNS`)."""
    return save_table(df[COLUMNS], path)


def render(variance: pd.DataFrame | None, pixels: pd.DataFrame | None,
           npp: pd.DataFrame | None, shares: pd.DataFrame | None,
           motion: pd.DataFrame | None, csv_path: str | Path, *, data: str, seed: int = 0,
           n_boot: int = 1000, level: float = 0.95,
           clusters: pd.DataFrame | None = None) -> pd.DataFrame:
    """compute → write_findings(csv_path); returns the table."""
    df = compute(variance, pixels, npp, shares, motion, data=data, seed=seed, n_boot=n_boot,
                 level=level, clusters=clusters)
    write_findings(csv_path, df)
    return df


def findings_from_files(stats: Sequence[StatsInput], nerv_stats: Sequence[StatsInput],
                        tables: Mapping[tuple, str | Path], pairs: Sequence[str | Path],
                        flows: Mapping[tuple, str | Path], frames: Mapping[tuple, str | Path],
                        csv_path: str | Path, *, grid: str, delta: str, other: str, data: str,
                        seed: int = 0, n_boot: int = 1000,
                        clusters: str | Path | None = None,
                        masked: Collection[tuple[str, str]] | None = None) -> pd.DataFrame:
    """Rule findings: the figure modules' tables over every unit, then :func:`render`.

    `stats`: every model at its key frame, every layer; `nerv_stats`: every NeRV at every
    analysed frame; `tables`: (dataset, video) → instance table; `pairs`, `flows`, `frames`:
    the contribution changes, (dataset, video, t) → flow and (dataset, video) → frames of Fig 9;
    `clusters`: the clusters' trust table (results/<run>/tables/clusters.csv). `masked`: the
    (dataset, video) pairs that have panoptic masks (None: all); the instance-based claims
    (Figs 4 and 8) are measured on those only.
    """
    from xinc.plots import fig04, fig06, fig07, fig08, fig09

    def with_masks(items: Sequence[StatsInput]) -> list[StatsInput]:
        return [s for s in items if masked is None or (s.dataset, s.video) in masked]

    ffn_key = [item for item in with_masks(stats) if item.arch == "ffn"]
    instance_stats = with_masks(stats)
    return render(
        fig04.compute(instance_stats, grid=grid, delta=delta, other=other)
        if instance_stats else None,
        fig06.compute(stats),
        fig07.compute(stats),
        fig08.kind_shares([*ffn_key, *with_masks(nerv_stats)], tables, other=other)
        if instance_stats else None,
        fig09.compute(pairs, flows, frames) if pairs else None,
        csv_path, data=data, seed=seed, n_boot=n_boot,
        clusters=read_intermediate(clusters, pd.read_csv) if clusters else None)
