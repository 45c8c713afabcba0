"""Training: schedule, fitting quality, CPU determinism, checkpoint and metrics outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import xinc.train.ffn as ffn_train
import xinc.train.nerv as nerv_train
from tests.conftest import METRIC_KEYS
from xinc.models import build_model, ffn_coords, load_checkpoint
from xinc.train import (
    psnr,
    psnr_per_frame,
    quantize_8bit,
    train_ffn,
    train_nerv,
    warmup_cosine_lr,
)
from xinc.train.ffn import evaluate_ffn, ffn_target
from xinc.train.nerv import evaluate_nerv, nerv_inputs

TINY_NERV = {"fc_hw": [2, 4], "strides": [4, 2, 2], "fc_dim": 12}  # renders 32×64
TINY_FFN = {"width": 32, "fourier_scale": 1.0}


pytestmark = pytest.mark.usefixtures("one_thread")


def smooth_video(n: int = 6, height: int = 32, width: int = 64) -> np.ndarray:
    """A smooth moving pattern, float32 [T, H, W, 3]."""
    y, x = np.meshgrid(np.linspace(0, 1, height), np.linspace(0, 1, width), indexing="ij")
    frames = []
    for i in range(n):
        p = i / n
        frames.append(
            np.stack(
                [
                    0.5 + 0.3 * np.sin(2 * np.pi * (x + p)),
                    0.5 + 0.3 * np.cos(2 * np.pi * (1.5 * y - p)),
                    0.5 + 0.2 * np.sin(2 * np.pi * (2 * x * y + p)),
                ],
                axis=-1,
            )
        )
    return np.stack(frames).astype(np.float32)


def smooth_image(height: int = 32, width: int = 64) -> np.ndarray:
    y, x = np.meshgrid(np.linspace(0, 1, height), np.linspace(0, 1, width), indexing="ij")
    image = np.stack(
        [
            0.5 + 0.3 * np.sin(2 * np.pi * x),
            0.5 + 0.3 * np.cos(3 * np.pi * y),
            0.5 + 0.2 * np.sin(2 * np.pi * (x + y)),
        ],
        axis=-1,
    )
    return np.round(image * 255).astype(np.uint8)


def mean_baseline_psnr(targets: np.ndarray) -> float:
    """PSNR of predicting every pixel as the per-channel mean of the whole input."""
    mean = targets.reshape(-1, 3).mean(axis=0)
    return float(-10 * np.log10(((targets - mean) ** 2).mean()))


# --- schedule and metrics -------------------------------------------------------------------


def test_schedule_values() -> None:
    assert warmup_cosine_lr(0.0, 1e-3) == pytest.approx(1e-4)
    assert warmup_cosine_lr(0.05, 1e-3) == pytest.approx(5.5e-4)
    assert warmup_cosine_lr(0.1, 1e-3) == pytest.approx(1e-3)
    assert warmup_cosine_lr(0.55, 1e-3) == pytest.approx(5e-4)
    c = 0.8
    assert warmup_cosine_lr(c, 1e-3) == pytest.approx(0.5e-3 * (1 + np.cos(np.pi * 0.7 / 0.9)))
    assert warmup_cosine_lr(1.0, 1e-3) == pytest.approx(0.0, abs=1e-15)
    # the last iteration of a 1000-epoch, 15-iteration run is just above zero
    assert 0 < warmup_cosine_lr((999 + 14 / 15) / 1000, 1e-3) < 1e-9


def test_trainer_sets_lr_from_fractional_progress(monkeypatch, tmp_path: Path) -> None:
    seen: list[float] = []

    def spy(progress: float, base_lr: float, warmup: float = 0.1) -> float:
        seen.append(progress)
        return warmup_cosine_lr(progress, base_lr, warmup)

    monkeypatch.setattr(nerv_train, "warmup_cosine_lr", spy)
    # 5 frames, batch 2 → 2 iterations per epoch (drop_last)
    train_nerv(
        smooth_video(5),
        TINY_NERV,
        {"epochs": 2, "eval_every": 1},
        seed=0,
        ckpt_path=tmp_path / "c.pt",
        metrics_path=tmp_path / "m.json",
        progress=False,
    )
    assert seen == pytest.approx([0.0, 0.25, 0.5, 0.75])


def test_psnr_helpers() -> None:
    target = torch.full((2, 3, 4, 4), 0.5)
    pred = target.clone()
    pred[1] += 0.1
    per_frame = psnr_per_frame(pred, target)
    assert per_frame[0] == pytest.approx(90.0)  # −10·log10(1e-9)
    assert per_frame[1] == pytest.approx(20.0, abs=1e-4)
    assert psnr(pred[1], target[1]) == pytest.approx(20.0, abs=1e-4)
    q = quantize_8bit(torch.tensor([-0.2, 0.5, 1.3, 100.4 / 255]))
    assert torch.equal(q, torch.tensor([0.0, 128 / 255, 1.0, 100 / 255]))


# --- NeRV -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nerv_run(tmp_path_factory) -> tuple[dict, Path, np.ndarray]:
    out = tmp_path_factory.mktemp("nerv")
    video = smooth_video()
    settings = {"epochs": 80, "eval_every": 20, "lr": 3e-3}
    metrics = train_nerv(
        video,
        TINY_NERV,
        settings,
        seed=1,
        ckpt_path=out / "ckpt.pt",
        metrics_path=out / "metrics.json",
        device="cpu",
        meta={"video": "synthetic"},
        progress=False,
    )
    return metrics, out, video


def test_nerv_fits_smooth_video(nerv_run) -> None:
    metrics, _, video = nerv_run
    t, targets = nerv_inputs(video)
    torch.manual_seed(1)
    untrained = evaluate_nerv(build_model("nerv", TINY_NERV), t, targets)
    floor = max(mean_baseline_psnr(video), untrained)
    assert metrics["psnr"] > floor + 10
    assert metrics["psnr"] > 25


def test_nerv_outputs(nerv_run) -> None:
    metrics, out, video = nerv_run
    on_disk = json.loads((out / "metrics.json").read_text())
    assert set(on_disk) == METRIC_KEYS
    assert on_disk == metrics
    assert metrics["arch"] == "nerv" and metrics["device"] == "cpu" and metrics["seed"] == 1
    assert [step for step, _ in metrics["psnr_history"]] == [20, 40, 60, 80]
    assert metrics["psnr"] == metrics["psnr_history"][-1][1]
    # 8-bit weights cost little PSNR; the coded size is under 32 bits per parameter
    assert metrics["psnr"] - 3 < metrics["psnr_q8"] < metrics["psnr"] + 0.5
    assert 0 < metrics["bits_per_param"] < 9
    model = load_checkpoint(out / "ckpt.pt")
    assert model.meta == {
        "frames": 6,
        "height": 32,
        "width": 64,
        "seed": 1,
        "psnr": metrics["psnr"],
        "video": "synthetic",
    }
    assert metrics["params"] == sum(p.numel() for p in model.parameters())
    # the reloaded weights reproduce the final evaluation bit for bit
    assert evaluate_nerv(model, *nerv_inputs(video)) == metrics["psnr"]


def test_nerv_rejects_mismatched_frame_size(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"fc_hw \[2, 4\].*frames are 48×64"):
        train_nerv(
            smooth_video(4, 48, 64),
            TINY_NERV,
            {"epochs": 1},
            seed=0,
            ckpt_path=tmp_path / "c.pt",
            metrics_path=tmp_path / "m.json",
        )
    assert not (tmp_path / "c.pt").exists()


def test_unknown_training_setting_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown NeRV training setting"):
        train_nerv(
            smooth_video(4),
            TINY_NERV,
            {"epoch": 1},
            seed=0,
            ckpt_path=tmp_path / "c.pt",
            metrics_path=tmp_path / "m.json",
        )


def test_nerv_cpu_determinism(tmp_path: Path) -> None:
    video = smooth_video(5)

    def run(seed: int, name: str) -> dict[str, torch.Tensor]:
        train_nerv(
            video,
            TINY_NERV,
            {"epochs": 3},
            seed=seed,
            ckpt_path=tmp_path / f"{name}.pt",
            metrics_path=tmp_path / f"{name}.json",
            device="cpu",
            progress=False,
        )
        return load_checkpoint(tmp_path / f"{name}.pt").state_dict()

    a, b, c = run(7, "a"), run(7, "b"), run(8, "c")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["stem.weight"], c["stem.weight"])


def test_progress_goes_to_stderr(tmp_path: Path, capsys) -> None:
    train_nerv(
        smooth_video(4),
        TINY_NERV,
        {"epochs": 2, "eval_every": 1},
        seed=0,
        ckpt_path=tmp_path / "c.pt",
        metrics_path=tmp_path / "m.json",
    )
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "nerv epochs" in captured.err and "psnr=" in captured.err


# --- FFN ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ffn_run(tmp_path_factory) -> tuple[dict, Path, np.ndarray]:
    out = tmp_path_factory.mktemp("ffn")
    image = smooth_image()
    metrics = train_ffn(
        image,
        TINY_FFN,
        {"steps": 300, "eval_every": 50},
        seed=5,
        ckpt_path=out / "ckpt.pt",
        metrics_path=out / "metrics.json",
        device="cpu",
        meta={"frame": 0, "frames": 30},
        progress=False,
    )
    return metrics, out, image


def test_ffn_fits_smooth_image(ffn_run) -> None:
    metrics, _, image = ffn_run
    target = ffn_target(image)
    torch.manual_seed(5)
    untrained = evaluate_ffn(build_model("ffn", TINY_FFN), ffn_coords(32, 64), target)
    floor = max(mean_baseline_psnr(image / 255.0), untrained)
    assert metrics["psnr"] > floor + 10
    assert metrics["psnr"] > 26


def test_ffn_outputs_keep_best_weights(ffn_run) -> None:
    metrics, out, image = ffn_run
    on_disk = json.loads((out / "metrics.json").read_text())
    assert set(on_disk) == METRIC_KEYS
    assert on_disk == metrics
    assert [step for step, _ in metrics["psnr_history"]] == [50, 100, 150, 200, 250, 300]
    assert metrics["psnr"] == max(score for _, score in metrics["psnr_history"])
    model = load_checkpoint(out / "ckpt.pt")
    assert model.meta == {
        "frames": 30,
        "height": 32,
        "width": 64,
        "seed": 5,
        "psnr": metrics["psnr"],
        "frame": 0,
    }
    assert evaluate_ffn(model, ffn_coords(32, 64), ffn_target(image)) == metrics["psnr"]


def test_ffn_saves_best_not_last_weights(monkeypatch, tmp_path: Path) -> None:
    scripted = iter([1.0, 5.0, 2.0, 4.0])  # three evaluations, then the 8-bit copy
    states: list[dict[str, torch.Tensor]] = []

    def fake_evaluate(model, coords, target) -> float:
        states.append({k: v.clone() for k, v in model.state_dict().items()})
        return next(scripted)

    monkeypatch.setattr(ffn_train, "evaluate_ffn", fake_evaluate)
    metrics = train_ffn(
        smooth_image(),
        TINY_FFN,
        {"steps": 3, "eval_every": 1},
        seed=0,
        ckpt_path=tmp_path / "c.pt",
        metrics_path=tmp_path / "m.json",
        progress=False,
    )
    assert metrics["psnr"] == 5.0 and metrics["psnr_q8"] == 4.0
    assert metrics["psnr_history"] == [[1, 1.0], [2, 5.0], [3, 2.0]]
    saved = load_checkpoint(tmp_path / "c.pt").state_dict()
    assert all(torch.equal(saved[k], states[1][k]) for k in saved)
    assert not torch.equal(saved["net.0.linear.weight"], states[2]["net.0.linear.weight"])


def test_ffn_cpu_determinism(tmp_path: Path) -> None:
    def run(seed: int, name: str) -> dict[str, torch.Tensor]:
        train_ffn(
            smooth_image(),
            TINY_FFN,
            {"steps": 20, "eval_every": 10},
            seed=seed,
            ckpt_path=tmp_path / f"{name}.pt",
            metrics_path=tmp_path / f"{name}.json",
            device="cpu",
            progress=False,
        )
        return load_checkpoint(tmp_path / f"{name}.pt").state_dict()

    a, b, c = run(11, "a"), run(11, "b"), run(12, "c")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["positional_encoding.B"], c["positional_encoding.B"])


def test_ffn_rejects_float_frame(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="uint8"):
        train_ffn(
            smooth_image() / 255.0,
            TINY_FFN,
            {"steps": 1},
            seed=0,
            ckpt_path=tmp_path / "c.pt",
            metrics_path=tmp_path / "m.json",
        )
