"""Import of checkpoints written by the authors' code (xinc.models.authors, load_checkpoint)."""

from __future__ import annotations

import builtins
import enum
import io
import os
import pickle
import shutil
import subprocess
import sys
from collections.abc import Iterator
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
from xinc.models.authors import (
    StandIn,
    UnknownKeyError,
    infer_fc_hw,
    plain,
    read_checkpoint,
)


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


class AttributeDict(dict):
    """A dict subclass (like Lightning's `AttributeDict`): pickled items go to a stand-in."""


class Layers(list):
    """A list subclass."""


def test_dict_and_list_subclasses_keep_their_items(tmp_path) -> None:
    hparams = AttributeDict(lr=1e-3, sizes=Layers([16, 16]), nested=AttributeDict(a=None))
    torch.save({"hyper_parameters": hparams, "w": torch.ones(2)}, tmp_path / "h.ckpt")
    payload = read_checkpoint(tmp_path / "h.ckpt")
    stand_in = payload["hyper_parameters"]
    assert isinstance(stand_in, StandIn) and not isinstance(stand_in, dict)
    assert plain(stand_in) == {"lr": 1e-3, "sizes": [16, 16], "nested": {"a": None}}
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
    with pytest.raises(RuntimeError, match="cannot be read as a model checkpoint"):
        load_checkpoint(tmp_path / "bad.pt")


# ----------------------------------------------------------------------------- real omegaconf

def lightning_checkpoint(model: FFN, hyper_parameters: object) -> dict:
    """What image_inr's Lightning trainer writes: weights under `model.`, optimizer, callbacks."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(ffn_coords(4, 8)).pow(2).mean().backward()
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=10)
    return {
        "epoch": 9, "global_step": 10, "pytorch-lightning_version": "1.9.5",
        "state_dict": {f"model.{k}": v for k, v in to_authors_state_dict(model).items()},
        "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"current": {"ready": 10}}}},
        "callbacks": {"ModelCheckpoint{'monitor': 'psnr', 'mode': 'max'}": {
            "monitor": "psnr", "best_model_score": torch.tensor(31.5),
            "best_model_path": "/ckpts/best_model.ckpt", "kth_value": torch.tensor(float("inf")),
            "best_k_models": {}, "dirpath": "/ckpts"}},
        "optimizer_states": [optimizer.state_dict()],
        "lr_schedulers": [scheduler.state_dict()],
        "hparams_name": "kwargs",
        "hyper_parameters": hyper_parameters,
    }


OMEGA_CFG = {
    "area": "${xinc_mul:32,64}",  # a cached resolver: its cache pickles as a defaultdict
    "network": {"layer_size": 16, "num_layers": 3, "act": "relu", "dropout": None},
    "data": {"size": [32, 64], "frames": [0, 15, 29], "path": "/data/${network.act}"},
    "trainer": {"lr": 1e-3, "max_epochs": 1000, "missing": "???", "ratio": "${trainer.lr}"},
    "seeds": [{"seed": 1}, {"seed": 2, "tags": ["a", "b"]}],
    "name": "ffn",
}


def mul(a: int, b: int) -> int:
    return a * b


@pytest.fixture
def omega_cfg() -> Iterator[object]:
    """An omegaconf DictConfig like image_inr's, its resolver cache filled."""
    omegaconf = pytest.importorskip("omegaconf")
    omegaconf.OmegaConf.register_resolver("xinc_mul", mul, use_cache=True)
    cfg = omegaconf.OmegaConf.create(OMEGA_CFG)
    assert cfg.area == 2048 and cfg.trainer.ratio == 1e-3
    yield cfg
    omegaconf.OmegaConf.clear_resolver("xinc_mul")


def load_without_omegaconf(path: Path) -> tuple[FFN, dict]:
    """`load_checkpoint` and `read_checkpoint` of `path` while importing omegaconf fails."""
    with pytest.MonkeyPatch.context() as patch:
        for name in [m for m in sys.modules if m.split(".")[0] == "omegaconf"]:
            patch.setitem(sys.modules, name, None)
        return load_checkpoint(path), read_checkpoint(path)


@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
def test_lightning_checkpoint_with_real_omegaconf(tmp_path, omega_cfg, zipped) -> None:
    omegaconf, cfg = sys.modules["omegaconf"], omega_cfg
    torch.manual_seed(0)
    ours = build_model("ffn", {"width": 16, "fourier_scale": 1.0}).eval()
    path = tmp_path / "best_model.ckpt"
    torch.save(lightning_checkpoint(ours, {"cfg": cfg, "list": cfg.seeds}), path,
               _use_new_zipfile_serialization=zipped)
    expected = omegaconf.OmegaConf.to_container(cfg)  # interpolations stay unresolved
    model, payload = load_without_omegaconf(path)
    assert isinstance(model, FFN) and model.cfg.width == 16
    assert model.meta["format"] == "lightning" and model.meta["epoch"] == 9
    coords = ffn_coords(8, 16)
    with torch.no_grad():
        assert torch.equal(model(coords), ours(coords))
    assert expected["trainer"]["ratio"] == "${trainer.lr}"
    assert model.meta["hyper_parameters"] == {"cfg": expected, "list": expected["seeds"]}
    assert isinstance(payload["hyper_parameters"]["cfg"], StandIn)
    assert payload["hyper_parameters"]["cfg"].name == "omegaconf.dictconfig.DictConfig"
    assert torch.equal(payload["callbacks"][next(iter(payload["callbacks"]))]["kth_value"],
                       torch.tensor(float("inf")))
    assert payload["optimizer_states"][0]["param_groups"][0]["betas"] == (0.9, 0.999)


def test_hyper_parameters_as_a_dictconfig(tmp_path, omega_cfg) -> None:
    """Lightning stores `model.hparams` itself when it is an omegaconf container."""
    omegaconf, cfg = sys.modules["omegaconf"], omega_cfg
    torch.manual_seed(1)
    ours = build_model("ffn", {"width": 16}).eval()
    payload = lightning_checkpoint(ours, cfg)
    payload["hparams_type"] = type(cfg)  # a class reference, not an instance
    torch.save(payload, tmp_path / "last.ckpt")
    expected = omegaconf.OmegaConf.to_container(cfg)
    model, _ = load_without_omegaconf(tmp_path / "last.ckpt")
    assert model.meta["hyper_parameters"] == expected


class Evil:
    """Pickles as a call of `func(*args)`: what a malicious checkpoint would run on load."""

    def __init__(self, func: object, *args: object) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple:
        return self.func, self.args


def evil_payloads(marker: Path) -> list[Evil]:
    script = f"open({str(marker)!r}, 'w').write('pwned')"
    nested = io.BytesIO()  # torch's own loader of pickled storages would run this one
    torch.save(Evil(os.system, f"touch {marker}"), nested)
    return [
        Evil(os.system, f"touch {marker}"),
        Evil(builtins.exec, script),
        Evil(builtins.eval, script),
        Evil(os.mkdir, str(marker)),
        Evil(Path.write_text, marker, "pwned"),  # pickled as getattr(Path, "write_text")
        Evil(subprocess.call, ["touch", str(marker)]),
        Evil(torch.storage._load_from_bytes, nested.getvalue()),
        Evil(shutil.copyfile, __file__, str(marker)),
    ]


@pytest.mark.parametrize("index", range(8))
def test_malicious_pickle_is_not_executed(tmp_path, index) -> None:
    marker = tmp_path / "pwned"
    evil = evil_payloads(marker)[index]
    torch.manual_seed(0)
    ours = build_model("ffn", {"width": 8}).eval()
    path = tmp_path / "evil.ckpt"
    torch.save(lightning_checkpoint(ours, {"cfg": evil, "nested": [evil, {"x": evil}]}), path)
    try:
        model = load_checkpoint(path)
    except RuntimeError as err:  # refusing is fine, if it says why
        assert str(path) in str(err)
    else:
        assert isinstance(model, FFN)
        assert isinstance(read_checkpoint(path)["hyper_parameters"]["cfg"], StandIn)
    assert not marker.exists()


def test_unreadable_file_error_names_formats_and_never_says_delete(tmp_path) -> None:
    path = tmp_path / "model_best.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message and "delete" not in message.lower()
    assert "HNeRV" in message and "Lightning" in message and "xinc" in message
