"""Fit many FFNs (every frame × seed of one video) as one batched model.

The models of one video are trained in groups; each group is one `StackedFFN`
(xinc.train.stacked) trained by one Adam, so that every model follows its own optimisation, as
if trained alone by `train_ffn` with its seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xinc.device import describe_device, reproducible, resolve_device
from xinc.models import build_model, ffn_coords, initial_model, model_config
from xinc.train.common import LOG, parse_settings, progress_bar, quantized_metrics, write_outputs
from xinc.train.ffn import FFNTrainConfig, evaluate_ffn
from xinc.train.loop import Fit, Loop
from xinc.train.resume import fingerprint, load_state, remove_state, save_state
from xinc.train.stacked import StackedFFN, evaluate_stacked, pixel_chunk

# models per group when `batch_models` is 0 (automatic), by device type (others: all models in
# one group); the measurements behind 8 are in docs/benchmarks.md §1
AUTO_GROUP = {"cpu": 8}


@dataclass(frozen=True)
class Member:
    """One model of the batch: position in `outputs`, frame row in `frames`, seed."""

    index: int
    row: int
    frame_id: int
    seed: int


def train_ffn_batch(frames: np.ndarray, model_settings: dict[str, Any],
                    train_settings: dict[str, Any], *, seeds: Sequence[int],
                    frame_ids: Sequence[int], outputs: Sequence[tuple[str | Path, str | Path]],
                    device: str | torch.device = "auto", meta: dict[str, Any] | None = None,
                    progress: bool = True, state_path: str | Path | None = None,
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

    Resuming: with a `state_path`, the state of the whole batch (finished groups' results
    included) is written there every `checkpoint_every` steps (setting; 0 = never) and after
    each group; an existing state file of the same run (settings, seeds, frames, grouping) is
    continued from, one of another run set aside with a warning (as `train_nerv`); it is removed
    after the outputs are written. Without a `state_path` no state is written, and a
    `checkpoint_every` > 0 given in `train_settings` is an error.
    """
    cfg = parse_settings(FFNTrainConfig, train_settings, "FFN training")
    frames = np.asarray(frames)
    seeds, frame_ids = [int(s) for s in seeds], [int(f) for f in frame_ids]
    check_batch(frames, seeds, frame_ids, len(outputs))
    if state_path is None:
        if train_settings.get("checkpoint_every"):
            raise ValueError("checkpoint_every > 0 needs a state_path for the batch's training "
                             "state")
        cfg = replace(cfg, checkpoint_every=0)
    batch = Batch.plan(frames, model_settings, cfg, seeds, frame_ids, resolve_device(device))
    run_id = fingerprint("ffn-batch", model_config("ffn", model_settings).to_dict(), cfg, seeds,
                         frames, frame_ids=frame_ids, group=batch.size)
    with reproducible(batch.device):
        results = train_groups(batch, state_path, run_id, progress)
    metrics = batch.write(results, outputs, meta or {})
    remove_state(state_path)
    return metrics


def check_batch(frames: np.ndarray, seeds: list[int], frame_ids: list[int], n_outputs: int,
                ) -> None:
    """Refuse frames that are not uint8 [N, H, W, 3], repeated seeds, and counts of frame ids
    or outputs that do not fit."""
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"FFN frames must be uint8 [N, H, W, 3], got {frames.dtype}{frames.shape}")
    n_frames = frames.shape[0]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be a non-empty list of distinct seeds, got {seeds}")
    if n_frames == 0 or len(frame_ids) != n_frames:
        raise ValueError(f"{len(frame_ids)} frame_ids for {n_frames} frames")
    if n_outputs != n_frames * len(seeds):
        raise ValueError(
            f"{n_outputs} outputs for {n_frames} frames × {len(seeds)} seeds; give one "
            "(ckpt_path, metrics_path) per pair, frames-major then seeds"
        )


@dataclass
class Batch:
    """What one `train_ffn_batch` call trains: its models, in groups, and their targets."""

    model_settings: dict[str, Any]
    cfg: FFNTrainConfig
    members: list[Member]  # seed-major, so that equal seeds are adjacent
    size: int  # models per group
    shape: tuple[int, int]  # height, width
    targets: torch.Tensor  # float32 [N, H·W, 3] in [0, 1], on the CPU
    coords: torch.Tensor  # the pixel grid, on `device`
    device: torch.device

    @classmethod
    def plan(cls, frames: np.ndarray, model_settings: dict[str, Any], cfg: FFNTrainConfig,
             seeds: list[int], frame_ids: list[int], device: torch.device) -> Batch:
        n_frames, height, width = frames.shape[:3]
        members = [Member(i * len(seeds) + j, i, frame_ids[i], seed)
                   for j, seed in enumerate(seeds) for i in range(n_frames)]
        size = cfg.batch_models or AUTO_GROUP.get(device.type, len(members))
        targets = torch.from_numpy(frames.reshape(n_frames, -1, 3).astype(np.float32) / 255.0)
        coords = ffn_coords(height, width, model_config("ffn", model_settings).coords)
        return cls(model_settings, cfg, members, size, (height, width), targets,
                   coords.to(device), device)

    @property
    def groups(self) -> list[list[Member]]:
        return [self.members[g : g + self.size] for g in range(0, len(self.members), self.size)]

    def write(self, results: list[dict[str, Any]], outputs: Sequence[tuple[str | Path, str | Path]],
              meta: dict[str, Any]) -> list[dict[str, Any]]:
        """Each model's checkpoint and metrics, as `train_ffn` writes them, in `outputs` order."""
        by_index = {r["index"]: r for r in results}
        (height, width), dev = self.shape, self.device
        with torch.random.fork_rng(devices=[]):  # leave the global RNG as training left it
            template = build_model("ffn", self.model_settings).to(dev)
        metrics = []
        for member in sorted(self.members, key=lambda m: m.index):
            result = by_index[member.index]
            template.load_state_dict(result["state_dict"])
            target = self.targets[member.row].to(dev)
            ckpt_path, metrics_path = outputs[member.index]
            base_meta = {"height": height, "width": width, "seed": member.seed,
                         "psnr": result["psnr"]}
            metrics.append(write_outputs(
                template, arch="ffn", ckpt_path=ckpt_path, metrics_path=metrics_path,
                meta=base_meta | meta | {"frame": member.frame_id}, psnr=result["psnr"],
                history=result["history"], seconds=result["seconds"],
                device=describe_device(dev), seed=member.seed,
                extra=quantized_metrics(template, lambda m, t=target: evaluate_ffn(
                    m, self.coords, t), height * width)))
        return metrics


def train_groups(batch: Batch, state_path: str | Path | None, run_id: dict[str, Any],
                 progress: bool) -> list[dict[str, Any]]:
    """Train the groups in turn, from the batch's state file when it is this run's; per model:
    index, best state dict, psnr, history, seconds."""
    state = load_state(state_path, run_id, map_location="cpu")
    done, resume = ([], None) if state is None else (state["done"], state["group_state"])
    if state is not None:
        LOG.info("resumed batched FFN training from %s: %d of %d models done, next group at "
                 "step %d", state_path, len(done), len(batch.members),
                 resume["step"] if resume else 0)

    def save(group_state: dict[str, Any] | None) -> None:
        save_training_state(state_path, run_id, {"done": done, "group_state": group_state})

    groups, steps = batch.groups, batch.cfg.steps
    with progress_bar(steps * len(groups), f"ffn steps ({len(batch.members)} models)",
                      progress) as bar:
        bar.update(steps * (len(done) // batch.size))
        for g in range(len(done) // batch.size, len(groups)):
            loop = Loop("step", steps, batch.cfg.eval_every, batch.cfg.checkpoint_every, save)
            fit = GroupFit(batch, groups[g], label=f"group {g + 1}/{len(groups)}")
            loop.run(fit, bar, loop.resume(fit, resume))
            done += fit.results(loop.seconds())
            resume = None
            if batch.cfg.checkpoint_every and g + 1 < len(groups):
                save(None)
    return done


class GroupFit(Fit):
    """One group's steps: the stacked models, one Adam, each model's own best weights."""

    def __init__(self, batch: Batch, members: list[Member], label: str) -> None:
        models = [initial_model("ffn", batch.model_settings, m.seed) for m in members]
        self.stacked = StackedFFN(models, [m.seed for m in members], batch.device)
        self.stacked.set_coords(batch.coords)
        self.members, self.cfg, self.label, self.device = members, batch.cfg, label, batch.device
        self.target = batch.targets[[m.row for m in members]].to(batch.device)
        self.optimizer = torch.optim.Adam(self.stacked.params, lr=self.cfg.lr, betas=(0.9, 0.999))
        n = len(members)
        self.histories: list[list[list[float]]] = [[] for _ in range(n)]
        self.best = torch.full((n,), float("-inf"), dtype=torch.float64)
        self.best_params = [p.detach().clone() for p in self.stacked.params]
        self.chunk = pixel_chunk(batch.device, n, self.stacked.params[0].shape[1],
                                 self.stacked.n_pixels)
        self.loss = self.scores = torch.zeros(())

    def step(self, index: int) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.loss = self.stacked.backward(self.target, self.chunk)
        self.optimizer.step()

    def evaluate(self, done: int) -> None:
        scores = self.scores = evaluate_stacked(self.stacked, self.target, self.chunk)
        better = (scores > self.best) | (not self.histories[0])  # or the first (as train_ffn)
        for m, history in enumerate(self.histories):
            history.append([done, float(scores[m])])
        if better.any():
            rows = better.nonzero().flatten().to(self.device)
            with torch.no_grad():
                for kept, p in zip(self.best_params, self.stacked.params, strict=True):
                    kept[rows] = p[rows]
            self.best = torch.where(better, scores, self.best)
        LOG.info("%s step %d/%d  psnr mean %.2f (min %.2f, max %.2f) dB", self.label, done,
                 self.cfg.steps, float(scores.mean()), float(scores.min()), float(scores.max()))

    def postfix(self, evaluated: bool) -> dict[str, str] | None:
        if not evaluated:
            return None
        return {"loss": f"{self.loss.item() / len(self.members):.3g}",
                "psnr": f"{float(self.scores.mean()):.2f}"}

    def state(self) -> dict[str, Any]:
        return {"params": [p.detach() for p in self.stacked.params],
                "optimizer": self.optimizer.state_dict(), "histories": self.histories,
                "best": self.best, "best_params": self.best_params}

    def restore(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            for p, saved in zip(self.stacked.params, state["params"], strict=True):
                p.copy_(saved)
        self.optimizer.load_state_dict(state["optimizer"])
        self.histories, self.best = state["histories"], state["best"]
        self.best_params = [p.to(self.device) for p in state["best_params"]]

    def results(self, seconds: float) -> list[dict[str, Any]]:
        """Per model: index, best state dict (CPU), psnr, history, its share of `seconds`."""
        return [{"index": member.index, "psnr": float(self.best[m]),
                 "state_dict": {k: v.cpu() for k, v in self.stacked.state_dict(
                     m, self.best_params).items()},
                 "history": self.histories[m], "seconds": seconds / len(self.members)}
                for m, member in enumerate(self.members)]


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
