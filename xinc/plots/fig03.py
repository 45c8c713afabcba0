"""Fig 3 (main) / Fig 11 (supp): contribution maps of sample neurons (analyses.md §1, Fig 3).

One row per input (one layer of one frame of one model): the first `max_neurons` of the stored
seeded sample (`sample_ids`, `sample_maps`), each drawn as |C| min-max normalised per neuron with
the magma colormap. Fig 11 is the same render on the first layers (FFN L1, NeRV B1).

CSV (one row per drawn map): dataset, video, arch, layer, seed, frame, panel, neuron_id, min, max,
mean, where min/max/mean are of |C| over the map before normalisation (so the drawn image is
(|C| - min) / (max - min), all zeros when max == min).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from xinc.plots import StatsInput, as_inputs, read_stats
from xinc.plots.style import (
    CMAP,
    MAP_PANEL,
    figure_style,
    layer_label,
    new_figure,
    save_figure,
    save_table,
)

__all__ = ["COLUMNS", "minmax", "render"]

COLUMNS = ["dataset", "video", "arch", "layer", "seed", "frame", "panel", "neuron_id", "min",
           "max", "mean"]

DEFAULT_TITLE = "Contribution maps of sample neurons (|C|, min-max per neuron)"


def _row_label(item: StatsInput) -> str:
    """Dataset, video and frame/seed on separate lines (the layer is in each panel title)."""
    frame_seed = " · ".join(p for p in (f"f{item.frame}" if item.frame is not None else "",
                                         f"s{item.seed}" if item.seed is not None else "") if p)
    return "\n".join(p for p in (item.dataset, item.video, frame_seed) if p)


def minmax(abs_map: np.ndarray) -> np.ndarray:
    """(x - min) / (max - min) in float64; a constant map gives zeros."""
    x = np.asarray(abs_map, dtype=np.float64)
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def render(inputs: Sequence[StatsInput | str | Path], png_path: str | Path,
           csv_path: str | Path, *, max_neurons: int = 6, title: str | None = None,
           dpi: float | None = None) -> pd.DataFrame:
    """Draw up to `max_neurons` sample maps per input (one row each); return the CSV table."""
    if max_neurons < 1:
        raise ValueError("max_neurons must be at least 1")
    items = as_inputs(inputs)
    if not items:
        raise ValueError("fig03 needs at least one statistics input")

    rows: list[tuple[StatsInput, np.ndarray, np.ndarray]] = []
    for item in items:
        st = read_stats(item.path, ("sample_ids", "sample_maps"))
        ids = np.asarray(st.get("sample_ids", np.zeros(0, np.int64)), dtype=np.int64)
        maps = st.get("sample_maps")
        if maps is None or ids.size == 0:
            maps = np.zeros((0, 1, 1), np.float16)
            ids = np.zeros(0, np.int64)
        if maps.shape[0] != ids.shape[0]:
            raise ValueError(f"{item.path}: {ids.shape[0]} sample_ids but "
                             f"{maps.shape[0]} sample_maps")
        rows.append((item, ids[:max_neurons], np.abs(maps[:max_neurons].astype(np.float64))))

    ncols = max(1, max(ids.size for _, ids, _ in rows))
    aspect = max((m.shape[1] / m.shape[2] for _, _, m in rows if m.shape[0]), default=0.5)
    records: list[dict] = []
    with figure_style():
        panel_h = MAP_PANEL[0] * aspect + 0.35
        fig = new_figure(MAP_PANEL[0] * ncols + 0.9, panel_h * len(rows) + 0.5)
        axes = fig.subplots(len(rows), ncols, squeeze=False)
        image = None
        for r, (item, ids, absmaps) in enumerate(rows):
            name = layer_label(item.arch, item.layer)
            for c in range(ncols):
                ax = axes[r, c]
                ax.set_xticks([])
                ax.set_yticks([])
                ax.grid(False)
                for spine in ax.spines.values():
                    spine.set_visible(False)
                if c >= ids.size:
                    if c == 0:
                        ax.text(0.5, 0.5, "no sampled neurons", ha="center", va="center",
                                transform=ax.transAxes)
                    continue
                a = absmaps[c]
                image = ax.imshow(minmax(a), cmap=CMAP, vmin=0.0, vmax=1.0,
                                  interpolation="nearest")
                ax.set_title(f"{name} #{int(ids[c])}", pad=2)
                records.append({**item.labels(), "panel": c, "neuron_id": int(ids[c]),
                                "min": float(a.min()), "max": float(a.max()),
                                "mean": float(a.mean())})
            axes[r, 0].set_ylabel(_row_label(item), fontsize=6)
        if image is not None:
            fig.colorbar(image, ax=axes, shrink=0.8, aspect=30, pad=0.01,
                         label="|C| (min-max per neuron)")
        fig.suptitle(title if title is not None else DEFAULT_TITLE)
        table = pd.DataFrame.from_records(records, columns=COLUMNS)
        save_figure(fig, png_path, dpi=dpi)
    save_table(table, csv_path)
    return table
