"""The C kernels (xinc/native): NeRV map expansion against the torch ops, and the loader."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
import torch
from torch import nn

from xinc import native
from xinc.canvas import layer_names, n_neurons, nerv_canvas
from xinc.canvas import nerv as nerv_canvas_mod
from xinc.canvas.nerv import fused
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
    c_maps = nerv_canvas(model, 0.3, **kwargs)
    monkeypatch.setenv("XINC_NATIVE", "off")
    return c_maps, nerv_canvas(model, 0.3, **kwargs)


@needs_compiler
@pytest.mark.parametrize("settings", [{}, {"strides": [3, 2], "kernel": 5},
                                      {"strides": [2, 2, 2, 2], "fc_hw": [1, 2]},
                                      {"strides": [4], "kernel": 1, "fc_hw": [3, 2]}])
@pytest.mark.parametrize("bias", ["split", "separate"])
def test_fused_expansion_equals_torch_ops(settings, bias, monkeypatch):
    model = small_nerv(3, **settings)
    c_maps, plain = both_paths(model, monkeypatch, bias=bias)
    for name in layer_names(model):
        scale = plain[name].abs().max()
        assert scale > 0, name
        torch.testing.assert_close(c_maps[name], plain[name], rtol=1e-5, atol=1e-6 * scale)


@needs_compiler
def test_fused_expansion_tanh_gelu_and_fallbacks(monkeypatch):
    """GELU(tanh) runs in C; an activation expand.c lacks (ReLU) falls back to torch."""
    model = small_nerv(5)
    for block in model.blocks:
        block.act = nn.GELU(approximate="tanh")
    c_maps, plain = both_paths(model, monkeypatch)
    for name in plain:
        torch.testing.assert_close(c_maps[name], plain[name], rtol=1e-5,
                                   atol=1e-6 * plain[name].abs().max())
    model.blocks[-1].act = nn.ReLU()
    monkeypatch.setenv("XINC_NATIVE", "on")
    pipe = Pipeline(model, "b1", "split")
    assert pipe.tables.supported is False
    x = nerv_canvas_mod.layer_input(model, 0.3, "b1")
    ids = torch.arange(n_neurons(model, "b1"))
    out = torch.empty(len(ids), *model.cfg.output_size)
    assert fused.expand(pipe._activated(x, ids), ids, pipe.tables, out) is False
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
    with pytest.warns(RuntimeWarning, match="instead of the C kernels"):
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
    assert len(built) == 1 and built[0].startswith("xinc-") and built[0].endswith(".so")
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
        fused.expand(pipe._activated(x, ids), ids, pipe.tables, torch.empty(16, h, w + 1))
    assert fused.expand(pipe._activated(x, ids)[:0], ids[:0], pipe.tables,
                         torch.empty(0, h, w)) is True


# --------------------------------------------------------------------------- statistics kernels


def random_values(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Non-negative float32 values spanning many coarse bins, with zeros and denormals."""
    g = torch.Generator().manual_seed(seed)
    v = torch.rand(shape, generator=g) ** 6 * 10.0 ** torch.randint(-40, 5, shape, generator=g)
    v.view(-1)[::7] = 0.0
    v.view(-1)[::11] = 1e-41  # a denormal
    return v.float()


@needs_compiler
def test_coarse_histogram_kernel_equals_numpy(monkeypatch):
    from xinc.stats import mass

    flat = random_values((300_001,), 1).numpy()
    monkeypatch.setenv("XINC_NATIVE", "off")
    ref_count, ref_mass = mass._coarse(flat)
    monkeypatch.setenv("XINC_NATIVE", "on")
    count, c_mass = mass._coarse(flat)
    assert np.array_equal(count, ref_count) and np.array_equal(c_mass, ref_mass)  # same order
    assert count.sum() == len(flat)
    with pytest.raises(ValueError, match="non-negative"):
        mass._coarse(-flat[:10] - 1.0)


@needs_compiler
@pytest.mark.parametrize("threads", [1, 3])
def test_bin_scan_kernel_equals_torch(threads, monkeypatch):
    """Above-bin counts and the kept (pixel, value) pairs in row-major order, also when one
    bin holds more entries than a part's first buffer (all the zeros: bin 0)."""
    from xinc.stats.mass import scan_bins
    from xinc.stats.workspace import Workspaces

    flat = random_values((37, 5003), 2)  # 5003: the kernel's scalar tail too
    bins = (flat.view(torch.int32) >> 16).flatten()
    chosen = {"a": int(bins[123]), "b": int(bins[4567]), "zeros": 0}
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    monkeypatch.setenv("XINC_NATIVE", "off")
    ref = scan_bins(flat, chosen, Workspaces())
    monkeypatch.setenv("XINC_NATIVE", "on")
    got = scan_bins(flat, chosen, Workspaces())
    assert len(got["zeros"][1]) > 4096
    for k in chosen:
        assert torch.equal(got[k][0], ref[k][0]), k
        assert np.array_equal(got[k][1], ref[k][1]) and np.array_equal(got[k][2], ref[k][2]), k
        in_bin = bins.view(37, 5003) == chosen[k]
        assert len(got[k][1]) == int(in_bin.sum())
        assert np.array_equal(got[k][0].numpy(), (bins.view(37, 5003) > chosen[k]).sum(0))


@needs_compiler
@pytest.mark.parametrize("layer", ["b2", "b1"])
def test_frame_stats_identical_with_and_without_kernels(layer, monkeypatch):
    """The same maps give the same statistics with the histogram kernels and without."""
    from xinc.stats.frame import frame_stats
    from xinc.stats.groupings import grid_groups

    model = small_nerv(11)
    h, w = model.cfg.output_size
    maps = nerv_canvas(model, 0.4, layers=[layer])[layer]
    n = len(maps)

    def chunks():
        return ((torch.arange(s, min(s + 48, n)), maps[s:s + 48]) for s in range(0, n, 48))

    stats = {}
    for setting in ("on", "off"):
        monkeypatch.setenv("XINC_NATIVE", setting)
        stats[setting] = frame_stats(chunks, grid_groups(h, w, (2, 2)), n, h, w, [0, 5])
    assert stats["on"].keys() == stats["off"].keys()
    for key, value in stats["off"].items():
        assert np.array_equal(stats["on"][key], value), key


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_split_map_ranges_and_fork(monkeypatch):
    """Ranges cover 0 … n − 1 in order with np.array_split's sizes; a forked child (a data
    loader's worker, say) still runs them (the parent's pool threads do not exist there)."""
    from xinc.native import split_map

    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
    assert split_map(lambda a, b: (a, b), 10) == [(0, 4), (4, 7), (7, 10)]  # pool made here
    assert split_map(lambda a, b: (a, b), 10) == [(0, 4), (4, 7), (7, 10)]  # its threads run
    assert split_map(lambda a, b: (a, b), 10, min_part=4) == [(0, 5), (5, 10)]
    assert split_map(lambda a, b: (a, b), 0) == [(0, 0)]
    pid = os.fork()
    if pid == 0:
        signal.alarm(20)  # a hang ends the child with SIGALRM
        os._exit(0 if split_map(lambda a, b: b - a, 10) == [4, 3, 3] else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_native_command(tmp_path, monkeypatch, capsys):
    """`xinc native` builds into the cache and says where; a failing compiler is a clear error
    (exit 2) with the compiler's own message."""
    from xinc.cli import main

    monkeypatch.setenv("XINC_CACHE", str(tmp_path))
    if native.compiler_found():
        assert main(["native"]) == 0
        out = capsys.readouterr().out
        built = list(tmp_path.glob("xinc-*.so"))
        assert len(built) == 1 and str(built[0]) in out
    monkeypatch.setenv("CC", "false")
    assert main(["native"]) == 2
    err = capsys.readouterr().err
    assert "failed on" in err and "slower torch/numpy code" in err


@needs_compiler
def test_unwritable_cache_builds_in_the_temporary_directory(tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(native.tempfile, "tempdir", None)  # re-read TMPDIR
    path = native._build(native._compiler(), blocked / "cache")
    assert path.parent.parent == tmp_path / "tmp" and path.exists()
