"""Import of checkpoints written by the authors' code (xinc.models.authors, load_checkpoint)."""

from __future__ import annotations

import enum
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from xinc.models import (
    FFN,
    NeRV,
    build_model,
    ffn_coords,
    import_checkpoint,
    load_checkpoint,
    save_checkpoint,
    to_authors_state_dict,
)
from xinc.models.authors import StandIn, UnknownKeyError, infer_fc_hw, read_checkpoint


def fixture(fixtures_dir: Path, name: str) -> dict[str, np.ndarray]:
    with np.load(fixtures_dir / name) as z:
        return {k: z[k] for k in z.files}


def fixture_state(fx: dict[str, np.ndarray], prefix: str = "") -> dict[str, torch.Tensor]:
    return {prefix + k.removeprefix("state_dict/"): torch.from_numpy(v.copy())
            for k, v in fx.items() if k.startswith("state_dict/")}


def rel_err(a: torch.Tensor, b: np.ndarray) -> float:
    return float((a.detach().double() - torch.from_numpy(b).double()).abs().max()
                 / np.abs(b).max())


class Colour(enum.Enum):
    RED = 1


class FakeDictConfig:
    """A non-builtin class in hyper_parameters, standing for omegaconf's DictConfig."""

    def __init__(self) -> None:
        self.network = {"layer_size": 16, "num_layers": 3}
        self.colour = Colour.RED


# ----------------------------------------------------------------------------- NeRV

@pytest.mark.parametrize("prefix", ["", "module.", "blocks.0.", "module.blocks.0."])
def test_nerv_authors_checkpoint_matches_fixture(fixtures_dir, tmp_path, prefix) -> None:
    fx = fixture(fixtures_dir, "authors_nerv_small.npz")
    state = fixture_state(fx, prefix)
    path = tmp_path / "model_best.pth"
    if prefix:
        torch.save({"epoch": 300, "state_dict": state, "optimizer": {"state": {}}}, path)
    else:
        torch.save(state, path)  # a bare state dict
    model = load_checkpoint(path)
    assert isinstance(model, NeRV)
    assert model.cfg.fc_hw == (2, 4) and model.cfg.widths == (8, 7, 6, 6)
    assert model.cfg.strides == (4, 2, 2) and model.cfg.pe_levels == 80 and model.cfg.out == "tanh"
    assert model.meta["source"] == "authors" and model.meta["path"] == str(path)
    assert model.meta.get("epoch") == (300 if prefix else None)
    assert (model.meta["height"], model.meta["width"]) == (32, 64)
    t = torch.from_numpy(fx["t"])
    assert t.dtype == torch.float64
    with torch.no_grad():
        trace = model.trace(t)
    assert float((trace.pe[0] - torch.from_numpy(fx["pe"])).abs().max()) <= 1e-6
    assert rel_err(trace.head_out[0], fx["head_out"]) <= 1e-5
    # the rendered image uses the training-time map 0.5·tanh(h) + 0.5
    torch.testing.assert_close(trace.output, 0.5 * torch.tanh(trace.head_out) + 0.5)


def test_nerv_unknown_key_names_key_and_file(fixtures_dir, tmp_path) -> None:
    fx = fixture(fixtures_dir, "authors_nerv_small.npz")
    state = fixture_state(fx, "module.")
    state["module.encoder.stem.weight"] = torch.zeros(2)
    path = tmp_path / "hnerv.pth"
    torch.save({"state_dict": state}, path)
    with pytest.raises(KeyError) as info:
        load_checkpoint(path)
    assert isinstance(info.value, UnknownKeyError)
    assert "module.encoder.stem.weight" in str(info.value) and str(path) in str(info.value)
    with pytest.warns(UserWarning, match="encoder"):
        assert isinstance(load_checkpoint(path, strict=False), NeRV)


def test_nerv_keys_behind_another_prefix_rejected(fixtures_dir, tmp_path) -> None:
    fx = fixture(fixtures_dir, "authors_nerv_small.npz")
    state = {**fixture_state(fx, "module."), "ema.head_layer.bias": torch.zeros(3)}
    torch.save({"state_dict": state}, tmp_path / "two.pth")
    with pytest.raises(KeyError, match="'ema.head_layer.bias'.*prefix 'module.'"):
        load_checkpoint(tmp_path / "two.pth")


def test_paper_size_nerv_round_trip(tmp_path) -> None:
    torch.manual_seed(3)
    ours = build_model("nerv", {}).eval()
    authors = {"module." + k: v for k, v in to_authors_state_dict(ours).items()}
    assert "module.decoder.0.conv.downconv.weight" in authors
    assert authors["module.decoder.0.conv.downconv.weight"].shape == (4736, 160, 1, 1)
    assert "module.head_layer.bias" in authors and not any("omega" in k for k in authors)
    torch.save({"epoch": 1000, "state_dict": authors}, tmp_path / "epoch1000.pth")
    model = load_checkpoint(tmp_path / "epoch1000.pth")
    assert model.cfg.fc_dim == 37 and model.cfg.widths == (37, 31, 26, 22)
    assert model.cfg.fc_hw == (8, 16) and model.cfg.output_size == (128, 256)
    assert torch.equal(model.pe.omega, ours.pe.omega)
    t = torch.tensor([0.0, 7 / 30, 29 / 30], dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(model(t), ours(t))


def test_fc_hw_inference_and_override(tmp_path) -> None:
    assert infer_fc_hw(128) == (8, 16) and infer_fc_hw(8) == (2, 4)
    assert infer_fc_hw(12, (3, 4)) == (3, 4)
    with pytest.raises(ValueError, match="pass fc_hw"):
        infer_fc_hw(12)
    with pytest.raises(ValueError, match="cells"):
        infer_fc_hw(12, (2, 5))
    torch.manual_seed(0)
    ours = build_model("nerv", {"fc_hw": [3, 4], "fc_dim": 6, "strides": [2, 2],
                                "out": "0.0"}).eval()
    torch.save({"state_dict": to_authors_state_dict(ours)}, tmp_path / "a.pth")
    with pytest.raises(ValueError, match="pass fc_hw"):
        load_checkpoint(tmp_path / "a.pth")
    model = load_checkpoint(tmp_path / "a.pth", fc_hw=(3, 4), settings={"out": "0.0"})
    t = torch.tensor([0.25], dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(model(t), ours(t))


# ----------------------------------------------------------------------------- FFN

def test_ffn_lightning_checkpoint_matches_fixture(fixtures_dir, tmp_path) -> None:
    fx = fixture(fixtures_dir, "authors_ffn_small.npz")
    path = tmp_path / "best_model.ckpt"
    torch.save({"epoch": 999, "global_step": 1000, "pytorch-lightning_version": "2.1.0",
                "state_dict": fixture_state(fx, "model."),
                "hyper_parameters": {"cfg": FakeDictConfig()}}, path)
    with pytest.raises(pickle.UnpicklingError):  # what a plain weights-only load says
        torch.load(path, weights_only=True)
    model = load_checkpoint(path)
    assert isinstance(model, FFN) and model.cfg.width == 16 and model.cfg.layers == 3
    assert model.meta["epoch"] == 999 and model.meta["global_step"] == 1000
    assert model.meta["format"] == "lightning"
    assert model.meta["hyper_parameters"] == {
        "cfg": {"network": {"layer_size": 16, "num_layers": 3}, "colour": 1}}
    with torch.no_grad():
        out = model(ffn_coords(32, 64))
    assert float((out - torch.from_numpy(fx["output"])).abs().max()) <= 1e-6


def test_stand_ins_are_inert(tmp_path) -> None:
    torch.save({"x": FakeDictConfig(), "w": torch.ones(2)}, tmp_path / "p.pt")
    payload = read_checkpoint(tmp_path / "p.pt")
    assert isinstance(payload["x"], StandIn) and not isinstance(payload["x"], FakeDictConfig)
    assert payload["x"].name.endswith("FakeDictConfig")
    assert payload["x"].state["network"] == {"layer_size": 16, "num_layers": 3}
    assert torch.equal(payload["w"], torch.ones(2))


def test_import_checkpoint_writes_xinc_format(fixtures_dir, tmp_path) -> None:
    fx = fixture(fixtures_dir, "authors_ffn_small.npz")
    src = tmp_path / "best_model.ckpt"
    torch.save({"epoch": 999, "state_dict": fixture_state(fx, "model."),
                "hyper_parameters": {"cfg": FakeDictConfig()}}, src)
    dst = tmp_path / "out" / "ckpt.pt"
    import_checkpoint(src, dst, arch="ffn", meta={"height": 32, "width": 64, "frame": 0})
    payload = torch.load(dst, weights_only=True)  # our format: plain data only
    assert payload["arch"] == "ffn" and payload["config"]["width"] == 16
    model = load_checkpoint(dst)
    assert model.meta["source"] == "authors" and model.meta["height"] == 32
    with torch.no_grad():
        out = model(ffn_coords(32, 64))
    assert float((out - torch.from_numpy(fx["output"])).abs().max()) <= 1e-6
    with pytest.raises(ValueError, match="holds a FFN state dict, not the requested 'nerv'"):
        import_checkpoint(src, tmp_path / "x.pt", arch="nerv")
    with pytest.raises(ValueError, match="not the requested 'nerv'"):
        import_checkpoint(dst, tmp_path / "y.pt", arch="nerv")  # an xinc FFN checkpoint


def test_own_checkpoints_still_load(tmp_path) -> None:
    torch.manual_seed(0)
    model = build_model("ffn", {"width": 8})
    save_checkpoint(tmp_path / "c.pt", model, {"seed": 1})
    loaded = load_checkpoint(tmp_path / "c.pt")
    assert loaded.meta == {"seed": 1}
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="not a readable xinc checkpoint"):
        load_checkpoint(tmp_path / "bad.pt")
