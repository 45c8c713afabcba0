"""Contribution-map and frame-statistics benchmark (time + peak memory of one frame).

For one paper-size NeRV frame (`build_model("nerv", {})`, 128×256, untrained) and one FFN frame
(`build_model("ffn", {})` on a 128×256 grid), per layer:
- `naive`: a faithful straightforward implementation of the authors' algorithm
  (docs/spec/performance.md §4): one `nn.Conv2d(1, K)` per input channel, dense [C_in, K, h, w]
  pieces, PixelShuffle by nearest upsampling + phase masks at full resolution, GELU and dense 3×3
  box filters at every resolution after `F.interpolate`; FFN: the (F, O, P) tensor of per-input
  outer products, summed over O afterwards. NeRV block 1 (≈ 12 GiB) runs only when listed in
  `naive_layers` (default: all; it needs about 8–12 GiB).
- `dense`: xinc's `nerv_canvas` / `ffn_canvas` maps of the layer (one fresh dense tensor: the
  page faults of a fresh 2.4 GB tensor are part of it).
- `reuse`: the same maps written into the dense tensor of a previous (untimed) call, as a loop
  over frames does with `nerv_canvas(…, out=previous)` (NeRV only).
- `alloc`: `torch.zeros` of the layer's map shape — no maps, only the allocation and first
  touch that any fresh dense result pays (NeRV only): `dense` − `alloc` is the computation.
- `exact`: the `exact` mode's dense maps (rescale rule / gated paths), fresh tensor.
- `job` (layer `all`): every layer's statistics in one process, as a workflow canvas job
  (its peak RSS is that of the job).
- `stats`: `canvas_frame_stats` of the layer (all docs/formats.md §6 keys, three streamed passes,
  synthetic label maps: instances 8, rgb 32, gabor 32, 8×8 grids).

`device` (`cpu` by default, `cuda`, `auto`) is where every case runs, baseline included; on
CUDA in float32 with TF32 off, each repeat timed up to a `synchronize`, with the peak GPU
memory (`max_memory_allocated`) next to the host's peak RSS.

Each measurement runs in its own subprocess (`python -m xinc.bench.canvas CASE ARCH LAYER`):
the model is built (seeded) and the case timed `repeats` times (median; no warm-up, so the
first run pays its allocations like a workflow job does), and the peak RSS Δ is VmHWM (from
/proc/self/status) minus VmRSS before the first run. `run` returns a plain dict with the
per-case rows and the per-frame totals (sum over layers) with their speed-ups over `naive`;
`format_report` renders it. FFN maps are measured for the whole frame at once (layer `all`:
one forward pass, as the authors' `compute_all_layer_mappings`), statistics per layer.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from xinc.bench import CASES, FFN_LAYERS, NERV_LAYERS
from xinc.models import build_model
from xinc.models.ffn import FFN
from xinc.models.nerv import NeRV

PAPER_SIZE = (128, 256)


# --------------------------------------------------------------------------- naive baselines


def _time_input(t: float, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(t, dtype=torch.float64, device=device).reshape(1)


@torch.no_grad()
def naive_nerv_maps(model: NeRV, t: float, layer: str) -> torch.Tensor:
    """The authors' NeRV maps [C_in·K, H, W] computed the straightforward (dense) way."""
    trace = model.trace(_time_input(t, model.head.weight.device))
    if layer == "head":
        conv, x, j = model.head, trace.head_input[0], None
    else:
        j = int(layer[1:])
        conv, x = model.blocks[j - 1].conv, trace.block_inputs[j - 1][0]
    c_in, k_out = conv.in_channels, conv.out_channels
    pieces = []
    for i in range(c_in):  # one single-input-channel conv per input channel, as the authors do
        single = nn.Conv2d(1, k_out, conv.kernel_size, conv.stride, conv.padding,
                           bias=conv.bias is not None).to(x.device)
        single.weight.data = conv.weight[:, i:i + 1].clone()
        if conv.bias is not None:
            single.bias.data = conv.bias / c_in
        pieces.append(single(x[i:i + 1][None])[0])
    p = torch.stack(pieces)  # [C_in, K, h, w]
    if j is None:
        return p.reshape(c_in * k_out, *p.shape[2:])
    block = model.blocks[j - 1]
    r = block.shuffle.upscale_factor
    h, w = p.shape[2:]
    big = p.repeat_interleave(r, 2).repeat_interleave(r, 3)  # [C_in, K, r·h, r·w]
    yy, xx = torch.meshgrid(torch.arange(r * h, device=x.device),
                            torch.arange(r * w, device=x.device), indexing="ij")
    phase = (yy % r) * r + xx % r
    channel_phase = torch.arange(k_out, device=x.device) % (r * r)
    mask = (phase[None] == channel_phase[:, None, None]).to(p.dtype)
    out = block.act(big * mask[None])  # GELU on the full, mostly-zero grid
    out = out.reshape(c_in * k_out, 1, r * h, r * w)
    convs = [b.conv for b in model.blocks[j:]] + [model.head]

    def box(v: torch.Tensor, conv_next: nn.Conv2d) -> torch.Tensor:
        k = conv_next.kernel_size[0]
        return F.avg_pool2d(v, k, 1, k // 2, count_include_pad=True)

    out = box(out, convs[0])
    for m, later in enumerate(model.blocks[j:]):
        up = F.interpolate(out, scale_factor=later.shuffle.upscale_factor, mode="nearest")
        out = box(later.act(up), convs[m + 1])
    return out[:, 0]


@torch.no_grad()
def naive_ffn_frame(model: FFN, height: int, width: int) -> dict[str, torch.Tensor]:
    """All of the authors' FFN maps from one forward pass with intermediate results."""
    from xinc.models.ffn import ffn_coords

    coords = ffn_coords(height, width, model.cfg.coords).to(model.net[0].linear.weight.device)
    trace = model.trace(coords)
    return {f"l{i + 1}": naive_ffn_maps(model, height, width, f"l{i + 1}", trace[i])
            for i in range(len(model.net))}


@torch.no_grad()
def naive_ffn_maps(model: FFN, height: int, width: int, layer: str,
                   u: torch.Tensor | None = None) -> torch.Tensor:
    """The authors' FFN maps [n_l, H, W]: the (F, O, P) per-input outer products (one `mm`
    per input feature), summed over O, ReLU for hidden layers (`u`: the layer input [P, F])."""
    from xinc.models.ffn import ffn_coords

    idx = int(layer[1:]) - 1
    if u is None:
        coords = ffn_coords(height, width, model.cfg.coords).to(model.net[0].linear.weight.device)
        u = model.trace(coords)[idx]
    linear = model.net[idx].linear
    n_in, n_out = linear.in_features, linear.out_features
    full = u.new_zeros(n_in, n_out, u.shape[0])
    share = linear.bias / n_in if linear.bias is not None else u.new_zeros(n_out)
    for i in range(n_in):
        full[i] = (u[:, i:i + 1] @ linear.weight[:, i][None] + share).T
    maps = full.sum(1)
    if idx < len(model.net) - 1:
        maps = maps.relu()
    return maps.reshape(n_in, height, width)


# --------------------------------------------------------------------------- one measurement


def synthetic_groups(height: int, width: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random label maps of the paper's sizes (no empty group)."""
    from xinc.stats import grid_groups

    rng = np.random.default_rng(seed)
    groups = {}
    for name, k in (("instances", 8), ("rgb", 32), ("gabor", 32)):
        lab = rng.integers(0, k, (height, width)).astype(np.int32)
        lab.ravel()[:k] = np.arange(k)
        groups[name] = lab
    return {**groups, **grid_groups(height, width, (8, 8))}


def _rss(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _model(arch: str, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(arch, {}).eval()


def measure(case: str, arch: str, layer: str, *, size: Sequence[int] = PAPER_SIZE,
            repeats: int = 1, seed: int = 1, t: float = 0.0,
            device: str = "cpu") -> dict[str, Any]:
    """Time (median of `repeats`) and peak RSS Δ of one case in this process; on a CUDA
    `device` (float32, TF32 off) also the peak GPU memory, timed up to a synchronize."""
    from xinc.canvas import ffn_canvas, nerv_canvas
    from xinc.device import resolve_device
    from xinc.stats import canvas_frame_stats

    dev = resolve_device(device)
    cuda = dev.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    h, w = size
    model = _model(arch, seed).to(dev)
    if arch == "nerv":
        h, w = model.cfg.output_size
    groups = synthetic_groups(h, w)
    if case == "naive":
        def fn():
            if arch == "nerv":
                return naive_nerv_maps(model, t, layer)
            if layer == "all":
                return naive_ffn_frame(model, h, w)
            return naive_ffn_maps(model, h, w, layer)
    elif case == "dense":
        def fn():
            if arch == "nerv":
                return nerv_canvas(model, t, [layer])[layer]
            return ffn_canvas(model, h, w, layers=None if layer == "all" else [layer])
    elif case == "exact":
        def fn():
            if arch == "nerv":
                return nerv_canvas(model, t, [layer], mode="exact")[layer]
            return ffn_canvas(model, h, w, mode="exact",
                              layers=None if layer == "all" else [layer])
    elif case == "reuse" and arch == "nerv":
        buffers = nerv_canvas(model, t, [layer])

        def fn():
            return nerv_canvas(model, t, [layer], out=buffers)[layer]
    elif case == "alloc" and arch == "nerv":
        from xinc.canvas import n_neurons

        def fn():
            return torch.zeros(n_neurons(model, layer), h, w, device=dev)
    elif case == "stats":
        def fn():
            return canvas_frame_stats(model, layer, groups, t=t if arch == "nerv" else None,
                                      height=h, width=w)
    elif case == "job":
        from xinc.canvas import layer_names

        def fn():
            return [canvas_frame_stats(model, name, groups, t=t if arch == "nerv" else None,
                                       height=h, width=w) for name in layer_names(model)]
    else:
        raise ValueError(f"unknown case {case!r}; expected one of {CASES}")
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    rss0 = _rss("VmRSS")
    if cuda:
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        if cuda:
            torch.cuda.synchronize(dev)
        times.append(time.perf_counter() - start)
        del out
    row = {"case": case, "arch": arch, "layer": layer, "seconds": statistics.median(times),
           "peak_rss_delta_bytes": max(0, _rss("VmHWM") - rss0), "repeats": repeats,
           "device": str(dev)}
    if cuda:
        row["peak_gpu_bytes"] = torch.cuda.max_memory_allocated(dev)
    return row


def _measure_subprocess(case: str, arch: str, layer: str, timeout: float,
                        **kwargs) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "xinc.bench.canvas", case, arch, layer, json.dumps(kwargs)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"case": case, "arch": arch, "layer": layer, "error": f"timeout {timeout} s"}
    if proc.returncode:
        return {"case": case, "arch": arch, "layer": layer,
                "error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


SAME_MAPS = ("naive", "dense", "reuse")  # cases computing the naive baseline's maps


def frame_totals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (arch, case): seconds summed over the layers measured, the largest peak RSS Δ, and
    the speed-up naive / case for the cases computing the same maps over the same layers."""
    totals = []
    for arch, case in dict.fromkeys((r["arch"], r["case"]) for r in rows):
        ok = [r for r in rows if r["arch"] == arch and r["case"] == case and "error" not in r]
        if not ok:
            continue
        seconds = sum(r["seconds"] for r in ok)
        layers = [r["layer"] for r in ok]
        naive = [r for r in rows if r["arch"] == arch and r["case"] == "naive"
                 and "error" not in r]
        same = case in SAME_MAPS and sorted(r["layer"] for r in naive) == sorted(layers)
        speedup = sum(r["seconds"] for r in naive) / seconds if same and seconds else None
        totals.append({"arch": arch, "case": case, "layers": layers, "seconds": seconds,
                       "max_peak_rss_delta_bytes": max(r["peak_rss_delta_bytes"] for r in ok),
                       "speedup_vs_naive": speedup})
    return totals


def check_arguments(preset: str, nerv_layers: Sequence[str], naive_layers: Sequence[str],
                    ffn_layers: Sequence[str], cases: Sequence[str], repeats: int) -> None:
    """Refuse unknown presets, layers and cases, and repeats < 1, before anything runs."""
    if preset != "paper":
        raise ValueError(f"unknown preset {preset!r}; expected 'paper'")
    for what, given, known in (("case", cases, CASES), ("NeRV layer", nerv_layers, NERV_LAYERS),
                               ("NeRV layer", naive_layers, NERV_LAYERS),
                               ("FFN layer", ffn_layers, FFN_LAYERS)):
        for value in given:
            if value not in known:
                raise ValueError(f"unknown {what} {value!r}; expected some of "
                                 f"{', '.join(known)}")
    if repeats < 1:
        raise ValueError(f"repeats must be ≥ 1, not {repeats}")


def run(preset: str = "paper", *, nerv_layers: Sequence[str] = NERV_LAYERS,
        naive_layers: Sequence[str] = NERV_LAYERS,
        ffn_layers: Sequence[str] = FFN_LAYERS, cases: Sequence[str] = CASES,
        repeats: int = 1, timeout: float = 600.0, device: str = "cpu") -> dict[str, Any]:
    """Measure every (case, layer) in its own subprocess on `device` (`cpu`, `cuda`, `auto`);
    `naive_layers` limits the naive NeRV baseline (block 1 needs ≈ 12 GiB)."""
    from xinc.device import describe_device, resolve_device

    check_arguments(preset, nerv_layers, naive_layers, ffn_layers, cases, repeats)
    try:
        dev = resolve_device(device)
    except RuntimeError as err:
        raise ValueError(f"device {str(device)!r} is not usable here ({err}); run the canvas "
                         "benchmark with device 'cpu'") from err
    rows = []
    for arch, layers in (("nerv", nerv_layers), ("ffn", ffn_layers)):
        for case in cases:
            if case == "job":  # every layer's statistics in one process, as a canvas job
                rows.append(_measure_subprocess(case, arch, "all", timeout, repeats=repeats,
                                                device=str(dev)))
        for layer in layers:
            for case in cases:
                if case == "job" or (arch == "ffn" and (
                        case in ("reuse", "alloc") or (case in ("naive", "dense", "exact"))
                        != (layer == "all"))):
                    continue
                if case == "naive" and arch == "nerv" and layer not in naive_layers:
                    rows.append({"case": case, "arch": arch, "layer": layer,
                                 "error": "skipped (not in naive_layers)"})
                    continue
                rows.append(_measure_subprocess(case, arch, layer, timeout,
                                                repeats=repeats, device=str(dev)))
    return {"preset": preset, "size": list(PAPER_SIZE), "threads": min(2, os.cpu_count() or 1),
            "device": describe_device(dev), "rows": rows,
            "totals": frame_totals(rows)}


def format_report(result: dict[str, Any]) -> str:
    """A plain-text table of `run`'s rows."""
    lines = [f"canvas benchmark ({result['preset']}, {result['size'][0]}×{result['size'][1]}, "
             f"{result['threads']} threads, {result.get('device', 'cpu')}; peak RSS Δ per "
             "subprocess, peak GPU memory on CUDA)",
             f"{'arch':5} {'layer':5} {'case':6} {'seconds':>9} {'peak RSS Δ':>12}"]
    for row in result["rows"]:
        if "error" in row:
            lines.append(f"{row['arch']:5} {row['layer']:5} {row['case']:6} {row['error']}")
            continue
        mib = row["peak_rss_delta_bytes"] / 2**20
        gpu = f"  GPU {row['peak_gpu_bytes'] / 2**20:.0f} MiB" if "peak_gpu_bytes" in row else ""
        lines.append(f"{row['arch']:5} {row['layer']:5} {row['case']:6} "
                     f"{row['seconds']:9.3f} {mib:9.0f} MiB{gpu}")
    if result.get("totals"):
        lines.append("one frame (sum over the layers every case measured):")
    for row in result.get("totals", []):
        speedup = row["speedup_vs_naive"]
        lines.append(f"{row['arch']:5} {'+'.join(row['layers']):14} {row['case']:6} "
                     f"{row['seconds']:9.3f} s, peak RSS Δ ≤ "
                     f"{row['max_peak_rss_delta_bytes'] / 2**20:.0f} MiB"
                     + (f", {speedup:.1f}× faster than naive" if speedup else ""))
    return "\n".join(lines)


if __name__ == "__main__":
    _case, _arch, _layer = sys.argv[1:4]
    _kwargs = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
    print(json.dumps(measure(_case, _arch, _layer, **_kwargs)))
