"""Resumable training: a killed and resumed run ends bit for bit like an uninterrupted one."""

from __future__ import annotations

import json
import logging
from datetime import datetime, tzinfo
from pathlib import Path

import numpy as np
import pytest
import torch

import xinc.train.ffn as ffn_train
import xinc.train.ffn_batched as ffn_batched
import xinc.train.nerv as nerv_train
import xinc.train.resume as resume
from xinc.models import load_checkpoint
from xinc.train import default_state_path, train_ffn, train_ffn_batch, train_nerv

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


def set_aside_files(state: Path, why: str = "stale") -> list[Path]:
    return sorted(state.parent.glob(f"{state.name}.{why}-*"))


def warnings_about(caplog, state: Path) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "xinc.train" and r.levelno == logging.WARNING and str(state) in r.getMessage()
    ]


def test_nerv_state_from_another_run_is_set_aside(tmp_path: Path, monkeypatch, caplog) -> None:
    fresh = nerv(tmp_path / "fresh", seed=2)
    out = tmp_path / "killed"
    state = out / "ckpt.pt.state"
    kill_after(monkeypatch, nerv_train, saves=1)
    with pytest.raises(Killed):
        nerv(out, seed=1)
    monkeypatch.undo()
    saved_bytes = state.read_bytes()
    with caplog.at_level(logging.INFO, logger="xinc.train"):
        rerun = nerv(out, seed=2)  # other settings: trains from scratch, completes
    assert "resumed" not in caplog.text
    (aside,) = set_aside_files(state)
    assert aside.read_bytes() == saved_bytes and not state.exists()
    (message,) = warnings_about(caplog, state)
    assert str(aside) in message and "seed: saved 1, now 2" in message
    assert_same_weights(tmp_path / "fresh" / "ckpt.pt", out / "ckpt.pt")
    assert strip_seconds(rerun) == strip_seconds(fresh)


def test_changed_training_setting_is_named(tmp_path: Path, monkeypatch, caplog) -> None:
    kill_after(monkeypatch, nerv_train, saves=1)
    with pytest.raises(Killed):
        nerv(tmp_path, seed=1)
    monkeypatch.undo()
    state = tmp_path / "ckpt.pt.state"
    with caplog.at_level(logging.WARNING, logger="xinc.train"):
        nerv(tmp_path, seed=1, lr=1e-3)
    (message,) = warnings_about(caplog, state)
    assert "train.lr: saved 0.003, now 0.001" in message and "seed" not in message
    assert len(set_aside_files(state)) == 1 and (tmp_path / "ckpt.pt").exists()


def test_checkpoint_every_does_not_change_the_run(tmp_path: Path, monkeypatch, caplog) -> None:
    kill_after(monkeypatch, nerv_train, saves=1)
    with pytest.raises(Killed):
        nerv(tmp_path, seed=1)
    monkeypatch.undo()
    with caplog.at_level(logging.INFO, logger="xinc.train"):
        nerv(tmp_path, seed=1, checkpoint_every=3)  # how often state is saved: still resumable
    assert "at epoch 2/6" in caplog.text and not set_aside_files(tmp_path / "ckpt.pt.state")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"not a state file", "cannot be read"),
        (None, "is not an xinc training state"),  # a torch file, but not ours
    ],
)
def test_unreadable_state_is_set_aside(tmp_path: Path, caplog, content, reason) -> None:
    state = tmp_path / "ckpt.pt.state"
    if content is None:
        torch.save({"epoch": 3}, state)
        content = state.read_bytes()
    else:
        state.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="xinc.train"):
        nerv(tmp_path)
    (aside,) = set_aside_files(state, "unreadable")
    assert aside.read_bytes() == content and (tmp_path / "ckpt.pt").exists()
    (message,) = warnings_about(caplog, state)
    assert reason in message and str(aside) in message


def test_set_aside_never_overwrites(tmp_path: Path, monkeypatch) -> None:
    class Frozen(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> datetime:
            return datetime(2026, 5, 9, 7, 35, 12, tzinfo=tz)

    monkeypatch.setattr(resume, "datetime", Frozen)
    state = tmp_path / "ckpt.pt.state"
    names = []
    for i in range(3):
        state.write_text(f"state {i}")
        names.append(resume.set_aside(state, "stale").name)
    assert names == [
        "ckpt.pt.state.stale-20260509T073512Z",
        "ckpt.pt.state.stale-20260509T073512Z-2",
        "ckpt.pt.state.stale-20260509T073512Z-3",
    ]
    assert [(tmp_path / n).read_text() for n in names] == ["state 0", "state 1", "state 2"]


# --- FFN ------------------------------------------------------------------------------------

FFN_TRAIN = {"steps": 30, "eval_every": 7, "checkpoint_every": 10}


def ffn(out: Path, state_path: Path | None = None, seed: int = 3) -> dict:
    return train_ffn(
        uint8_frames(1, 32, 64)[0],
        TINY_FFN,
        FFN_TRAIN,
        seed=seed,
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


def test_ffn_state_from_another_run_is_set_aside(tmp_path: Path, monkeypatch, caplog) -> None:
    state = tmp_path / "ffn.state"
    kill_after(monkeypatch, ffn_train, saves=1)
    with pytest.raises(Killed):
        ffn(tmp_path, state, seed=3)
    monkeypatch.undo()
    saved_bytes = state.read_bytes()
    with caplog.at_level(logging.WARNING, logger="xinc.train"):
        ffn(tmp_path, state, seed=4)
    (aside,) = set_aside_files(state)
    assert aside.read_bytes() == saved_bytes and (tmp_path / "ckpt.pt").exists()
    assert "seed: saved 3, now 4" in warnings_about(caplog, state)[0]


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


def test_batched_stale_states_are_set_aside_each(tmp_path: Path, monkeypatch, caplog) -> None:
    state = tmp_path / "batch.state"
    saved_bytes = []
    for steps in (12, 10, 8):  # each run killed, then the next one started with other steps
        kill_after(monkeypatch, ffn_batched, saves=1)
        with caplog.at_level(logging.WARNING, logger="xinc.train"), pytest.raises(Killed):
            batch(tmp_path, state, steps=steps)
        monkeypatch.undo()
        saved_bytes.append(state.read_bytes())
    with caplog.at_level(logging.WARNING, logger="xinc.train"):
        batch(tmp_path, state, steps=6)
    assert sorted(p.read_bytes() for p in set_aside_files(state)) == sorted(saved_bytes)
    assert not state.exists() and len(list(tmp_path.glob("f*.pt"))) == 3
    messages = warnings_about(caplog, state)
    assert len(messages) == 3 and "train.steps: saved 12, now 10" in messages[0]


def test_batched_checkpointing_needs_a_state_path(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="state_path"):
        batch(tmp_path, None)
