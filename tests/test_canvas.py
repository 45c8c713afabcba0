"""Contribution maps: the authors' fixtures, exact invariants (docs/method.md §5) and streaming."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.conftest import fixture_path
from xinc import native
from xinc.canvas import (
    canvas_size,
    default_chunk,
    ffn_canvas,
    iter_canvas,
    layer_names,
    n_neurons,
    nerv_canvas,
)
from xinc.canvas import ffn as ffn_canvas_mod
from xinc.canvas import nerv as nerv_canvas_mod
from xinc.models import build_model
from xinc.models.authors import authors_state_to_ours
from xinc.models.ffn import ffn_coords


def rel_err(mine: torch.Tensor | np.ndarray, ref: torch.Tensor | np.ndarray) -> float:
    """max |mine − ref| / max |ref| (tests/fixtures/README.md's measure)."""
    mine, ref = (torch.as_tensor(a).detach().double() for a in (mine, ref))
    return float((mine - ref).abs().max() / ref.abs().max())


def load_fixture(name: str) -> dict[str, np.ndarray]:
    with np.load(fixture_path(name)) as z:
        return {k: z[k] for k in z.files}


def state_dict(fx: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k.removeprefix("state_dict/"): torch.from_numpy(v)
            for k, v in fx.items() if k.startswith("state_dict/")}


@pytest.fixture(scope="module")
def authors_nerv():
    fx = load_fixture("authors_nerv_small.npz")
    model = build_model("nerv", {"fc_dim": 8, "fc_hw": [2, 4], "out": "0.0"})
    state = authors_state_to_ours(state_dict(fx), "nerv")
    state["pe.omega"] = model.pe.omega
    model.load_state_dict(state)
    return model.eval(), fx


@pytest.fixture(scope="module")
def authors_ffn():
    fx = load_fixture("authors_ffn_small.npz")
    model = build_model("ffn", {"width": 16})
    model.load_state_dict(state_dict(fx))
    return model.eval(), fx


def small_nerv(seed: int = 0, **settings) -> torch.nn.Module:
    torch.manual_seed(seed)
    cfg = {"fc_dim": 5, "fc_hw": [2, 3], "out": "0.0", **settings}
    return build_model("nerv", cfg).eval()


def small_ffn(seed: int = 0, width: int = 8, layers: int = 3) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("ffn", {"width": width, "layers": layers}).eval()


# --------------------------------------------------------------------------- fixtures


@pytest.mark.parametrize("expansion", [  # the fused C expansion, then the torch ops
    pytest.param("on", marks=pytest.mark.skipif(not native.compiler_found(),
                                                reason="no C compiler")), "off"])
def test_nerv_reference_matches_authors(authors_nerv, expansion, monkeypatch):
    model, fx = authors_nerv
    monkeypatch.setenv("XINC_NATIVE", expansion)
    assert np.array_equal(model.pe.omega.numpy(), fx["pe_omega"])
    maps = nerv_canvas(model, torch.tensor(fx["t"]))
    assert list(maps) == ["head", "b3", "b2", "b1"]
    for name, tensor in maps.items():
        ref = fx[f"maps/{name}"]
        ref = ref.reshape(-1, *ref.shape[2:])  # (i, k, H, W) → neuron i·K + k
        assert tensor.shape == ref.shape and tensor.dtype == torch.float32
        assert rel_err(tensor, ref) <= 1e-5, name


def test_nerv_placed_maps_match_authors(authors_nerv):
    model, fx = authors_nerv
    for name in ("b3", "b2", "b1"):
        x = nerv_canvas_mod.layer_input(model, float(fx["t"][0]), name)
        ids = torch.arange(n_neurons(model, name))
        placed = nerv_canvas_mod.placed_maps(model, x, name, ids)
        ref = fx[f"maps/{name}_before_gelu"]
        ref = ref.reshape(-1, *ref.shape[2:])
        assert rel_err(placed, ref) <= 1e-5, name
        assert np.array_equal(placed.numpy() == 0, ref == 0), name


def test_ffn_reference_matches_authors(authors_ffn):
    model, fx = authors_ffn
    assert torch.equal(ffn_coords(32, 64), torch.from_numpy(fx["coords"]))
    maps = ffn_canvas(model, 32, 64)
    for layer in (1, 2, 3):
        ref = fx[f"maps/layer_{layer}_output_contrib"]
        assert maps[f"l{layer}"].shape == ref.shape
        assert rel_err(maps[f"l{layer}"], ref) <= 1e-4, layer


# --------------------------------------------------------------------------- invariants


def test_layer_names_and_counts_paper_models():
    nerv = build_model("nerv", {})
    assert layer_names(nerv) == ["head", "b3", "b2", "b1"]
    assert [n_neurons(nerv, name) for name in layer_names(nerv)] == [66, 2288, 3224, 18352]
    assert canvas_size(nerv) == (128, 256)
    ffn = build_model("ffn", {})
    assert layer_names(ffn) == ["l1", "l2", "l3"]
    assert [n_neurons(ffn, name) for name in layer_names(ffn)] == [208, 104, 104]
    with pytest.raises(ValueError, match="unknown NeRV layer"):
        n_neurons(nerv, "b4")
    with pytest.raises(ValueError, match="unknown FFN layer"):
        n_neurons(ffn, "head")
    with pytest.raises(ValueError, match="unknown canvas mode"):
        iter_canvas(ffn, "l1", height=4, width=4, mode="exactish")
    with pytest.raises(ValueError, match="frame time"):
        iter_canvas(nerv, "head")


def test_ffn_summed_contributions_give_preactivations():
    model = small_ffn(1, width=8, layers=4)
    h, w = 6, 10
    acts = model.trace(ffn_coords(h, w))
    for idx, layer in enumerate(layer_names(model)):
        u = ffn_canvas_mod.layer_input(model, layer, h, w)
        ids = torch.arange(n_neurons(model, layer))
        summed = ffn_canvas_mod.summed_contributions(model, u, layer, ids)
        z = model.net[idx].linear(acts[idx])  # pre-activation [P, m]
        torch.testing.assert_close(summed.sum(0), z.sum(1), rtol=1e-5, atol=1e-5)
    maps = ffn_canvas(model, h, w)
    torch.testing.assert_close(maps["l4"].sum(0).reshape(-1), acts[-1].sum(1),
                               rtol=1e-5, atol=1e-5)
    for layer in ("l1", "l2", "l3"):
        assert maps[layer].min() >= 0


def test_nerv_head_maps_sum_to_head_preactivation():
    model = small_nerv(2)
    trace = model.trace(torch.tensor([0.4], dtype=torch.float64))
    head = nerv_canvas(model, 0.4, layers=["head"])["head"]
    c_in = model.head.in_channels
    summed = head.reshape(c_in, 3, *head.shape[1:]).sum(0)
    assert rel_err(summed, trace.head_out[0]) <= 1e-5
    rendered = 0.5 * torch.tanh(summed) + 0.5
    tanh_model = small_nerv(2, out="tanh")
    torch.testing.assert_close(rendered, tanh_model(torch.tensor([0.4], dtype=torch.float64))[0],
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("settings", [{}, {"strides": [3, 2], "kernel": 5}])
def test_nerv_block_phase_support_and_sums(settings):
    model = small_nerv(3, **settings)
    trace = model.trace(torch.tensor([0.7], dtype=torch.float64))
    nexts = trace.block_inputs[1:] + [trace.head_input]
    for j, block in enumerate(model.blocks, start=1):
        layer = f"b{j}"
        x = trace.block_inputs[j - 1][0]
        conv, r = block.conv, block.shuffle.upscale_factor
        ids = torch.arange(n_neurons(model, layer))
        s = nerv_canvas_mod.placed_maps(model, x, layer, ids)
        k = ids % conv.out_channels
        phase = k % (r * r)
        rows = torch.arange(s.shape[1]) % r
        cols = torch.arange(s.shape[2]) % r
        support = (rows[None, :, None] * r + cols[None, None, :]) == phase[:, None, None]
        assert torch.all(s[~support] == 0)
        assert (s == 0).float().mean() >= 1 - 1 / r**2
        pieces = s.reshape(conv.in_channels, conv.out_channels // r**2, r * r, *s.shape[1:])
        z = pieces.sum((0, 2))
        z_ref = block.shuffle(conv(x[None]))[0]
        assert rel_err(z, z_ref) <= 1e-5
        assert rel_err(F.gelu(z), nexts[j - 1][0]) <= 1e-5


def naive_block_maps(model, x: torch.Tensor, layer: str) -> torch.Tensor:
    """Steps A–D written out with loops, plain masks and library pooling (test reference)."""
    j = int(layer[1:])
    conv, r = model.blocks[j - 1].conv, model.blocks[j - 1].shuffle.upscale_factor
    c_in, n_out = conv.in_channels, conv.out_channels
    maps = []
    for i in range(c_in):
        p = F.conv2d(x[i:i + 1][None], conv.weight[:, i:i + 1], conv.bias / c_in,
                     padding=conv.padding)[0]
        for k in range(n_out):
            g = k % (r * r)
            s = torch.zeros(p.shape[1] * r, p.shape[2] * r, dtype=p.dtype)
            s[g // r::r, g % r::r] = p[k]
            maps.append(s)
    out = F.gelu(torch.stack(maps))
    convs = [b.conv for b in model.blocks[j:]] + [model.head]
    kb = convs[0].kernel_size[0]
    out = F.avg_pool2d(out[:, None], kb, 1, kb // 2, count_include_pad=True)[:, 0]
    for block, nxt in zip(model.blocks[j:], convs[1:], strict=True):
        out = F.interpolate(out[:, None], scale_factor=block.shuffle.upscale_factor,
                            mode="nearest")
        kb = nxt.kernel_size[0]
        out = F.avg_pool2d(F.gelu(out), kb, 1, kb // 2, count_include_pad=True)[:, 0]
    return out


@pytest.mark.parametrize("settings", [{}, {"strides": [3, 2], "kernel": 5},
                                      {"strides": [2, 2, 2, 2], "fc_hw": [1, 2]}])
def test_nerv_reference_equals_naive_pipeline(settings):
    model = small_nerv(4, **settings)
    maps = nerv_canvas(model, 0.25)
    trace = model.trace(torch.tensor([0.25], dtype=torch.float64))
    assert list(maps) == layer_names(model)
    for j in range(1, len(model.blocks) + 1):
        ref = naive_block_maps(model, trace.block_inputs[j - 1][0], f"b{j}")
        assert maps[f"b{j}"].shape == ref.shape
        assert rel_err(maps[f"b{j}"], ref) <= 1e-5, j


@pytest.mark.parametrize("settings", [{}, {"strides": [3, 2], "kernel": 5}])
def test_nerv_reference_any_ids(settings):
    """Any id list (unsorted, repeated, not whole PixelShuffle phase groups, bias
    pseudo-neurons) gives exactly the rows of the whole layer's maps."""
    model = small_nerv(10, **settings)
    for bias in ("split", "separate"):
        for layer in layer_names(model)[1:]:
            x = nerv_canvas_mod.layer_input(model, 0.45, layer)
            n = n_neurons(model, layer, bias=bias)
            every = nerv_canvas_mod.reference_maps(model, x, layer, torch.arange(n), bias)
            ids = torch.tensor([5, 0, 5, n - 1, 13, n - 2])
            got = nerv_canvas_mod.reference_maps(model, x, layer, ids, bias)
            torch.testing.assert_close(got, every[ids], rtol=0, atol=0)


def test_input_cache_keeps_the_two_most_recent_inputs():
    from xinc.canvas._common import InputCache

    model, cache, built = small_nerv(1), InputCache(), []

    def get(x: torch.Tensor, value: int) -> int:
        return cache.get(x, model, "b1", lambda: built.append(value) or value)

    x1, x2, x3 = torch.zeros(3), torch.ones(3), torch.full((3,), 2.0)
    assert (get(x1, 1), get(x2, 2), get(x1.clone(), 9)) == (1, 2, 1)  # equal value: a hit
    assert get(x3, 3) == 3 and get(x2, 4) == 4  # x3 evicted x2, the least recently used
    assert get(x3, 9) == 3
    with torch.no_grad():
        model.head.weight.add_(1.0)  # new parameter versions: every entry is stale
    assert get(x3, 5) == 5 and built == [1, 2, 3, 4, 5]


def test_bias_bookkeeping_nerv():
    model = small_nerv(5)
    for layer in layer_names(model):
        conv = nerv_canvas_mod.layer_conv(model, layer)
        c_in, k_out = conv.in_channels, conv.out_channels
        x = torch.zeros_like(nerv_canvas_mod.layer_input(model, 0.1, layer))
        ids = torch.arange(c_in * k_out)
        pieces = nerv_canvas_mod.per_kernel_conv(x, conv, ids)
        expect = (conv.bias / c_in).repeat(c_in)
        torch.testing.assert_close(pieces, expect[:, None, None].expand_as(pieces), rtol=0,
                                   atol=0)
        if layer != "head":
            ref = naive_block_maps(model, x, layer)
            got = nerv_canvas_mod.reference_maps(model, x, layer, ids)
            assert rel_err(got, ref) <= 1e-5
    # β = 0 and x_i ≡ 0: neuron i's maps vanish exactly, in every layer
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d) and module is not model.stem:
                module.bias.zero_()
    for layer in layer_names(model):
        x = nerv_canvas_mod.layer_input(model, 0.1, layer).clone()
        x[1] = 0
        k_out = nerv_canvas_mod.layer_conv(model, layer).out_channels
        ids = torch.arange(n_neurons(model, layer))
        maps = nerv_canvas_mod.reference_maps(model, x, layer, ids)
        assert torch.all(maps[k_out:2 * k_out] == 0), layer
        assert torch.any(maps[:k_out] != 0), layer


def test_bias_bookkeeping_ffn():
    model = small_ffn(6)
    for idx, layer in enumerate(layer_names(model)):
        linear = model.net[idx].linear
        n_in = linear.in_features
        u = torch.zeros(n_in, 12)
        maps = ffn_canvas_mod.reference_maps(model, u, layer, torch.arange(n_in))
        const = linear.bias.sum() / n_in
        expect = const if idx == len(model.net) - 1 else const.relu()
        torch.testing.assert_close(maps, expect.expand_as(maps))
    with torch.no_grad():
        for layer in model.net:
            layer.linear.bias.zero_()
    for layer in layer_names(model):
        u = ffn_canvas_mod.layer_input(model, layer, 5, 7).clone()
        u[2] = 0
        ids = torch.arange(n_neurons(model, layer))
        summed = ffn_canvas_mod.summed_contributions(model, u, layer, ids)
        assert torch.all(summed[2] == 0)


def test_permutation_equivariance_head():
    model = small_nerv(7)
    x = nerv_canvas_mod.layer_input(model, 0.3, "head")
    ids = torch.arange(n_neurons(model, "head"))
    maps = nerv_canvas_mod.reference_maps(model, x, "head", ids)
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.head.weight.copy_(model.head.weight[:, perm])
    permuted = nerv_canvas_mod.reference_maps(model, x[perm], "head", ids)
    expect = maps.reshape(x.shape[0], 3, *maps.shape[1:])[perm].reshape(maps.shape)
    torch.testing.assert_close(permuted, expect)


# --------------------------------------------------------------------------- streaming


@pytest.mark.parametrize("arch", ["nerv", "ffn"])
def test_iter_canvas_chunks_equal_dense(arch):
    model = small_nerv(8) if arch == "nerv" else small_ffn(8)
    kwargs = {"t": 0.5} if arch == "nerv" else {"height": 9, "width": 13}
    dense = (nerv_canvas(model, 0.5) if arch == "nerv" else ffn_canvas(model, 9, 13))
    for layer in layer_names(model):
        chunks = list(iter_canvas(model, layer, chunk=7, **kwargs))
        ids = torch.cat([c[0] for c in chunks])
        assert torch.equal(ids, torch.arange(n_neurons(model, layer)))
        assert all(len(c[0]) <= 7 and c[1].shape[0] == len(c[0]) for c in chunks)
        torch.testing.assert_close(torch.cat([c[1] for c in chunks]), dense[layer])
        default = list(iter_canvas(model, layer, **kwargs))
        torch.testing.assert_close(torch.cat([c[1] for c in default]), dense[layer])
    assert default_chunk(128, 256) == 128
    assert default_chunk(320, 640) == 16 and default_chunk(512, 1024) == 8  # 20 → 16; 8


def test_chunks_are_owned_by_caller():
    model = small_ffn(9)
    it = iter_canvas(model, "l1", height=4, width=5, chunk=4)
    _, first = next(it)
    keep = first.clone()
    first.fill_(123.0)
    _, second = next(it)
    assert not torch.equal(second, first)
    dense = ffn_canvas(model, 4, 5)["l1"]
    torch.testing.assert_close(keep, dense[:4])
    assert not first.requires_grad


def test_nerv_canvas_reuses_out_buffers():
    model = small_nerv(9)
    first = nerv_canvas(model, 0.2)
    kept = {name: maps.clone() for name, maps in first.items()}
    again = nerv_canvas(model, 0.6, out=first)
    for name, maps in again.items():
        assert maps.data_ptr() == first[name].data_ptr()
        torch.testing.assert_close(maps, nerv_canvas(model, 0.6, [name])[name], rtol=0, atol=0)
        assert not torch.equal(maps, kept[name])
    with pytest.raises(ValueError, match="contiguous"):
        nerv_canvas(model, 0.6, ["b1"], out={"b1": first["b2"]})


def test_ffn_inputs_and_layer_subset():
    model = small_ffn(10)
    coords = ffn_coords(5, 7, model.cfg.coords)
    trace = model.trace(coords)
    inputs = model.inputs_t(coords)
    assert len(inputs) == len(model.net)
    for u_t, u in zip(inputs, trace, strict=False):
        torch.testing.assert_close(u_t, u.T, rtol=1e-4, atol=1e-4)  # 1-ulp phase rounding
    every = ffn_canvas(model, 5, 7)
    only = ffn_canvas(model, 5, 7, layers=["l2"])
    assert list(only) == ["l2"]
    torch.testing.assert_close(only["l2"], every["l2"], rtol=0, atol=0)


def test_layers_argument_must_be_a_list():
    with pytest.raises(TypeError, match="mode="):
        nerv_canvas(small_nerv(11), 0.1, "exact")
    with pytest.raises(TypeError, match="list of layer names"):
        ffn_canvas(small_ffn(11), 4, 4, "reference", "l1")
