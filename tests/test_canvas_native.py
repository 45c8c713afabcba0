"""The fused C expansion of reference maps (expand.c) against the torch ops, and its loader."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from xinc.canvas import layer_names, n_neurons, nerv_canvas
from xinc.canvas import nerv as nerv_canvas_mod
from xinc.canvas.nerv import native
from xinc.canvas.nerv.reference import Pipeline
from xinc.models import build_model

needs_compiler = pytest.mark.skipif(not native.compiler_found(), reason="no C compiler")


def small_nerv(seed: int, **settings) -> torch.nn.Module:
    torch.manual_seed(seed)
    cfg = {"fc_dim": 5, "fc_hw": [2, 3], "out": "0.0", **settings}
    return build_model("nerv", cfg).eval()


def both_paths(model, monkeypatch, **kwargs) -> tuple[dict, dict]:
    """nerv_canvas with the C expansion required, then with the torch ops only."""
    monkeypatch.setenv("XINC_NATIVE", "on")
    fused = nerv_canvas(model, 0.3, **kwargs)
    monkeypatch.setenv("XINC_NATIVE", "off")
    return fused, nerv_canvas(model, 0.3, **kwargs)


@needs_compiler
@pytest.mark.parametrize("settings", [{}, {"strides": [3, 2], "kernel": 5},
                                      {"strides": [2, 2, 2, 2], "fc_hw": [1, 2]},
                                      {"strides": [4], "kernel": 1, "fc_hw": [3, 2]}])
@pytest.mark.parametrize("bias", ["split", "separate"])
def test_fused_expansion_equals_torch_ops(settings, bias, monkeypatch):
    model = small_nerv(3, **settings)
    fused, plain = both_paths(model, monkeypatch, bias=bias)
    for name in layer_names(model):
        scale = plain[name].abs().max()
        assert scale > 0, name
        torch.testing.assert_close(fused[name], plain[name], rtol=1e-5, atol=1e-6 * scale)


@needs_compiler
def test_fused_expansion_tanh_gelu_and_fallbacks(monkeypatch):
    """GELU(tanh) runs in C; an activation expand.c lacks (ReLU) falls back to torch."""
    model = small_nerv(5)
    for block in model.blocks:
        block.act = nn.GELU(approximate="tanh")
    fused, plain = both_paths(model, monkeypatch)
    for name in plain:
        torch.testing.assert_close(fused[name], plain[name], rtol=1e-5,
                                   atol=1e-6 * plain[name].abs().max())
    model.blocks[-1].act = nn.ReLU()
    monkeypatch.setenv("XINC_NATIVE", "on")
    pipe = Pipeline(model, "b1", "split")
    assert pipe.tables.supported is False
    x = nerv_canvas_mod.layer_input(model, 0.3, "b1")
    ids = torch.arange(n_neurons(model, "b1"))
    out = torch.empty(len(ids), *model.cfg.output_size)
    assert native.expand(pipe._activated(x, ids), ids, pipe.tables, out) is False
    assert torch.isfinite(pipe(x, ids)).all()


@needs_compiler
def test_fused_expansion_runs_on_threads_deterministically(monkeypatch):
    """Neuron ranges on 1 or 3 threads give bit-identical maps."""
    model = small_nerv(6, strides=[2, 2])
    monkeypatch.setenv("XINC_NATIVE", "on")
    runs = []
    for threads in (1, 3):
        monkeypatch.setattr(torch, "get_num_threads", lambda t=threads: t)
        runs.append(nerv_canvas(model, 0.7, layers=["b1"])["b1"])
    assert torch.equal(runs[0], runs[1])


def test_setting_values(monkeypatch):
    for value, expected in [("", "auto"), ("auto", "auto"), ("1", "on"), ("OFF", "off")]:
        monkeypatch.setenv("XINC_NATIVE", value or "auto")
        assert native.setting() == expected
    monkeypatch.setenv("XINC_NATIVE", "fast")
    with pytest.raises(ValueError, match="XINC_NATIVE='fast'"):
        native.setting()
    monkeypatch.setenv("XINC_NATIVE", "off")
    assert native.library() is None


def test_failed_build_falls_back_or_raises(monkeypatch, tmp_path):
    """A compiler that fails: `auto` warns and the torch ops give the maps; `on` raises;
    nothing (no partial library) is left in the cache."""
    monkeypatch.setenv("CC", "false")
    monkeypatch.setenv("XINC_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("XINC_NATIVE", "on")
    with pytest.raises(native.NativeBuildError, match="XINC_NATIVE=on"):
        native.library()
    monkeypatch.setenv("XINC_NATIVE", "auto")
    model = small_nerv(7)
    with pytest.warns(RuntimeWarning, match="slower torch expansion"):
        maps = nerv_canvas(model, 0.5, layers=["b1"])["b1"]
    monkeypatch.setenv("XINC_NATIVE", "off")
    torch.testing.assert_close(maps, nerv_canvas(model, 0.5, layers=["b1"])["b1"],
                               rtol=0, atol=0)
    assert list((tmp_path / "cache").iterdir()) == []


@needs_compiler
def test_build_is_cached_per_source(monkeypatch, tmp_path):
    monkeypatch.setenv("XINC_CACHE", str(tmp_path))
    monkeypatch.setenv("XINC_NATIVE", "on")
    assert native.library() is not None
    built = sorted(p.name for p in tmp_path.iterdir())
    assert len(built) == 1 and built[0].startswith("expand-") and built[0].endswith(".so")
    assert native.library() is native.library()
    assert sorted(p.name for p in tmp_path.iterdir()) == built


@needs_compiler
def test_expand_checks_the_output_shape(monkeypatch):
    monkeypatch.setenv("XINC_NATIVE", "on")
    model = small_nerv(9)
    pipe = Pipeline(model, "b2", "split")
    x = nerv_canvas_mod.layer_input(model, 0.1, "b2")
    ids = torch.arange(16)
    h, w = model.cfg.output_size
    with pytest.raises(ValueError, match="the stages make"):
        native.expand(pipe._activated(x, ids), ids, pipe.tables, torch.empty(16, h, w + 1))
    assert native.expand(pipe._activated(x, ids)[:0], ids[:0], pipe.tables,
                         torch.empty(0, h, w)) is True
