"""Batched FFN training: every model ends as if trained alone by `train_ffn` with its seed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import xinc.train.ffn_batched as ffn_batched
from tests.conftest import METRIC_KEYS
from xinc.models import build_model, ffn_coords, load_checkpoint
from xinc.train import train_ffn, train_ffn_batch
from xinc.train.ffn import ffn_head
from xinc.train.ffn_batched import StackedFFN

TINY_FFN = {"width": 16, "fourier_scale": 1.0}
TRAIN = {"steps": 60, "eval_every": 10}
SEEDS = [3, 8]
FRAME_IDS = [5, 6, 9]


pytestmark = pytest.mark.usefixtures("one_thread")


def frames(n: int = 3, height: int = 16, width: int = 32) -> np.ndarray:
    y, x = np.meshgrid(np.linspace(0, 1, height), np.linspace(0, 1, width), indexing="ij")
    out = []
    for i in range(n):
        image = np.stack(
            [
                0.5 + 0.3 * np.sin(2 * np.pi * (x + i / 7)),
                0.5 + 0.3 * np.cos(3 * np.pi * y + i),
                0.5 + 0.2 * np.sin(2 * np.pi * (x * y + i / 5)),
            ],
            axis=-1,
        )
        out.append(np.round(image * 255))
    return np.stack(out).astype(np.uint8)


def outputs_in(out: Path) -> list[tuple[Path, Path]]:
    """Frames-major then seeds, as `train_ffn_batch` expects."""
    return [(out / f"f{f}s{s}.pt", out / f"f{f}s{s}.json") for f in FRAME_IDS for s in SEEDS]


def run_batch(out: Path, **train) -> list[dict]:
    return train_ffn_batch(
        frames(),
        TINY_FFN,
        TRAIN | train,
        seeds=SEEDS,
        frame_ids=FRAME_IDS,
        outputs=outputs_in(out),
        device="cpu",
        meta={"frames": 30, "video": "v"},
        progress=False,
    )


@pytest.fixture(scope="module")
def sequential(tmp_path_factory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("sequential")
    video = frames()
    metrics = []
    for i, frame_id in enumerate(FRAME_IDS):
        for seed in SEEDS:
            metrics.append(
                train_ffn(
                    video[i],
                    TINY_FFN,
                    TRAIN,
                    seed=seed,
                    ckpt_path=out / f"f{frame_id}s{seed}.pt",
                    metrics_path=out / f"f{frame_id}s{seed}.json",
                    device="cpu",
                    meta={"frame": frame_id, "frames": 30, "video": "v"},
                    progress=False,
                )
            )
    return out, metrics


def best_step(history: list[list[float]]) -> int:
    """The step train_ffn keeps: the first evaluation with the highest PSNR."""
    best = max(score for _, score in history)
    return next(step for step, score in history if score == best)


@pytest.mark.parametrize("group", [0, 4])  # all six together; groups of 4 + 2 (seeds mixed)
def test_batched_equals_one_by_one(tmp_path: Path, sequential, group: int) -> None:
    seq_out, seq_metrics = sequential
    metrics = run_batch(tmp_path, batch_models=group)
    assert len(metrics) == len(seq_metrics) == len(FRAME_IDS) * len(SEEDS)
    for (ckpt, metrics_path), (seq_ckpt, _), got, want in zip(
        outputs_in(tmp_path), outputs_in(seq_out), metrics, seq_metrics, strict=True
    ):
        assert set(got) == METRIC_KEYS
        assert json.loads(metrics_path.read_text()) == got
        assert got["seed"] == want["seed"] and got["params"] == want["params"]
        assert got["psnr"] == pytest.approx(want["psnr"], abs=1e-5)
        assert [s for s, _ in got["psnr_history"]] == [s for s, _ in want["psnr_history"]]
        for (_, a), (_, b) in zip(got["psnr_history"], want["psnr_history"], strict=True):
            assert a == pytest.approx(b, abs=1e-5)
        assert best_step(got["psnr_history"]) == best_step(want["psnr_history"])
        model, reference = load_checkpoint(ckpt), load_checkpoint(seq_ckpt)
        assert model.meta == reference.meta | {"psnr": got["psnr"]}
        ref_state = reference.state_dict()
        for key, value in model.state_dict().items():
            torch.testing.assert_close(value, ref_state[key], rtol=0, atol=1e-5, msg=key)
        assert torch.equal(model.positional_encoding.B, reference.positional_encoding.B)


SCRIPTED_PSNR = [  # per evaluation, one PSNR per model
    [1.0, 5.0, 1.0, 2.0, 9.0, 3.0],
    [2.0, 4.0, 1.0, 2.0, 8.0, 4.0],
    [3.0, 3.0, 1.0, 1.0, 7.0, 5.0],
]


def test_each_model_keeps_its_own_best_weights(tmp_path: Path, monkeypatch) -> None:
    """Scripted PSNRs: models peak at different evaluations; each saves its own peak."""
    n = len(SCRIPTED_PSNR[0])
    scripted = iter(SCRIPTED_PSNR)
    snapshots: list[list[dict[str, torch.Tensor]]] = []

    def fake_evaluate(stacked: StackedFFN, target: torch.Tensor, chunk: int) -> torch.Tensor:
        snapshots.append(
            [{k: v.clone() for k, v in stacked.state_dict(m).items()} for m in range(n)]
        )
        return torch.tensor(next(scripted), dtype=torch.float64)

    monkeypatch.setattr(ffn_batched, "evaluate_stacked", fake_evaluate)
    outputs = [(tmp_path / f"{i}.pt", tmp_path / f"{i}.json") for i in range(n)]
    metrics = train_ffn_batch(
        np.concatenate([frames(), frames()[::-1]]),
        TINY_FFN,
        {"steps": 3, "eval_every": 1},
        seeds=[1],
        frame_ids=list(range(n)),
        outputs=outputs,
        device="cpu",
        progress=False,
    )
    # only a strictly better PSNR replaces the kept weights (models 2 and 3 tie: the first stays)
    best_eval = [2, 0, 0, 0, 0, 2]
    for m, (ckpt, _) in enumerate(outputs):
        saved = load_checkpoint(ckpt).state_dict()
        assert all(torch.equal(saved[k], snapshots[best_eval[m]][m][k]) for k in saved), m
        assert metrics[m]["psnr"] == SCRIPTED_PSNR[best_eval[m]][m]
        assert metrics[m]["psnr_history"] == [[e + 1, SCRIPTED_PSNR[e][m]] for e in range(3)]
    # the snapshots differ between evaluations, so the checks above are not vacuous
    assert not torch.equal(
        snapshots[0][0]["net.0.linear.weight"], snapshots[2][0]["net.0.linear.weight"]
    )


def test_pixel_chunks_give_the_full_image_gradient(monkeypatch) -> None:
    """The CPU path accumulates the gradient over pixel chunks; it equals the one-shot one."""
    height, width = 16, 32
    coords = ffn_coords(height, width)
    target = torch.from_numpy(frames(2, height, width).reshape(2, -1, 3) / 255.0).float()
    models = []
    for seed in (1, 1):
        torch.manual_seed(seed)
        models.append(build_model("ffn", TINY_FFN))
    stacked = StackedFFN(models, [1, 1], torch.device("cpu"))
    stacked.set_coords(coords)
    grads = {}
    for chunk in (height * width, 96):  # 96 does not divide 512: a short last chunk
        for p in stacked.params:
            p.grad = None
        loss = stacked.backward(target, chunk)
        grads[chunk] = ([p.grad.clone() for p in stacked.params], float(loss))
    (full, loss_full), (chunked, loss_chunked) = grads.values()
    assert loss_chunked == pytest.approx(loss_full, rel=1e-6)
    for a, b in zip(full, chunked, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-8)
    # and both are each model's own gradient
    for m, model in enumerate(models):
        with torch.no_grad():
            features = model.positional_encoding(coords)
        loss = (ffn_head(model, features) - target[m]).pow(2).mean()
        loss.backward()
        own = [g for layer in model.net for g in (layer.linear.weight.grad, layer.linear.bias.grad)]
        for a, b in zip(own, full, strict=True):
            torch.testing.assert_close(a, b[m], rtol=1e-5, atol=1e-8)


def test_cpu_chunk_size() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert ffn_batched.pixel_chunk(cuda, 30, 104, 32768) == 32768
    chunk = ffn_batched.pixel_chunk(cpu, 8, 104, 32768)
    assert chunk & (chunk - 1) == 0 and 256 <= chunk < 32768
    assert ffn_batched.pixel_chunk(cpu, 1, 16, 512) == 512


def test_batched_argument_errors(tmp_path: Path) -> None:
    video = frames()
    good = {
        "seeds": [1],
        "frame_ids": [0, 1, 2],
        "outputs": [(tmp_path / f"{i}.pt", tmp_path / f"{i}.json") for i in range(3)],
    }
    with pytest.raises(ValueError, match="3 frames × 2 seeds.*frames-major"):
        train_ffn_batch(video, TINY_FFN, TRAIN, **(good | {"seeds": [1, 2]}))
    with pytest.raises(ValueError, match="2 frame_ids for 3 frames"):
        train_ffn_batch(video, TINY_FFN, TRAIN, **(good | {"frame_ids": [0, 1]}))
    with pytest.raises(ValueError, match="uint8"):
        train_ffn_batch(video / 255.0, TINY_FFN, TRAIN, **good)
    with pytest.raises(ValueError, match="distinct seeds"):
        train_ffn_batch(video, TINY_FFN, TRAIN, **(good | {"seeds": []}))
    with pytest.raises(ValueError, match="batch_models must be ≥ 0"):
        train_ffn_batch(video, TINY_FFN, TRAIN | {"batch_models": -1}, **good)
    assert not list(tmp_path.iterdir())
