"""Training-speed benchmark (`xinc bench train --arch nerv|ffn`).

- **nerv**: seconds per epoch of `train_nerv` (the paper model, docs/method.md §1.4) on a seeded
  random 30-frame video, against a plain textbook PyTorch loop of the same model and recipe
  (Adam, batch 2, warm-up + cosine lr, MSE, one evaluation and a saved state dict at the end,
  PyTorch's default numerics). Each variant trains `epochs` epochs per repeat, end to end.
- **ffn**: models per minute of N FFNs (one per frame of a seeded random video, one seed),
  trained one by one with `train_ffn` against all together with `train_ffn_batch`, each for
  `steps` full-image steps (evaluated once, at the end).

The variants run interleaved (A B, then B A, …) in one process after an untimed warm-up of each,
so slow drifts of a shared machine hit them alike (the variants: xinc.bench.train_variants).
`run` returns a plain dict; `format_report` renders it as a small table.
"""

from __future__ import annotations

import math
import statistics
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from xinc.bench.train_variants import Setup, ffn_variants, interleave, nerv_variants
from xinc.device import describe_device, resolve_device
from xinc.models import model_config

KINDS = ("nerv", "ffn")
PAPER_SIZE = (128, 256)


def run(
    kind: str,
    *,
    frames: int = 30,
    size: Sequence[int] = PAPER_SIZE,
    epochs: int = 2,
    steps: int = 20,
    repeats: int = 3,
    batch_models: Sequence[int] = (0,),
    model_settings: dict[str, Any] | None = None,
    device: str | torch.device = "auto",
    threads: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Time the training variants of `kind` ("nerv" or "ffn"); returns a JSON-able dict.

    `size` (H, W) is the frame size; for NeRV without `model_settings` the paper model is used
    with `fc_hw` = size / 16 (so 128×256 is exactly `build_model("nerv", {})`). `epochs` (NeRV)
    or `steps` (FFN) is the work per timed run; `batch_models` lists the group sizes of the
    batched FFN variants (0 = automatic). `threads` sets torch's intra-op threads for the run.
    Keys: kind, device, threads, frames, size, params, work (epochs or steps), repeats, unit,
    variants ({name: {seconds: [per repeat], values: [unit per repeat], median, min, max}}),
    baseline (name), ratio ({name: median / baseline median}; for "s/epoch" lower is faster,
    for "models/min" higher is faster).
    """
    _check(kind, [frames, epochs, steps, repeats, *map(int, size)], batch_models, threads)
    height, width = (int(v) for v in size)
    dev = _device(device)
    if model_settings is None:
        model_settings = nerv_settings(height, width) if kind == "nerv" else {}
    with num_threads(threads), tempfile.TemporaryDirectory(prefix="xinc-bench-") as tmp:
        setup = Setup(frames, height, width, model_settings, dev, seed, Path(tmp))
        bench = (nerv_variants(setup, epochs) if kind == "nerv"
                 else ffn_variants(setup, steps, batch_models))
        timings = interleave(bench.runs, repeats, epochs if kind == "nerv" else steps)
    variants = {name: _summary(seconds, [bench.per_unit(s) for s in seconds])
                for name, seconds in timings.items()}
    base = variants[bench.baseline]["median"]
    return {
        "kind": kind, "device": describe_device(dev),
        "threads": threads if threads is not None else torch.get_num_threads(),
        "frames": frames, "size": [height, width], "params": bench.params,
        "model_settings": model_settings, **bench.work, "repeats": repeats, "unit": bench.unit,
        "variants": variants, "baseline": bench.baseline,
        "ratio": {name: v["median"] / base for name, v in variants.items()},
        "notes": bench.notes,
    }


def _check(kind: str, counts: list[int], batch_models: Sequence[int],
           threads: int | None) -> None:
    """Refuse an unknown `kind` and sizes, counts, group sizes or threads out of range."""
    if kind not in KINDS:
        raise ValueError(f"unknown benchmark {kind!r}; expected one of {KINDS}")
    if min(counts) < 1:
        raise ValueError("frames, epochs, steps, repeats and the size must be ≥ 1")
    if min(batch_models, default=0) < 0:
        raise ValueError(f"batch_models must be ≥ 0 (0 = automatic), not {list(batch_models)}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be ≥ 1, not {threads}")


def _device(device: str | torch.device) -> torch.device:
    try:
        return resolve_device(device)
    except RuntimeError as err:
        raise ValueError(f"device {str(device)!r} is not usable here ({err}); run the training "
                         "benchmark with device 'cpu' or 'auto'") from err


def _summary(seconds: list[float], values: list[float]) -> dict[str, Any]:
    """One variant's timings: seconds and unit values per repeat, the values' median and range."""
    return {"seconds": seconds, "values": values, "median": statistics.median(values),
            "min": min(values), "max": max(values)}


def nerv_settings(height: int, width: int) -> dict[str, Any]:
    """The paper NeRV (docs/method.md §1.4) rendering `height`×`width`."""
    if (height, width) == PAPER_SIZE:
        return {}
    scale = math.prod(model_config("nerv", {}).strides)
    if height % scale or width % scale:
        raise ValueError(f"NeRV frame size {height}×{width} must be a multiple of {scale}")
    return {"fc_hw": [height // scale, width // scale]}


@contextmanager
def num_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op threads set to `threads` (None: unchanged) in this block."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# --- report ---------------------------------------------------------------------------------


def format_report(result: dict[str, Any]) -> str:
    """A small text table of a `run` result."""
    height, width = result["size"]
    work = f"{result['epochs']} epochs" if result["kind"] == "nerv" else f"{result['steps']} steps"
    what = "NeRV, one per video" if result["kind"] == "nerv" else "FFNs, one per frame"
    lines = [
        f"training speed: {what}; {result['frames']} frames of {height}×{width}, "
        f"{result['params']:,} parameters per model, {work} per run, {result['repeats']} "
        f"repeats",
        f"device {result['device']}, {result['threads']} threads",
        "",
    ]
    unit = result["unit"]
    faster = "lower" if unit == "s/epoch" else "higher"
    header = (
        f"{'variant':<16}",
        f"{unit + ' median':>18}",
        f"{'min':>10}",
        f"{'max':>10}",
        f"{'vs ' + result['baseline']:>16}",
    )
    lines.append("  ".join(header))
    for name, v in result["variants"].items():
        row = (
            f"{name:<16}",
            f"{v['median']:>18.4g}",
            f"{v['min']:>10.4g}",
            f"{v['max']:>10.4g}",
            f"{result['ratio'][name]:>15.3f}×",
        )
        lines.append("  ".join(row))
    lines.append("")
    lines.append(f"({unit}: {faster} is faster)")
    lines += [f"- {note}" for note in result["notes"]]
    return "\n".join(lines)
