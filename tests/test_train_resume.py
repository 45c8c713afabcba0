"""Resumable training: a killed and resumed run ends bit for bit like an uninterrupted one."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

import xinc.train.ffn as ffn_train
import xinc.train.ffn_batched as ffn_batched
import xinc.train.nerv as nerv_train
from xinc.models import load_checkpoint
from xinc.train import (
    TrainingStateError,
    default_state_path,
    train_ffn,
    train_ffn_batch,
    train_nerv,
)

TINY_NERV = {"fc_hw": [2, 4], "strides": [4, 2, 2], "fc_dim": 8}  # renders 32×64
TINY_FFN = {"width": 16, "fourier_scale": 1.0}


pytestmark = pytest.mark.usefixtures("one_thread")


class Killed(Exception):
    """Stands in for the process being killed right after a state file was written."""


def kill_after(monkeypatch, module, saves: int) -> list[int]:
    """Let `module.save_training_state` write `saves` state files, then raise `Killed`."""
    original = module.save_training_state
    calls: list[int] = []

    def save_then_maybe_die(path, run_id, state) -> None:
        original(path, run_id, state)
        calls.append(1)
        if len(calls) == saves:
            raise Killed

    monkeypatch.setattr(module, "save_training_state", save_then_maybe_die)
    return calls


def video(n: int = 5, height: int = 32, width: int = 64) -> np.ndarray:
    rng = np.random.default_rng(0)
    y, x = np.meshgrid(np.linspace(0, 1, height), np.linspace(0, 1, width), indexing="ij")
    base = np.stack([np.sin(3 * x), np.cos(2 * y), x * y], axis=-1)
    frames = [
        0.5 + 0.3 * np.roll(base, i, axis=1) + 0.02 * rng.random(base.shape) for i in range(n)
    ]
    return np.stack(frames).astype(np.float32)


def uint8_frames(n: int = 3, height: int = 16, width: int = 32) -> np.ndarray:
    return np.round(video(n, height, width).clip(0, 1) * 255).astype(np.uint8)


def assert_same_weights(a: Path, b: Path) -> None:
    sa, sb = load_checkpoint(a).state_dict(), load_checkpoint(b).state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def strip_seconds(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k != "seconds"}


# --- NeRV -----------------------------------------------------------------------------------

NERV_TRAIN = {"epochs": 6, "eval_every": 2, "lr": 3e-3, "checkpoint_every": 2}


def nerv(out: Path, seed: int = 1, **train) -> dict:
    return train_nerv(
        video(),
        TINY_NERV,
        NERV_TRAIN | train,
        seed=seed,
        ckpt_path=out / "ckpt.pt",
        metrics_path=out / "metrics.json",
        device="cpu",
        progress=False,
    )


def test_nerv_resume_is_bitwise_equal(tmp_path: Path, monkeypatch, caplog) -> None:
    full = nerv(tmp_path / "full")
    assert not default_state_path(tmp_path / "full" / "ckpt.pt").exists()  # removed at the end

    out = tmp_path / "killed"
    state = out / "ckpt.pt.state"
    kill_after(monkeypatch, nerv_train, saves=2)  # killed after epoch 4
    with pytest.raises(Killed):
        nerv(out)
    assert state.exists()
    assert not (out / "ckpt.pt").exists() and not (out / "metrics.json").exists()

    monkeypatch.undo()
    with caplog.at_level(logging.INFO, logger="xinc.train"):
        resumed = nerv(out)
    assert "resumed NeRV training" in caplog.text and "at epoch 4/6" in caplog.text
    assert not state.exists()
    assert_same_weights(tmp_path / "full" / "ckpt.pt", out / "ckpt.pt")
    assert strip_seconds(resumed) == strip_seconds(full)
    assert json.loads((out / "metrics.json").read_text()) == resumed


def test_nerv_state_from_another_run_is_rejected(tmp_path: Path, monkeypatch) -> None:
    kill_after(monkeypatch, nerv_train, saves=1)
    with pytest.raises(Killed):
        nerv(tmp_path, seed=1)
    monkeypatch.undo()
    state = tmp_path / "ckpt.pt.state"
    with pytest.raises(
        TrainingStateError, match=r"ckpt\.pt\.state.*seed.*delete .*ckpt\.pt\.state"
    ):
        nerv(tmp_path, seed=2)
    with pytest.raises(TrainingStateError, match=r"train: saved .*'lr': 0\.003.*delete"):
        nerv(tmp_path, seed=1, lr=1e-3)
    assert state.exists()  # left for the user to inspect or delete
    # how often state is saved does not change the run: still resumable
    nerv(tmp_path, seed=1, checkpoint_every=3)
    assert not state.exists()


def test_unreadable_state_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "ckpt.pt.state").write_text("not a state file")
    with pytest.raises(TrainingStateError, match=r"unreadable training state.*delete"):
        nerv(tmp_path)


# --- FFN ------------------------------------------------------------------------------------

FFN_TRAIN = {"steps": 30, "eval_every": 7, "checkpoint_every": 10}


def ffn(out: Path, state_path: Path | None = None) -> dict:
    return train_ffn(
        uint8_frames(1, 32, 64)[0],
        TINY_FFN,
        FFN_TRAIN,
        seed=3,
        ckpt_path=out / "ckpt.pt",
        metrics_path=out / "metrics.json",
        device="cpu",
        progress=False,
        state_path=state_path,
    )


def test_ffn_resume_is_bitwise_equal(tmp_path: Path, monkeypatch, caplog) -> None:
    full = ffn(tmp_path / "full")
    out = tmp_path / "killed"
    state = tmp_path / "elsewhere" / "ffn.state"  # an explicit state_path
    kill_after(monkeypatch, ffn_train, saves=2)  # killed after step 20
    with pytest.raises(Killed):
        ffn(out, state)
    assert state.exists() and not (out / "ckpt.pt").exists()
    assert not (out / "metrics.json").exists()
    monkeypatch.undo()
    with caplog.at_level(logging.INFO, logger="xinc.train"):
        resumed = ffn(out, state)
    assert "at step 20/30" in caplog.text
    assert not state.exists()
    assert_same_weights(tmp_path / "full" / "ckpt.pt", out / "ckpt.pt")  # the best weights
    assert strip_seconds(resumed) == strip_seconds(full)


# --- batched FFN ----------------------------------------------------------------------------


def batch(out: Path, state: Path | None, **train) -> list[dict]:
    frames = uint8_frames(3)
    outputs = [(out / f"f{i}.pt", out / f"f{i}.json") for i in range(3)]
    return train_ffn_batch(
        frames,
        TINY_FFN,
        {"steps": 12, "eval_every": 4, "checkpoint_every": 5, "batch_models": 2} | train,
        seeds=[4],
        frame_ids=[0, 1, 2],
        outputs=outputs,
        device="cpu",
        progress=False,
        state_path=state,
    )


@pytest.mark.parametrize(("saves", "step"), [(3, 0), (4, 5)])
def test_batched_resume_is_bitwise_equal(tmp_path: Path, monkeypatch, caplog, saves, step) -> None:
    full = batch(tmp_path / "full", tmp_path / "full.state")
    assert not (tmp_path / "full.state").exists()
    out, state = tmp_path / "killed", tmp_path / "killed.state"
    # saves: group 1 (frames 0, 1) at steps 5 and 10, after group 1, group 2 at step 5
    kill_after(monkeypatch, ffn_batched, saves=saves)
    with pytest.raises(Killed):
        batch(out, state)
    assert state.exists()
    assert not list(out.glob("*.pt")) and not list(out.glob("*.json"))
    monkeypatch.undo()
    with caplog.at_level(logging.INFO, logger="xinc.train"):
        resumed = batch(out, state)
    assert f"2 of 3 models done, next group at step {step}" in caplog.text
    assert not state.exists()
    for i in range(3):
        assert_same_weights(tmp_path / "full" / f"f{i}.pt", out / f"f{i}.pt")
        assert strip_seconds(resumed[i]) == strip_seconds(full[i])


def test_batched_checkpointing_needs_a_state_path(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="state_path"):
        batch(tmp_path, None)
