"""One function per workflow step that needs more than one library call: files in, files out.

The rule scripts and the `xinc` command call these; they hold the wiring, not the math.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xinc.canvas import layer_names
from xinc.checks import check_finite_weights
from xinc.device import full_fp32, resolve_device
from xinc.intermediate import read_intermediate, read_json, read_npy, read_npz
from xinc.io import save_npz, write_json
from xinc.models import (
    NeRV,
    count_params,
    ffn_coords,
    import_checkpoint,
    load_checkpoint,
    untrained_copy,
)
from xinc.stats import (
    canvas_frame_stats,
    canvas_pair_change,
    grid_groups,
    pixel_groups,
    write_frame_stats,
    write_pair_stats,
)
from xinc.train.ffn import evaluate_ffn, ffn_target
from xinc.train.nerv import evaluate_nerv, nerv_inputs

LOG = logging.getLogger(__name__)


def load_model(path: str | Path) -> torch.nn.Module:
    """`load_checkpoint(path)`; a damaged file, or one whose weights hold NaN or infinity,
    raises `IntermediateFileError` naming the rule that writes it (for the workflow's own
    checkpoints), a missing one `FileNotFoundError`."""
    return read_intermediate(path, _read_checkpoint)


def _read_checkpoint(path: Path) -> torch.nn.Module:
    try:
        model = load_checkpoint(path)
    except RuntimeError as err:  # the cause; read_intermediate adds the rule that writes it
        cause = err.__cause__ or err
        if isinstance(cause, FileNotFoundError):
            raise cause from None
        raise ValueError(f"{type(cause).__name__}: {cause}") from err
    check_finite_weights(model)
    return model


def annotated_index(meta: dict[str, Any], frame: int, source: str | Path) -> int:
    """Position of raw frame `frame` among the video's annotated frames."""
    try:
        return meta["annotated_t"].index(frame)
    except ValueError:
        raise ValueError(
            f"{source}: frame {frame} of video {meta['video']} is not annotated "
            f"(annotated frames: {meta['annotated_t']}); analyse an annotated frame"
        ) from None


def make_pixel_groups(frames: str | Path, panoptic: str | Path, meta: str | Path, frame: int,
                      out: str | Path, *, clusters: int, grid: Sequence[int], seed: int,
                      gabor_mode: str = "reference", threads: int | None = None) -> None:
    """Groupings (instances, RGB/Gabor k-means, grid cells) of one working-resolution frame;
    `threads` bounds the threads of k-means and the filters (OpenMP/BLAS pools)."""
    from threadpoolctl import threadpool_limits

    info = read_json(meta)
    labels = read_npy(panoptic, mmap_mode="r")[annotated_index(info, frame, meta)]
    image = read_npy(frames, mmap_mode="r")[frame]
    with threadpool_limits(limits=threads):
        groups = pixel_groups(np.asarray(image), np.asarray(labels), k=clusters,
                              grid=tuple(grid), seed=seed, gabor_mode=gabor_mode)
    save_npz(out, **groups)


def frame_time(model: torch.nn.Module, frame: int, meta: dict[str, Any],
               time_index: str = "exact") -> float | None:
    """NeRV query time of raw frame j; None for an FFN.

    `exact`: t = j/T, the time the NeRV was trained with for that frame. `reference`: the
    authors' analysis, t = k/A for the k-th of the A annotated frames (docs/method.md §7.2).
    """
    if not isinstance(model, NeRV):
        return None
    if time_index == "exact":
        n_frames = int(getattr(model, "meta", {}).get("frames") or meta["T"])
        return frame / n_frames
    if time_index == "reference":
        return annotated_index(meta, frame, "meta.json") / len(meta["annotated_t"])
    raise ValueError(f"unknown time_index {time_index!r} (use 'exact' or 'reference')")


def trace_frame(model: torch.nn.Module, groups: dict[str, np.ndarray], outputs: dict[str, Path],
                *, t: float | None, height: int, width: int, mode: str = "reference",
                chunk: int | None = None, bias: str = "split", neuron: str = "kernel",
                n_sample: int = 16, sample_seed: int = 0,
                meta: dict[str, Any] | None = None) -> None:
    """Stream every requested layer's maps into its statistics file (one file per layer)."""
    for layer, path in outputs.items():
        LOG.info("layer %s: contribution maps -> statistics", layer)
        stats = canvas_frame_stats(model, layer, groups, t=t, height=height, width=width,
                                   n_sample=n_sample, sample_seed=sample_seed, mode=mode,
                                   chunk=chunk, bias=bias, neuron=neuron, meta=meta)
        write_frame_stats(path, stats)


def canvas_stats(ckpt: str | Path, groups: str | Path, meta: str | Path, frame: int,
                 outputs: Sequence[str | Path], layers: Sequence[str], *, canvas: dict[str, Any],
                 stats: dict[str, Any], device: str = "auto", untrained: bool = False) -> None:
    """Statistics of every layer of one model at one frame; with `untrained`, of the model as
    initialised before training (`untrained_copy`: the null model of the neuron clusters)."""
    canvas_model_stats([ckpt], [groups], meta, [frame], outputs, layers, canvas=canvas,
                       stats=stats, device=device, untrained=untrained)


def canvas_model_stats(ckpts: Sequence[str | Path], groups: Sequence[str | Path],
                       meta: str | Path, frames: Sequence[int], outputs: Sequence[str | Path],
                       layers: Sequence[str], *, canvas: dict[str, Any], stats: dict[str, Any],
                       device: str = "auto", untrained: bool = False) -> None:
    """Rules canvas_stats_<arch>_<dataset>: statistics of every layer at every frame of one job,
    in one process so that start-up (torch, CUDA context, model load) is paid once.

    `ckpts` holds one checkpoint (a NeRV: every frame of the one model) or one per frame (the
    FFNs of a video); `groups` one pixel-groups file per frame; `outputs` the statistics files
    frame by frame, each frame's in the order of `layers`.
    """
    if len(ckpts) not in (1, len(frames)) or len(groups) != len(frames):
        raise ValueError(f"{len(frames)} frames need 1 or {len(frames)} checkpoints and "
                         f"{len(frames)} pixel-groups files; got {len(ckpts)} and {len(groups)}")
    if len(outputs) != len(frames) * len(layers):
        raise ValueError(f"{len(frames)} frames x {len(layers)} layers need "
                         f"{len(frames) * len(layers)} outputs; got {len(outputs)}")
    info = read_json(meta)
    target = resolve_device(device)
    model_paths = [str(path) for path in ckpts] * (len(frames) if len(ckpts) == 1 else 1)
    loaded: dict[str, torch.nn.Module] = {}
    for i, frame in enumerate(frames):
        if model_paths[i] not in loaded:
            model = load_model(model_paths[i])
            loaded = {model_paths[i]: (untrained_copy(model) if untrained else model).to(target)}
        LOG.info("frame %d (%d of %d)", frame, i + 1, len(frames))
        frame_outputs = outputs[i * len(layers):(i + 1) * len(layers)]
        with full_fp32():
            _trace_job_frame(loaded[model_paths[i]], read_npz(groups[i]), info, frame,
                             dict(zip(layers, map(Path, frame_outputs), strict=True)),
                             canvas, stats, untrained)


def _trace_job_frame(model: torch.nn.Module, groups: dict[str, np.ndarray], info: dict[str, Any],
                     frame: int, outputs: dict[str, Path], canvas: dict[str, Any],
                     stats: dict[str, Any], untrained: bool) -> None:
    """One frame of a canvas job: the job's settings as `trace_frame`'s arguments."""
    height, width = info["working_size"]
    trace_frame(
        model, groups, outputs,
        t=frame_time(model, frame, info, canvas["time_index"]), height=height, width=width,
        mode=canvas["mode"], chunk=canvas["chunk"], bias=canvas["bias"],
        neuron=canvas["neuron"], n_sample=stats["sample_neurons"], sample_seed=stats["seed"],
        meta={"dataset": info["dataset"], "video": info["video"], "frame": frame,
              "seed": model.meta.get("seed"), **({"untrained": True} if untrained else {})},
    )


def pair_stats(ckpt: str | Path, meta: str | Path, frame: int, outputs: Sequence[str | Path],
               layers: Sequence[str], *, canvas: dict[str, Any], device: str = "auto") -> None:
    """Rule pair_stats: Δ_t between raw frames t − 1 and t = `frame` of a NeRV, per layer.

    Both frames are queried at their training times j/T (raw frames, annotated or not).
    """
    info = read_json(meta)
    model = load_model(ckpt).to(resolve_device(device))
    if not isinstance(model, NeRV):
        raise ValueError(f"{ckpt}: contribution change needs a NeRV (one model per video)")
    n_frames = int(model.meta.get("frames") or info["T"])
    if not 1 <= frame < n_frames:
        raise ValueError(f"{meta}: pair frame t = {frame} needs frames t − 1 and t of a "
                         f"{n_frames}-frame video; set canvas.pair_frames within 1 … "
                         f"{n_frames - 1}")
    t_prev, t_next = (frame_time(model, j, info, "exact") for j in (frame - 1, frame))
    for layer, path in zip(layers, map(Path, outputs), strict=True):
        LOG.info("layer %s: contribution change between frames %d and %d", layer, frame - 1,
                 frame)
        delta = canvas_pair_change(model, layer, t_prev, t_next, mode=canvas["mode"],
                                   chunk=canvas["chunk"], bias=canvas["bias"],
                                   neuron=canvas["neuron"])
        write_pair_stats(path, delta, {
            "arch": "nerv", "layer": layer, "mode": canvas["mode"], "bias": canvas["bias"],
            "neuron": canvas["neuron"], "frame_prev": frame - 1, "frame": frame,
            "t_prev": t_prev, "t": t_next, "dataset": info["dataset"], "video": info["video"],
            "seed": model.meta.get("seed")})


def trace_checkpoint(ckpt: str | Path, out_dir: str | Path, *, frame: int | None = None,
                     layers: Sequence[str] | None = None, grid: Sequence[int] = (4, 8),
                     mode: str = "reference", bias: str = "split",
                     neuron: str = "kernel") -> None:
    """`xinc trace`: statistics of one checkpoint (grid-cell groupings only) into `out_dir`.

    `frame` (see `checkpoint_frame`): NeRV 0 … frames − 1 (default 0); FFN the frame it was
    trained on. `layers` default to all of the model's.
    """
    model = load_model(ckpt)
    height, width = checkpoint_size(model, ckpt)
    frame = checkpoint_frame(model, frame, ckpt)
    layers = checked_layers(model, layers, ckpt)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t = frame_time(model, frame, {"T": model.meta.get("frames")}) if frame is not None else None
    trace_frame(model, grid_groups(height, width, tuple(grid)),
                {layer: out_dir / f"{layer}.npz" for layer in layers},
                t=t, height=height, width=width, mode=mode, bias=bias, neuron=neuron,
                meta={"frame": frame})


def checkpoint_size(model: torch.nn.Module, ckpt: str | Path) -> tuple[int, int]:
    """(height, width) of the frames the checkpoint was trained on, from its meta."""
    meta = getattr(model, "meta", {})
    if meta.get("height") is None or meta.get("width") is None:
        raise ValueError(f"{ckpt}: the checkpoint does not record its frame size (meta "
                         "'height' and 'width'); rewrite it with xinc.models.import_checkpoint("
                         "src, dst, meta={'height': H, 'width': W})")
    return int(meta["height"]), int(meta["width"])


def checkpoint_frame(model: torch.nn.Module, frame: int | None, ckpt: str | Path) -> int | None:
    """The raw frame to trace. NeRV: `frame` (default 0) within 0 … frames − 1 of its meta.
    FFN: the frame it was trained on (meta `frame`); a different `frame` is an error, and
    where the checkpoint records none, `frame` (≥ 0) only labels the statistics."""
    meta = getattr(model, "meta", {})
    n_frames = meta.get("frames")
    if isinstance(model, NeRV):
        if not n_frames:
            raise ValueError(f"{ckpt}: the checkpoint does not record its video length (meta "
                             "'frames'); rewrite it with xinc.models.import_checkpoint(src, dst, "
                             "meta={'frames': T})")
        frame, n_frames = 0 if frame is None else frame, int(n_frames)
        if not 0 <= frame < n_frames:
            raise ValueError(f"{ckpt}: frame {frame} is outside the {n_frames}-frame video the "
                             f"NeRV was trained on; choose a frame in 0 … {n_frames - 1}")
        return frame
    trained = meta.get("frame")
    if frame is None:
        return trained
    if trained is not None and frame != trained:
        raise ValueError(f"{ckpt}: the FFN was trained on frame {trained}, not frame {frame}; "
                         f"give frame {trained} or none")
    if frame < 0 or (n_frames and frame >= n_frames):
        raise ValueError(f"{ckpt}: frame {frame} is not a frame of the video; give the frame "
                         "the FFN was trained on (0-based)")
    return frame


def checked_layers(model: torch.nn.Module, layers: Sequence[str] | None,
                   ckpt: str | Path) -> list[str]:
    """`layers` (default: all of the model's), each checked to be one of the model's."""
    names = layer_names(model)
    for layer in layers or ():
        if layer not in names:
            raise ValueError(f"{ckpt}: unknown layer {layer!r} of this "
                             f"{type(model).__name__}; choose from {', '.join(names)}")
    return list(layers or names)


def load_nerv_frames(path: str | Path) -> np.ndarray:
    """NeRV targets float32 [T, H, W, 3]: the bicubic float frames, or 8-bit frames / 255."""
    frames = read_npy(path)
    return frames.astype(np.float32) / 255.0 if frames.dtype == np.uint8 else frames


def import_model(arch: str, src: str | Path, frames: str | Path, meta: str | Path,
                 ckpt: str | Path, metrics: str | Path, *, seed: int, frame: int | None = None,
                 settings: dict[str, Any] | None = None, device: str = "auto") -> dict[str, Any]:
    """Rules import_{nerv,ffn}: a checkpoint trained elsewhere → xinc's format + metrics.json.

    The PSNR is measured on this workflow's frames exactly as after training here.
    """
    info = read_json(meta)
    extra = {"dataset": info["dataset"], "video": info["video"], "seed": seed,
             "height": info["working_size"][0], "width": info["working_size"][1]}
    if arch == "nerv":
        extra["frames"] = info["T"]
    else:
        extra.update(frame=frame, frames=info["T"])
    fc_hw = (settings or {}).get("fc_hw") if arch == "nerv" else None
    model = import_checkpoint(src, ckpt, arch=arch, fc_hw=fc_hw, meta=extra)
    dev = resolve_device(device)
    model = model.to(dev).eval()
    with torch.no_grad():
        if arch == "nerv":
            t, targets = nerv_inputs(load_nerv_frames(frames))
            score = evaluate_nerv(model, t.to(dev), targets.to(dev))
        else:
            image = read_npy(frames, mmap_mode="r")[frame]
            h, w = image.shape[:2]
            coords = ffn_coords(h, w, model.cfg.coords).to(dev)
            score = evaluate_ffn(model, coords, ffn_target(np.asarray(image)).to(dev))
    result = {"arch": arch, "params": count_params(model), "psnr": score, "psnr_history": [],
              "seconds": 0.0, "device": str(dev), "seed": seed, "source": str(src)}
    write_json(metrics, result)
    LOG.info("imported %s: PSNR %.2f dB on %s/%s", src, score, info["dataset"], info["video"])
    return result
