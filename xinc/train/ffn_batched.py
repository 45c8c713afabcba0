"""Fit many FFNs (every frame × seed of one video) as one batched model.

The weights of M FFNs are stacked ([M, out, in] per layer) and trained by one Adam over the
stacked tensors with loss Σ_m MSE_m. Adam's update is elementwise and ∂(Σ_m MSE_m)/∂θ_m =
∂MSE_m/∂θ_m, so every model follows exactly its own optimisation, as if trained alone by
`train_ffn` with its seed. Only the floating-point summation order of the matrix products
differs: one step's gradients agree to ~1e-7 relative, and small models stay within ~1e-7 over
hundreds of steps; but full-batch Adam on a ReLU MLP amplifies rounding differences, so paper-size
models drift apart over long runs (measured: |Δw| ≲ 1e-2, |ΔPSNR| ≲ 5e-3 dB after 200 steps at
64×128), as they would under any change of matrix kernel.

Models that share a seed share the Fourier matrix B and hence the features γ of the pixel grid:
their first layers run as one matrix product γ @ [W_1 … W_k]ᵀ (γ is read once, held once), the
later layers as batched products (`baddbmm`). The features are computed once: B is not trained.
On the CPU, each step's gradient is accumulated over pixel chunks so the activations of a group
stay in cache; on a GPU the whole image goes at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xinc.device import describe_device, reproducible, resolve_device
from xinc.models import FFN, build_model, ffn_coords, initial_model, model_config
from xinc.train.common import (
    LOG,
    parse_settings,
    progress_bar,
    quantized_metrics,
    write_outputs,
)
from xinc.train.ffn import FFNTrainConfig, evaluate_ffn
from xinc.train.metrics import psnr_per_frame, quantize_8bit
from xinc.train.resume import (
    fingerprint,
    load_state,
    remove_state,
    restore_rng_states,
    rng_states,
    save_state,
)

# models per group when `batch_models` is 0 (automatic), by device type (others: all models in
# one group). On a 2-core CPU (xinc.bench.train, 30 frames, 20 steps) groups of 8 trained 1.29×
# (64×128) and 1.41× (128×256) as many models per minute as `train_ffn` one by one; one group of
# 30 gave 1.17× and 1.28×
AUTO_GROUP = {"cpu": 8}
# on the CPU, pixels per gradient chunk so that one hidden activation of the group holds about
# this many values (≈2 MB: the working set stays in cache); GPUs take the whole image at once
CPU_CHUNK_VALUES = 1 << 19


def pixel_chunk(device: torch.device, n_models: int, width: int, n_pixels: int) -> int:
    """Pixels per forward/backward chunk (a power of two ≥ 256, or the whole image)."""
    if device.type != "cpu":
        return n_pixels
    rows = max(CPU_CHUNK_VALUES // (n_models * width), 256)
    return min(1 << (rows.bit_length() - 1), n_pixels)


@dataclass(frozen=True)
class Member:
    """One model of the batch: position in `outputs`, frame row in `frames`, seed."""

    index: int
    row: int
    frame_id: int
    seed: int


class StackedFFN:
    """M FFNs with stacked weights; members with equal seeds are adjacent and share γ."""

    def __init__(self, models: Sequence[FFN], seeds: Sequence[int], device: torch.device) -> None:
        self.layers = len(models[0].net)
        self.params: list[torch.Tensor] = []  # W_1, b_1, W_2, b_2, … stacked over models
        for i in range(self.layers):
            for name in ("weight", "bias"):
                stacked = torch.stack([getattr(m.net[i].linear, name).detach() for m in models])
                self.params.append(stacked.to(device).requires_grad_(True))
        self.B = torch.stack([m.positional_encoding.B for m in models]).to(device)
        # runs of adjacent members with the same seed: (start, stop) of each
        self.runs: list[tuple[int, int]] = []
        for m, seed in enumerate(seeds):
            if self.runs and seeds[self.runs[-1][0]] == seed:
                self.runs[-1] = (self.runs[-1][0], m + 1)
            else:
                self.runs.append((m, m + 1))
        self.features: list[torch.Tensor] = []

    def __len__(self) -> int:
        return self.B.shape[0]

    @torch.no_grad()
    def set_coords(self, coords: torch.Tensor) -> None:
        """Cache γ of every run (computed exactly as `FourierFeatures.forward`)."""
        self.features = []
        for start, _ in self.runs:
            proj = (2 * torch.pi * coords) @ self.B[start].T
            self.features.append(torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1))

    @property
    def n_pixels(self) -> int:
        return self.features[0].shape[0]

    def forward(self, rows: slice = slice(None)) -> torch.Tensor:
        """Outputs of all models at the cached coordinates `rows`, [M, P', 3]."""
        w1, b1 = self.params[0], self.params[1]
        n_out, n_in = w1.shape[1:]
        parts = []
        for (start, stop), gamma in zip(self.runs, self.features, strict=True):
            k = stop - start
            h = torch.addmm(
                b1[start:stop].reshape(k * n_out),
                gamma[rows],
                w1[start:stop].reshape(k * n_out, n_in).T,
            )
            parts.append(h.view(-1, k, n_out))
        x = (parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)).transpose(0, 1)
        for i in range(1, self.layers):
            x = torch.relu(x)
            w, b = self.params[2 * i], self.params[2 * i + 1]
            x = torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))
        return x

    def backward(self, target: torch.Tensor, chunk: int) -> torch.Tensor:
        """Accumulate ∂(Σ_m MSE_m)/∂params over pixel chunks; returns Σ_m MSE_m (detached).

        Chunking keeps the activations of all models small (cache-resident on a CPU); the
        gradient is the full-image one (each chunk's squared errors are divided by the full
        count, as the mean over the image does).
        """
        n = self.n_pixels * target.shape[-1]
        total = torch.zeros((), device=target.device)
        for a in range(0, self.n_pixels, chunk):
            rows = slice(a, a + chunk)
            loss = (self.forward(rows) - target[:, rows]).pow(2).sum() / n
            loss.backward()
            total += loss.detach()
        return total

    def state_dict(self, m: int, params: Sequence[torch.Tensor] | None = None) -> dict:
        """Model m as the state dict of a plain FFN (from `params`, default the current)."""
        params = self.params if params is None else params
        state = {"positional_encoding.B": self.B[m]}
        for i in range(self.layers):
            state[f"net.{i}.linear.weight"] = params[2 * i][m].detach()
            state[f"net.{i}.linear.bias"] = params[2 * i + 1][m].detach()
        return state


def train_ffn_batch(
    frames: np.ndarray,
    model_settings: dict[str, Any],
    train_settings: dict[str, Any],
    *,
    seeds: Sequence[int],
    frame_ids: Sequence[int],
    outputs: Sequence[tuple[str | Path, str | Path]],
    device: str | torch.device = "auto",
    meta: dict[str, Any] | None = None,
    progress: bool = True,
    state_path: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Fit one FFN per (frame, seed) pair of `frames` (uint8 [N, H, W, 3]), all together.

    `frame_ids[i]` is the index in the video of `frames[i]` (stored as meta `frame`).
    `outputs` holds one (ckpt_path, metrics_path) pair per model, **frames-major then seeds**:
    the model of frames[i] with seeds[j] writes `outputs[i * len(seeds) + j]`. Every model is
    initialised as `train_ffn` would with its seed, trained with the same recipe (full-image
    Adam steps, PSNR every `eval_every` steps, best weights kept), and written as an ordinary
    single-FFN checkpoint + metrics.json (meta: height, width, seed, psnr, frame, plus `meta`,
    e.g. the video length `frames`), exactly as `train_ffn` writes them. Metrics `seconds` is
    the model's share of its group's wall time. Returns the metrics dicts in `outputs` order.

    Models are trained in groups of `batch_models` (setting; 0 = all at once on a GPU,
    `AUTO_GROUP` on the CPU); equal seeds are grouped together so they share the Fourier
    features. Outputs are written only when every group has finished.

    Resuming: with `checkpoint_every` > 0, the state of the whole batch (finished groups'
    results included) is written to `state_path` (required then) every that many steps; an
    existing state file of the same run (settings, seeds, frames, grouping) is continued from,
    one of another run set aside with a warning (as `train_nerv`); it is removed after the
    outputs are written.
    """
    cfg = parse_settings(FFNTrainConfig, train_settings, "FFN training")
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"FFN frames must be uint8 [N, H, W, 3], got {frames.dtype}{frames.shape}")
    n_frames, height, width = frames.shape[:3]
    seeds, frame_ids = [int(s) for s in seeds], [int(f) for f in frame_ids]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be a non-empty list of distinct seeds, got {seeds}")
    if n_frames == 0 or len(frame_ids) != n_frames:
        raise ValueError(f"{len(frame_ids)} frame_ids for {n_frames} frames")
    if len(outputs) != n_frames * len(seeds):
        raise ValueError(
            f"{len(outputs)} outputs for {n_frames} frames × {len(seeds)} seeds; give one "
            "(ckpt_path, metrics_path) per pair, frames-major then seeds"
        )
    if cfg.checkpoint_every and state_path is None:
        raise ValueError("checkpoint_every > 0 needs a state_path for the batch's training state")
    model_cfg = model_config("ffn", model_settings)
    dev = resolve_device(device)
    members = [
        Member(i * len(seeds) + j, i, frame_ids[i], seed)
        for j, seed in enumerate(seeds)
        for i in range(n_frames)
    ]  # seed-major, so that equal seeds are adjacent
    size = cfg.batch_models or AUTO_GROUP.get(dev.type, len(members))
    groups = [members[g : g + size] for g in range(0, len(members), size)]
    run_id = fingerprint(
        "ffn-batch", model_cfg.to_dict(), cfg, seeds, frames, frame_ids=frame_ids, group=size
    )
    targets = torch.from_numpy(frames.reshape(n_frames, -1, 3).astype(np.float32) / 255.0)
    coords = ffn_coords(height, width, model_cfg.coords).to(dev)
    done: list[dict[str, Any]] = []  # per finished member: state dict, history, best, seconds
    with reproducible(dev):
        state = load_state(state_path, run_id, map_location="cpu")
        resume = None
        if state is not None:
            done, resume = state["done"], state["group_state"]
            LOG.info(
                "resumed batched FFN training from %s: %d of %d models done, next group at step %d",
                state_path,
                len(done),
                len(members),
                resume["step"] if resume else 0,
            )

        def save(group_state: dict[str, Any] | None) -> None:
            save_training_state(state_path, run_id, {"done": done, "group_state": group_state})

        desc = f"ffn steps ({len(members)} models)"
        with progress_bar(cfg.steps * len(groups), desc, progress) as bar:
            bar.update(cfg.steps * (len(done) // size))
            for g in range(len(done) // size, len(groups)):
                done += _train_group(
                    groups[g],
                    model_settings,
                    cfg,
                    targets,
                    coords,
                    dev,
                    bar,
                    resume=resume,
                    save=save,
                    label=f"group {g + 1}/{len(groups)}",
                )
                resume = None
                if cfg.checkpoint_every and g + 1 < len(groups):
                    save(None)
    results = {r["index"]: r for r in done}
    metrics = []
    with torch.random.fork_rng(devices=[]):  # leave the global RNG as training left it
        template = build_model("ffn", model_settings).to(dev)
    for member in sorted(members, key=lambda m: m.index):
        result = results[member.index]
        template.load_state_dict(result["state_dict"])
        ckpt_path, metrics_path = outputs[member.index]
        base_meta = {"height": height, "width": width, "seed": member.seed, "psnr": result["psnr"]}
        model_meta = base_meta | (meta or {}) | {"frame": member.frame_id}
        metrics.append(
            write_outputs(
                template,
                arch="ffn",
                ckpt_path=ckpt_path,
                metrics_path=metrics_path,
                meta=model_meta,
                psnr=result["psnr"],
                history=result["history"],
                seconds=result["seconds"],
                device=describe_device(dev),
                seed=member.seed,
                extra=quantized_metrics(
                    template,
                    lambda m, row=member.row: evaluate_ffn(m, coords, targets[row].to(dev)),
                    height * width,
                ),
            )
        )
    remove_state(state_path)
    return metrics


def _train_group(
    members: list[Member],
    model_settings: dict[str, Any],
    cfg: FFNTrainConfig,
    targets: torch.Tensor,
    coords: torch.Tensor,
    dev: torch.device,
    bar: Any,
    *,
    resume: dict[str, Any] | None,
    save: Callable[[dict[str, Any]], None],
    label: str,
) -> list[dict[str, Any]]:
    """Train one group; returns per member: index, best state dict, psnr, history, seconds."""
    start = time.perf_counter()
    models = []
    for member in members:
        models.append(initial_model("ffn", model_settings, member.seed))  # as train_ffn
    stacked = StackedFFN(models, [m.seed for m in members], dev)
    stacked.set_coords(coords)
    target = targets[[m.row for m in members]].to(dev)
    optimizer = torch.optim.Adam(stacked.params, lr=cfg.lr, betas=(0.9, 0.999))
    n = len(members)
    histories: list[list[list[float]]] = [[] for _ in range(n)]
    best = torch.full((n,), float("-inf"), dtype=torch.float64)
    best_params = [p.detach().clone() for p in stacked.params]
    first_step, seconds_before = 0, 0.0
    if resume is not None:
        with torch.no_grad():
            for p, saved in zip(stacked.params, resume["params"], strict=True):
                p.copy_(saved)
        optimizer.load_state_dict(resume["optimizer"])
        restore_rng_states(resume["rng"], dev)
        first_step, histories = resume["step"], resume["histories"]
        best = resume["best"]
        best_params = [p.to(dev) for p in resume["best_params"]]
        seconds_before = resume["seconds"]
        bar.update(first_step)
    chunk = pixel_chunk(dev, n, stacked.params[0].shape[1], stacked.n_pixels)
    for step in range(first_step, cfg.steps):
        optimizer.zero_grad(set_to_none=True)
        loss = stacked.backward(target, chunk)
        optimizer.step()
        done = step + 1
        if done % cfg.eval_every == 0 or done == cfg.steps:
            scores = evaluate_stacked(stacked, target, chunk)
            # strictly better, or the first evaluation (as train_ffn)
            better = (scores > best) | (not histories[0])
            for m in range(n):
                histories[m].append([done, float(scores[m])])
            if better.any():
                rows = better.nonzero().flatten().to(dev)
                with torch.no_grad():
                    for kept, p in zip(best_params, stacked.params, strict=True):
                        kept[rows] = p[rows]
                best = torch.where(better, scores, best)
            LOG.info(
                "%s step %d/%d  psnr mean %.2f (min %.2f, max %.2f) dB",
                label,
                done,
                cfg.steps,
                float(scores.mean()),
                float(scores.min()),
                float(scores.max()),
            )
            bar.set_postfix(
                loss=f"{loss.item() / n:.3g}", psnr=f"{float(scores.mean()):.2f}", refresh=False
            )
        bar.update()
        if cfg.checkpoint_every and done % cfg.checkpoint_every == 0 and done < cfg.steps:
            save(
                {
                    "step": done,
                    "params": [p.detach() for p in stacked.params],
                    "optimizer": optimizer.state_dict(),
                    "rng": rng_states(dev),
                    "histories": histories,
                    "best": best,
                    "best_params": best_params,
                    "seconds": seconds_before + time.perf_counter() - start,
                }
            )
    seconds = (seconds_before + time.perf_counter() - start) / n
    return [
        {
            "index": member.index,
            "state_dict": {k: v.cpu() for k, v in stacked.state_dict(m, best_params).items()},
            "psnr": float(best[m]),
            "history": histories[m],
            "seconds": seconds,
        }
        for m, member in enumerate(members)
    ]


def save_training_state(path: Path, run_id: dict[str, Any], state: dict[str, Any]) -> None:
    """Write the batch's state file (a module-level name, so tests can interrupt after it)."""
    save_state(path, run_id, state)
    group = state["group_state"]
    LOG.info(
        "saved training state to %s (%d models done%s)",
        path,
        len(state["done"]),
        f", next group at step {group['step']}" if group else "",
    )


@torch.no_grad()
def evaluate_stacked(stacked: StackedFFN, target: torch.Tensor, chunk: int) -> torch.Tensor:
    """PSNR of every model (output clamped and rounded to 8-bit levels), float64 [M] on CPU."""
    pred = torch.cat(
        [
            quantize_8bit(stacked.forward(slice(a, a + chunk)))
            for a in range(0, stacked.n_pixels, chunk)
        ],
        dim=1,
    )
    scores = [
        psnr_per_frame(p.reshape(1, -1), t.reshape(1, -1))
        for p, t in zip(pred, target, strict=True)
    ]
    return torch.cat(scores).double().cpu()
