"""Fig 8 (main) / Fig 19 (supp): contributions to objects, things and stuff, and over time.

docs/method.md §8.6 "Instance mean", §10 Fig 8, B9, B13, B14, B15, B20. Segments
are the instance grouping of the statistics (`group_sums_instances`, `areas_instances`,
`instances_ids`), "other" as `other` says (`xinc.stats.instance_view`: 'complement' = the void
pixels, 'union' = the authors' union of all masks), named by the video's instance table
(`xinc.instances`: stable track, category, thing/stuff). m_{n,s} = S_{n,s} / A_s.

- FFN panel (one per dataset, video, seed, frame): per layer, m normalised per neuron over the
  frame's segments (Σ_s = 1); neurons whose m are all zero are dropped and counted; `ffn_neurons`
  alive neurons per layer are drawn with `np.random.default_rng(seed)` without replacement. One
  marker per (neuron, segment), colour = category, marker = instance number; zeros not drawn.
- NeRV panel (one row per dataset, video, seed, layer; one axes per sampled neuron): m_{n,s,t}
  per track over the analysed frames, 0 where the track is absent, normalised over the whole
  video (Σ_t Σ_s = 1); neurons with no contribution to any segment over the video are dropped
  and counted (the authors' 0/0); `nerv_neurons` drawn as above. One line per track over time,
  colour = category, line style = instance number; zeros masked.
- At most 3 tracks per thing category are shown: the largest by area (summed over the panel's
  frames; ties in track order). The normalisation covers every segment, shown or not.
- Kind shares (:func:`kind_shares`, per input): the share of the layer's total contribution
  Σ_n S_{n,s} going to thing, stuff and "other" segments (sums to 1 over the kinds; with
  other='union' the "other" overlaps every segment and gets exactly 1/2). Drawn as stacked bars.

CSV (one row per drawn value): dataset, video, arch, layer, seed, frame, neuron_id, track,
category, kind, share (zeros kept, not drawn), dead (neurons dropped in that panel). Summary CSV:
:data:`KIND_COLUMNS`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from xinc.instances import OTHER_ID, read_instance_table
from xinc.plots import StatsInput, as_inputs, read_stats
from xinc.plots.style import (
    arch_label,
    figure_style,
    layer_label,
    new_figure,
    save_figure,
    save_table,
)
from xinc.stats import instance_view

__all__ = ["COLUMNS", "KIND_COLUMNS", "KINDS", "compute", "draw", "kind_shares", "render"]

COLUMNS = ["dataset", "video", "arch", "layer", "seed", "frame", "neuron_id", "track",
           "category", "kind", "share", "dead"]
KIND_COLUMNS = ["dataset", "video", "arch", "layer", "seed", "frame", "kind", "share"]
KINDS = ("thing", "stuff", "other")
MAX_INSTANCES = 3
_MARKERS = ("o", "s", "^")
_STYLES = ("-", "--", ":")
_KIND_COLORS = {"thing": "#c44e52", "stuff": "#4c72b0", "other": "#8c8c8c"}
Tables = Mapping[tuple[str, str], str | Path]


class _Segments:
    """Instance tables by (dataset, video), read once; segment names of one statistics file."""

    def __init__(self, tables: Tables, other: str) -> None:
        self.tables, self.other, self._read = tables, other, {}

    def table(self, item: StatsInput) -> pd.DataFrame:
        key = (item.dataset, item.video)
        if key not in self.tables:
            raise ValueError(f"no instance table for {key} ({item.path}); add it to the tables")
        if key not in self._read:
            self._read[key] = read_instance_table(self.tables[key])
        return self._read[key]

    def load(self, item: StatsInput) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
        """(sums [N, S], areas [S], segments: pan_id, track, category, kind per column)."""
        st = read_stats(item.path, ("group_sums_instances", "areas_instances", "instances_ids"))
        if "group_sums_instances" not in st or "instances_ids" not in st:
            raise ValueError(f"{item.path}: no instance grouping with instances_ids; rerun the "
                             "canvas_stats_* rules (statistics written before instances_ids "
                             "existed)")
        sums, areas, ids = instance_view(st["group_sums_instances"], st["areas_instances"],
                                         st["instances_ids"], self.other)
        table = self.table(item)
        rows = table[table["frame"] == item.frame].set_index("pan_id")
        if rows.empty:
            raise ValueError(f"{item.path}: frame {item.frame} is not in the instance table "
                             f"{self.tables[(item.dataset, item.video)]}; build the table from "
                             "the statistics of every frame the figure shows")
        known = set(rows.index) - {OTHER_ID}
        if set(ids.tolist()) - {OTHER_ID} != known:
            raise ValueError(f"{item.path}: its segments {sorted(set(ids.tolist()))} are not "
                             f"the instance table's for frame {item.frame} "
                             f"({self.tables[(item.dataset, item.video)]}); rebuild the table")
        seg = pd.DataFrame({"pan_id": ids, "area": areas})
        other = {"track": "other", "category": "other", "kind": "other"}
        for key in ("track", "category", "kind"):
            seg[key] = [other[key] if p == OTHER_ID else rows.at[p, key] for p in ids.tolist()]
        return sums, areas, seg


def kind_shares(inputs: Sequence[StatsInput | str | Path], tables: Tables, *,
                other: str = "complement") -> pd.DataFrame:
    """Per input and kind, the share of Σ_n S_{n,s} over the segments of that kind
    (:data:`KIND_COLUMNS`; NaN when the layer contributes nothing)."""
    segments = _Segments(tables, other)
    rows = []
    for item in as_inputs(inputs):
        sums, _, seg = segments.load(item)
        per_column = sums.sum(axis=0)
        total = per_column.sum()
        for kind in KINDS:
            part = per_column[(seg["kind"] == kind).to_numpy()].sum()
            rows.append({**item.labels(), "kind": kind,
                         "share": part / total if total > 0 else np.nan})
    return pd.DataFrame.from_records(rows, columns=KIND_COLUMNS)


def _shown(seg: pd.DataFrame) -> list[str]:
    """Tracks to draw: every stuff and "other" track, ≤ MAX_INSTANCES per thing category
    (largest total area, ties in track order); sorted by name, "other" last."""
    area = seg.groupby(["track", "category", "kind"], sort=True)["area"].sum().reset_index()
    things = area[area["kind"] == "thing"].sort_values(["area", "track"], ascending=[False, True],
                                                       kind="stable")
    keep = set(things.groupby("category", sort=False).head(MAX_INSTANCES)["track"])
    keep |= set(area.loc[area["kind"] != "thing", "track"])
    return sorted(keep, key=lambda t: (t == "other", t))


def _means(sums: np.ndarray, areas: np.ndarray) -> np.ndarray:
    """m_{n,s} = S_{n,s} / A_s (0 for an empty segment: a union "other" of no segments)."""
    areas = np.broadcast_to(np.asarray(areas, dtype=np.float64), sums.shape)
    return np.divide(sums, areas, out=np.zeros(sums.shape), where=areas > 0)


def _sample(alive: np.ndarray, k: int, seed: int) -> np.ndarray:
    ids = np.flatnonzero(alive)
    pick = np.random.default_rng(seed).choice(ids, size=min(k, ids.size), replace=False)
    return np.sort(pick)


def _ffn_rows(item: StatsInput, segments: _Segments, k: int, seed: int) -> list[dict]:
    sums, areas, seg = segments.load(item)
    means = _means(sums, areas)
    row = means.sum(axis=1)
    alive = row > 0
    if not alive.any():
        raise ValueError(f"{item.path}: every neuron is dead (no contribution to any segment)")
    share = means / np.where(alive, row, 1.0)[:, None]
    dead = int((~alive).sum())
    columns = [(j, s) for s in _shown(seg) for j in np.flatnonzero(seg["track"] == s)]
    return [{**item.labels(), "neuron_id": int(n), "track": s,
             "category": seg.at[j, "category"], "kind": seg.at[j, "kind"],
             "share": float(share[n, j]), "dead": dead}
            for n in _sample(alive, k, seed) for j, s in columns]


def _nerv_rows(items: list[StatsInput], segments: _Segments, k: int, seed: int) -> list[dict]:
    items = sorted(items, key=lambda x: x.frame)
    loaded = [segments.load(item) for item in items]
    if len({s.shape[0] for s, _, _ in loaded}) != 1:
        raise ValueError(f"{items[0].path} …: the frames of one layer differ in neuron count")
    seg = pd.concat([s for _, _, s in loaded], ignore_index=True)
    tracks = _shown(seg)
    info = seg.drop_duplicates("track").set_index("track")
    m = np.zeros((loaded[0][0].shape[0], len(tracks), len(items)))
    for t, (sums, areas, frame_seg) in enumerate(loaded):
        means = _means(sums, areas)
        for i, track in enumerate(tracks):
            cols = np.flatnonzero(frame_seg["track"] == track)
            m[:, i, t] = means[:, cols].sum(axis=1)  # 0 where the track is absent
    totals = sum(_means(s, a).sum(axis=1) for s, a, _ in loaded)  # every segment
    alive = totals > 0
    if not alive.any():
        raise ValueError(f"{items[0].path} …: every neuron is dead over the video")
    norm = np.where(alive, totals, 1.0)
    dead = int((~alive).sum())
    return [{**item.labels(), "neuron_id": int(n), "track": track,
             "category": info.at[track, "category"], "kind": info.at[track, "kind"],
             "share": float(m[n, i, t] / norm[n]), "dead": dead}
            for n in _sample(alive, k, seed) for i, track in enumerate(tracks)
            for t, item in enumerate(items)]


def compute(ffn_inputs: Sequence[StatsInput | str | Path],
            nerv_inputs: Sequence[StatsInput | str | Path], tables: Tables, *,
            ffn_neurons: int = 3, nerv_neurons: int = 4, seed: int = 0,
            other: str = "complement") -> pd.DataFrame:
    """The drawn shares (:data:`COLUMNS`): FFN rows first, then NeRV, in input order."""
    segments = _Segments(tables, other)
    ffn, nerv = as_inputs(ffn_inputs), as_inputs(nerv_inputs)
    if not ffn and not nerv:
        raise ValueError("fig08 needs FFN or NeRV statistics inputs")
    for items, arch in ((ffn, "ffn"), (nerv, "nerv")):
        wrong = [str(x.path) for x in items if x.arch != arch]
        if wrong:
            raise ValueError(f"fig08 {arch} inputs of another architecture: {wrong}")
    rows = [r for item in ffn for r in _ffn_rows(item, segments, ffn_neurons, seed)]
    by_layer: dict[tuple, list[StatsInput]] = {}
    for item in nerv:
        by_layer.setdefault((item.dataset, item.video, item.seed, item.layer), []).append(item)
    rows += [r for items in by_layer.values()
             for r in _nerv_rows(items, segments, nerv_neurons, seed)]
    return pd.DataFrame.from_records(rows, columns=COLUMNS)


def _palette(df: pd.DataFrame) -> dict[str, tuple]:
    names = sorted(set(df["category"]) - {"other"})
    colors = sns.color_palette("tab10" if len(names) <= 10 else "husl", len(names))
    return {**dict(zip(names, colors, strict=True)), "other": (0.35, 0.35, 0.35)}


def _instance_number(part: pd.DataFrame) -> dict[str, int]:
    """Track → 0, 1, 2 within its category (in track order)."""
    tracks = part.drop_duplicates("track")[["track", "category"]]
    return {t: i for _, g in tracks.groupby("category") for i, t in enumerate(sorted(g["track"]))}


def _ffn_axes(ax, part: pd.DataFrame, colors: dict) -> None:
    numbers = _instance_number(part)
    ticks, labels, previous = [], [], None
    for x, ((layer, n), g) in enumerate(part.groupby(["layer", "neuron_id"], sort=False)):
        ticks.append(x)
        labels.append(f"{layer_label('ffn', layer).split()[-1]} #{n}")
        if previous is not None and layer != previous:
            ax.axvline(x - 0.5, color="0.6", linewidth=0.6)
        previous = layer
        step = min(0.7 / len(g), 0.12)  # segments side by side within the neuron's slot
        g = g.assign(x=x + (np.arange(len(g)) - (len(g) - 1) / 2) * step,
                     marker=[_MARKERS[numbers[t] % len(_MARKERS)] for t in g["track"]])
        for marker, pts in g[g["share"] > 0].groupby("marker", sort=True):
            ax.scatter(pts["x"], pts["share"], s=14, linewidths=0, marker=marker,
                       color=[colors[c] for c in pts["category"]])
    ax.set_xticks(ticks, labels, rotation=90, fontsize=6)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("layer, sampled neuron")
    ax.set_ylabel("share of the neuron's mean |C|")
    first = part.iloc[0]
    ax.set_title(f"FFN · {first['video']} · f{first['frame']} · s{first['seed']}\n"
                 f"dead dropped per layer: " + ", ".join(
                     f"{lay} {d}" for lay, d in part.groupby("layer", sort=False)["dead"].first()
                     .items()), fontsize=7)


def _nerv_axes(axes, part: pd.DataFrame, colors: dict) -> None:
    numbers = _instance_number(part)
    first = part.iloc[0]
    for ax, (n, g) in zip(axes, part.groupby("neuron_id", sort=False), strict=False):
        for track, line in g.groupby("track", sort=False):
            y = line["share"].to_numpy(dtype=np.float64)
            ax.plot(line["frame"], np.where(y > 0, y, np.nan), marker=".", markersize=3,
                    color=colors[line["category"].iloc[0]],
                    linestyle=_STYLES[numbers[track] % len(_STYLES)])
        ax.set_title(f"{layer_label('nerv', first['layer'])} #{n}", fontsize=7)
        ax.set_xlabel("frame")
        ax.set_ylabel("share (Σ over video = 1)")
    axes[0].set_title(f"{first['video']} · s{first['seed']} · dead {first['dead']}\n"
                      f"{axes[0].get_title()}", fontsize=7)


def _kind_axes(ax, part: pd.DataFrame, legend: bool) -> None:
    wide = part.pivot_table(index=["layer", "frame"], columns="kind", values="share",
                            sort=False).reindex(columns=list(KINDS))
    x = np.arange(len(wide))
    bottom = np.zeros(len(wide))
    for kind in KINDS:
        values = wide[kind].fillna(0).to_numpy()
        ax.bar(x, values, bottom=bottom, color=_KIND_COLORS[kind], label=kind, width=0.8)
        bottom += values
    ax.set_xticks(x, [f"{layer_label(part['arch'].iloc[0], lay).split()[-1]} f{f}"
                      for lay, f in wide.index], rotation=90, fontsize=6)
    ax.set_xlabel("layer, frame")
    ax.set_ylabel("share of the layer's Σ|C|")
    ax.set_ylim(0, 1)
    first = part.iloc[0]
    ax.set_title(f"{arch_label(first['arch'])} · {first['video']} · "
                 f"s{first['seed']}: things / stuff / other", fontsize=7)
    if legend:
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=6)


def _panel_grid(subfig, n: int, ncols: int) -> list:
    """`n` axes in rows of `ncols` (the unused ones switched off)."""
    axes = subfig.subplots(-(-n // ncols), ncols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_axis_off()
    return list(axes[:n])


def _legend(subfig, df: pd.DataFrame, colors: Mapping[str, tuple]) -> None:
    handles = [Line2D([], [], color=c, marker="o", linestyle="-", label=name)
               for name, c in colors.items() if name in set(df["category"])]
    handles += [Line2D([], [], color="0.2", marker=_MARKERS[i], linestyle=_STYLES[i],
                       label=f"instance {i + 1} of a category") for i in range(MAX_INSTANCES)]
    subfig.legend(handles=handles, loc="outside right upper", fontsize=6)


def draw(df: pd.DataFrame, shares: pd.DataFrame | None = None, *, max_cols: int = 4,
         title: str | None = None) -> Figure:
    """FFN scatter panels, NeRV lines over time (one row per layer) and the kind-share bars of
    `shares`; FFN and kind panels wrap after `max_cols` columns."""
    ffn, nerv = df[df["arch"] == "ffn"], df[df["arch"] != "ffn"]
    ffn_groups = list(ffn.groupby(["dataset", "video", "seed", "frame"], sort=False))
    nerv_groups = list(nerv.groupby(["dataset", "video", "seed", "layer"], sort=False))
    kind_groups = ([] if shares is None or shares.empty else
                   list(shares.groupby(["dataset", "video", "arch", "seed"], sort=False)))
    ncols = max(min(max_cols, max(len(ffn_groups), len(kind_groups))),
                max((g["neuron_id"].nunique() for _, g in nerv_groups), default=0), 1)
    rows = [-(-len(ffn_groups) // ncols), len(nerv_groups), -(-len(kind_groups) // ncols)]
    heights = [h for h in rows if h]
    fig = new_figure(2.6 * ncols + 1.6, 2.3 * sum(heights) + 0.6)
    subfigs = fig.subfigures(len(heights), 1, height_ratios=heights, squeeze=False)[:, 0]
    subs = iter(subfigs)
    colors = _palette(df)
    if ffn_groups:
        sub = next(subs)
        for ax, (_, part) in zip(_panel_grid(sub, len(ffn_groups), ncols), ffn_groups,
                                 strict=True):
            _ffn_axes(ax, part, colors)
    if nerv_groups:
        grid = next(subs).subplots(len(nerv_groups), ncols, squeeze=False)
        for axes, (_, part) in zip(grid, nerv_groups, strict=True):
            used = part["neuron_id"].nunique()
            _nerv_axes(axes[:used], part, colors)
            for ax in axes[used:]:
                ax.set_axis_off()
    if kind_groups:
        axes = _panel_grid(next(subs), len(kind_groups), ncols)
        for i, (ax, (_, part)) in enumerate(zip(axes, kind_groups, strict=True)):
            _kind_axes(ax, part, legend=i == len(kind_groups) - 1)
    if len(df):
        _legend(subfigs[0], df, colors)
    fig.suptitle(title if title is not None else
                 "Contributions to segments: objects, things and stuff (and over time for NeRV)")
    return fig


def render(ffn_inputs: Sequence[StatsInput | str | Path],
           nerv_inputs: Sequence[StatsInput | str | Path], tables: Tables,
           png_path: str | Path, csv_path: str | Path, *,
           summary_csv: str | Path | None = None, ffn_neurons: int = 3, nerv_neurons: int = 4,
           seed: int = 0, other: str = "complement", title: str | None = None,
           dpi: float | None = None) -> pd.DataFrame:
    """compute → CSV, kind_shares → `summary_csv`, draw → PNG; returns the CSV table."""
    table = compute(ffn_inputs, nerv_inputs, tables, ffn_neurons=ffn_neurons,
                    nerv_neurons=nerv_neurons, seed=seed, other=other)
    shares = kind_shares([*as_inputs(ffn_inputs), *as_inputs(nerv_inputs)], tables, other=other)
    save_table(table, csv_path)
    if summary_csv is not None:
        save_table(shares, summary_csv)
    with figure_style():
        save_figure(draw(table, shares, title=title), png_path, dpi=dpi)
    return table

