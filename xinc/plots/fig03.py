"""Fig 3 (main) / Fig 11 (supp): contribution maps of sample neurons (docs/method.md §10, Fig 3).

One row per input (one layer of one frame of one model): the first `max_neurons` of the stored
seeded sample (`sample_ids`, `sample_maps`), each drawn as |C| min-max normalised per neuron with
the magma colormap. Fig 11 is the same render on the first layers (FFN L1, NeRV B1). A dead
sampled neuron (`alive` False, or its stored float16 map all zero) is drawn black and marked
"dead" in its panel.

CSV (one row per drawn map): dataset, video, arch, layer, seed, frame, panel, neuron_id, min, max,
mean, dead, source, where min/max/mean are of |C| over the map before normalisation (so the drawn
image is (|C| - min) / (max - min), all zeros when max == min) and source is the statistics file
the map is re-read from (its `sample_maps` row of `neuron_id`).

The sample-map helpers here (`read_samples`, `sample_maps`, `sample_table`) are shared by the other
map figures (fig01, fig05, fig07).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from xinc.plots import StatsInput, as_inputs, read_stats
from xinc.plots.style import (
    CMAP,
    MAP_PANEL,
    bare_axis,
    figure_style,
    layer_label,
    mark_dead,
    minmax,
    new_figure,
    save_figure,
    save_table,
)

__all__ = ["COLUMNS", "compute", "draw", "read_samples",
           "render", "sample_maps", "sample_table"]

IDS = ["dataset", "video", "arch", "layer", "seed", "frame"]
COLUMNS = [*IDS, "panel", "neuron_id", "min", "max", "mean", "dead", "source"]

DEFAULT_TITLE = "Contribution maps of sample neurons (|C|, min-max per neuron)"


def read_samples(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(sample_ids int64 [k], sample_maps [k, H, W] as stored, alive bool [N] or None)."""
    st = read_stats(path, ("sample_ids", "sample_maps", "alive"))
    ids = np.asarray(st.get("sample_ids", np.zeros(0, np.int64)), dtype=np.int64)
    maps = st.get("sample_maps")
    if maps is None or ids.size == 0:
        return np.zeros(0, np.int64), np.zeros((0, 1, 1), np.float16), st.get("alive")
    if maps.shape[0] != ids.shape[0]:
        raise ValueError(f"{path}: {ids.shape[0]} sample_ids but {maps.shape[0]} sample_maps")
    return ids, maps, st.get("alive")


def sample_table(inputs: Sequence[StatsInput | str | Path], max_neurons: int) -> pd.DataFrame:
    """One row per map of the first `max_neurons` stored samples of every input
    (:data:`COLUMNS`)."""
    if max_neurons < 1:
        raise ValueError("max_neurons must be at least 1")
    records: list[dict] = []
    for item in as_inputs(inputs):
        ids, maps, alive = read_samples(item.path)
        for c, (nid, m) in enumerate(zip(ids[:max_neurons], maps[:max_neurons], strict=True)):
            a = np.abs(m.astype(np.float64))
            dead = bool(not a.any() or (alive is not None and not alive[int(nid)]))
            records.append({**item.labels(), "panel": c, "neuron_id": int(nid),
                            "min": float(a.min()), "max": float(a.max()), "mean": float(a.mean()),
                            "dead": dead, "source": str(item.path)})
    return pd.DataFrame.from_records(records, columns=COLUMNS)


def compute(inputs: Sequence[StatsInput | str | Path], *, max_neurons: int = 6) -> pd.DataFrame:
    """The drawn maps' summary rows (:data:`COLUMNS`)."""
    items = as_inputs(inputs)
    if not items:
        raise ValueError("fig03 needs at least one statistics input")
    return sample_table(items, max_neurons)


def sample_maps(df: pd.DataFrame) -> dict[str, dict[int, np.ndarray]]:
    """{source: {neuron_id: |C| float64 [H, W]}} for the rows of `df` (each file read once)."""
    out: dict[str, dict[int, np.ndarray]] = {}
    for source, part in df.groupby("source", sort=False):
        ids, maps, _ = read_samples(source)
        index = {int(n): i for i, n in enumerate(ids)}
        out[str(source)] = {int(n): np.abs(maps[index[int(n)]].astype(np.float64))
                            for n in part["neuron_id"]}
    return out


def _row_label(item: StatsInput) -> str:
    """Dataset, video and frame/seed on separate lines (the layer is in each panel title)."""
    frame_seed = " · ".join(p for p in (f"f{item.frame}" if item.frame is not None else "",
                                         f"s{item.seed}" if item.seed is not None else "") if p)
    return "\n".join(p for p in (item.dataset, item.video, frame_seed) if p)


def _rows(df: pd.DataFrame, inputs: Sequence[StatsInput | str | Path] | None
          ) -> list[tuple[StatsInput, pd.DataFrame]]:
    """(labels, maps) per figure row: every input in order, else every source of `df`."""
    if inputs is not None:
        items = as_inputs(inputs)
    else:
        first = df.drop_duplicates(["source", *IDS])
        items = [StatsInput(Path(r.source), r.dataset, r.video, r.arch, r.layer,
                            None if pd.isna(r.seed) else int(r.seed),
                            None if pd.isna(r.frame) else int(r.frame))
                 for r in first.itertuples(index=False)]
    keys = [tuple(None if pd.isna(v) else v for v in r)
            for r in df[["source", *IDS]].itertuples(index=False)]
    return [(item, df[[k == (str(item.path), *item.labels().values()) for k in keys]])
            for item in items]


def draw(df: pd.DataFrame, inputs: Sequence[StatsInput | str | Path] | None = None, *,
         title: str | None = None) -> Figure:
    """One row per input (or per source of `df`), one panel per row of `df`; a row without
    sampled neurons says so."""
    rows = _rows(df, inputs)
    maps = sample_maps(df)
    ncols = max(1, max((len(part) for _, part in rows), default=1))
    shapes = [m.shape for d in maps.values() for m in d.values()]
    aspect = max((h / w for h, w in shapes), default=0.5)
    with figure_style():
        panel_h = MAP_PANEL[0] * aspect + 0.35
        fig = new_figure(MAP_PANEL[0] * ncols + 0.9, panel_h * max(len(rows), 1) + 0.5)
        axes = fig.subplots(max(len(rows), 1), ncols, squeeze=False)
        image = None
        for ax in axes.ravel():
            bare_axis(ax)
        for r, (item, part) in enumerate(rows):
            if part.empty:
                axes[r, 0].text(0.5, 0.5, "no sampled neurons", ha="center", va="center",
                                transform=axes[r, 0].transAxes)
            for c, row in enumerate(part.itertuples(index=False)):
                ax = axes[r, c]
                image = ax.imshow(minmax(maps[row.source][row.neuron_id]), cmap=CMAP,
                                  vmin=0.0, vmax=1.0, interpolation="nearest")
                ax.set_title(f"{layer_label(item.arch, item.layer)} #{row.neuron_id}", pad=2)
                if row.dead:
                    mark_dead(ax)
            axes[r, 0].set_ylabel(_row_label(item), fontsize=6)
        if image is not None:
            fig.colorbar(image, ax=axes, shrink=0.8, aspect=30, pad=0.01,
                         label="|C| (min-max per neuron)")
        fig.suptitle(title if title is not None else DEFAULT_TITLE)
    return fig


def render(inputs: Sequence[StatsInput | str | Path], png_path: str | Path,
           csv_path: str | Path, *, max_neurons: int = 6, title: str | None = None,
           dpi: float | None = None) -> pd.DataFrame:
    """Draw up to `max_neurons` sample maps per input (one row each); return the CSV table."""
    items = as_inputs(inputs)
    table = compute(items, max_neurons=max_neurons)
    save_table(table, csv_path)
    with figure_style():
        save_figure(draw(table, items, title=title), png_path, dpi=dpi)
    return table
