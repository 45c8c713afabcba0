"""Summary tables of the trained models (supplement Table S1: size and quality per architecture).

Input: the `metrics.json` records of the trained models (docs/formats.md §4): `arch`, `params`,
`psnr`, and optionally `psnr_q8` (PSNR with 8-bit weights), `bpp` and `bits_per_param` (from
`xinc.train.quantize.bits_per_pixel`). One record is one model (NeRV: one video and seed, its
PSNR the mean over the frames; FFN: one frame and seed), so n counts models.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from xinc.intermediate import read_json
from xinc.io import write_text

# Supplement Section 6.1, real data (mean PSNR over videos, dB)
PAPER_PSNR = {"nerv": 33.50, "ffn": 34.29}
ARCH_ORDER = ("nerv", "ffn")
OPTIONAL = ("params", "psnr_q8", "bpp", "bits_per_param")

COLUMNS = ["n", "params", "psnr_mean", "psnr_std", "psnr_pm", "psnr_q8_mean", "bpp_mean",
           "bits_per_param_mean", "paper_psnr"]


def _mode(values: pd.Series) -> float:
    values = values.dropna()
    if values.empty:
        return math.nan
    return values.mode().iloc[0]


def table_s1(metrics: Iterable[Mapping[str, Any]], *, by: Sequence[str] = ("arch",)
             ) -> pd.DataFrame:
    """One row per architecture (or per `by` group): model count `n`, parameters, PSNR mean and
    sample standard deviation (NaN for n = 1), `psnr_pm` ("m ± s (n=…)"), means of `psnr_q8`,
    `bpp` and `bits_per_param` over the records that have them (NaN if none), and the paper's
    PSNR (`paper_psnr`, NaN for other architectures). Rows: NeRV, FFN, then any others.
    """
    df = pd.DataFrame([dict(m) for m in metrics])
    by = list(by)
    missing = [k for k in [*by, "psnr"] if k not in df.columns]
    if df.empty or missing:
        raise ValueError(f"metrics records need the keys {[*by, 'psnr']}; missing {missing}"
                         if not df.empty else "no metrics records")
    for key in OPTIONAL:
        if key not in df.columns:
            df[key] = math.nan
    for key in ("psnr", *OPTIONAL):
        df[key] = pd.to_numeric(df[key], errors="coerce")
    rows = []
    for keys, group in df.groupby(by, sort=False, dropna=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        row = dict(zip(by, keys, strict=True))
        n = int(group["psnr"].notna().sum())
        mean = group["psnr"].mean()
        std = group["psnr"].std(ddof=1) if n > 1 else math.nan
        row.update({
            "n": n,
            "params": _mode(group["params"]),
            "psnr_mean": mean,
            "psnr_std": std,
            "psnr_pm": f"{mean:.2f} ± {std:.2f} (n={n})" if n > 1 else f"{mean:.2f} (n={n})",
            "psnr_q8_mean": group["psnr_q8"].mean(),
            "bpp_mean": group["bpp"].mean(),
            "bits_per_param_mean": group["bits_per_param"].mean(),
            "paper_psnr": PAPER_PSNR.get(str(row.get("arch")), math.nan),
        })
        rows.append(row)
    out = pd.DataFrame(rows, columns=[*by, *COLUMNS])
    if "arch" in by:
        rank = {a: i for i, a in enumerate(ARCH_ORDER)}
        order = out["arch"].map(lambda a: rank.get(a, len(rank)))
        out = out.assign(_o=order).sort_values(["_o", *by], kind="stable").drop(columns="_o")
    params = out["params"].dropna()
    if params.map(lambda v: float(v).is_integer()).all():
        out["params"] = out["params"].round().astype("Int64")
    return out.reset_index(drop=True)


_PART = re.compile(r"(?P<key>[sf])(?P<val>\d+)")


def path_fields(path: str | Path) -> dict[str, Any]:
    """`dataset`, `video`, `frame`, `seed` from a
    `results/<run>/models/{arch}/{ds}/{vid}/[f{f}/]s{s}/` path (only the parts found)."""
    parts = Path(path).parts
    fields: dict[str, Any] = {}
    if "models" in parts:
        i = len(parts) - 1 - parts[::-1].index("models")
        rest = parts[i + 1:]
        for key, value in zip(("arch", "dataset", "video"), rest[:3], strict=False):
            fields[key] = value
        for part in rest[3:]:
            m = _PART.fullmatch(part)
            if m:
                fields["seed" if m["key"] == "s" else "frame"] = int(m["val"])
    return fields


def read_metrics(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """metrics.json records, completed with the fields their paths encode (record keys win)."""
    records = []
    for path in paths:
        record = read_json(path)
        records.append({**path_fields(path), **record, "path": str(path)})
    return records


def write_table_s1(metrics_paths: Iterable[str | Path], out_csv: str | Path, *,
                   by: Sequence[str] = ("arch",)) -> pd.DataFrame:
    """Table S1 of the given metrics.json files, written atomically to `out_csv`."""
    table = table_s1(read_metrics(metrics_paths), by=by)
    write_text(out_csv, table.to_csv(index=False, float_format="%.6g"))
    return table
