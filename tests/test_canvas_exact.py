"""Exact contribution maps (`mode="exact"`): completeness (docs/method.md §4.4), streaming,
head == reference, and float64 brute force against hand-written downstream loops."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from xinc.canvas import ffn as ffn_mod
from xinc.canvas import ffn_canvas, iter_canvas, layer_names, n_neurons, nerv_canvas
from xinc.canvas import nerv as nerv_mod
from xinc.canvas._common import rescale_gain
from xinc.canvas.nerv import exact as nerv_exact
from xinc.canvas.nerv import probe
from xinc.models import build_model
from xinc.models.ffn import ffn_coords


def rel_err(mine: torch.Tensor, ref: torch.Tensor) -> float:
    mine, ref = mine.detach().double(), ref.detach().double()
    return float((mine - ref).abs().max() / ref.abs().max())


def make_nerv(seed: int, **cfg) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("nerv", {"fc_dim": 5, "fc_hw": [2, 3], "out": "0.0", **cfg}).eval()


def make_ffn(seed: int, width: int = 8, layers: int = 3) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("ffn", {"width": width, "layers": layers}).eval()


def nerv_completeness(model, t: float) -> dict[str, float]:
    h = model.trace(torch.tensor([t], dtype=torch.float64)).head_out[0]
    errs = {}
    for layer in layer_names(model):
        x = nerv_mod.layer_input(model, t, layer)
        ids = torch.arange(n_neurons(model, layer))
        rgb = nerv_mod.exact_rgb_maps(model, x, layer, ids)
        bias = nerv_mod.exact_bias_terms(model, t, layer)
        assert rgb.shape == (len(ids), 3, *h.shape[1:]) and bias.shape == h.shape
        errs[layer] = rel_err(rgb.sum(0) + bias, h)
    return errs


def ffn_completeness(model, height: int, width: int) -> dict[str, float]:
    y = model(ffn_coords(height, width)).T.reshape(3, height, width)
    errs = {}
    for layer in layer_names(model):
        u = ffn_mod.layer_input(model, layer, height, width)
        ids = torch.arange(n_neurons(model, layer))
        rgb = ffn_mod.exact_rgb_maps(model, u, layer, ids).reshape(len(ids), 3, height, width)
        bias = ffn_mod.exact_bias_terms(model, layer, height, width)
        errs[layer] = rel_err(rgb.sum(0) + bias, y)
        summed = ffn_mod.exact_maps(model, u, layer, ids).reshape(len(ids), height, width)
        torch.testing.assert_close(summed, rgb.sum(1), rtol=1e-5, atol=1e-6)
    return errs


# --------------------------------------------------------------------------- completeness


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10_000), fc_hw=st.sampled_from([(1, 2), (2, 4)]),
       strides=st.sampled_from([(2, 2), (4, 2, 2), (3, 2)]), fc_dim=st.integers(3, 6),
       lower=st.integers(2, 4), t=st.floats(0.0, 0.99))
def test_nerv_exact_completeness(seed, fc_hw, strides, fc_dim, lower, t):
    model = make_nerv(seed, fc_hw=list(fc_hw), strides=list(strides), fc_dim=fc_dim,
                      lower_width=lower)
    errs = nerv_completeness(model, t)
    assert max(errs.values()) <= 1e-4, errs


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10_000), width=st.integers(4, 16), layers=st.integers(2, 4),
       height=st.integers(2, 9), wid=st.integers(2, 9))
def test_ffn_exact_completeness(seed, width, layers, height, wid):
    errs = ffn_completeness(make_ffn(seed, width, layers), height, wid)
    assert max(errs.values()) <= 1e-4, errs


def test_nerv_exact_completeness_kernel5():
    errs = nerv_completeness(make_nerv(11, strides=[3, 2], kernel=5), 0.6)
    assert max(errs.values()) <= 1e-4, errs


def test_exact_on_briefly_trained_nerv():
    model = make_nerv(12, strides=[2, 2], fc_hw=[2, 4])
    t = torch.tensor([0.0, 0.5], dtype=torch.float64)
    target = torch.rand(2, 3, 8, 16, generator=torch.Generator().manual_seed(0))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(30):
        opt.zero_grad()
        loss = F.mse_loss(0.5 * torch.tanh(model.trace(t).head_out) + 0.5, target)
        loss.backward()
        opt.step()
    errs = nerv_completeness(model, 0.5)
    assert max(errs.values()) <= 1e-4, errs


def test_exact_bias_terms_head_is_zero_and_last_block_is_head_bias():
    model = make_nerv(13)
    assert torch.all(nerv_mod.exact_bias_terms(model, 0.2, "head") == 0)
    last = f"b{len(model.blocks)}"
    bias = nerv_mod.exact_bias_terms(model, 0.2, last)
    torch.testing.assert_close(bias, model.head.bias[:, None, None].expand_as(bias))


# --------------------------------------------------------------------------- streaming


@pytest.mark.parametrize("arch", [pytest.param("nerv", marks=pytest.mark.slow), "ffn"])
def test_exact_chunks_equal_dense(arch, monkeypatch):
    model = make_nerv(14, strides=[2, 2]) if arch == "nerv" else make_ffn(14, 8, 4)
    kwargs = {"t": 0.35} if arch == "nerv" else {"height": 6, "width": 11}
    dense = (nerv_canvas(model, 0.35, mode="exact") if arch == "nerv"
             else ffn_canvas(model, 6, 11, mode="exact"))
    assert list(dense) == layer_names(model)
    mod = nerv_mod if arch == "nerv" else ffn_mod
    # tiny batches inside the map function as well as tiny chunks outside
    monkeypatch.setattr(nerv_exact, "_exact_batch", lambda *args: 2)
    for layer in layer_names(model):
        chunks = list(iter_canvas(model, layer, mode="exact", chunk=5, **kwargs))
        ids = torch.cat([c[0] for c in chunks])
        assert torch.equal(ids, torch.arange(n_neurons(model, layer)))
        torch.testing.assert_close(torch.cat([c[1] for c in chunks]), dense[layer],
                                   rtol=1e-5, atol=1e-6)
        x = (mod.layer_input(model, 0.35, layer) if arch == "nerv"
             else mod.layer_input(model, layer, 6, 11))
        rgb = mod.exact_rgb_maps(model, x, layer, ids)
        torch.testing.assert_close(rgb.sum(1).reshape(dense[layer].shape), dense[layer],
                                   rtol=1e-5, atol=1e-6)


def test_exact_head_equals_reference():
    model = make_nerv(15)
    exact = nerv_canvas(model, 0.8, layers=["head"], mode="exact")["head"]
    ref = nerv_canvas(model, 0.8, layers=["head"])["head"]
    assert torch.equal(exact, ref)
    x = nerv_mod.layer_input(model, 0.8, "head")
    rgb = nerv_mod.exact_rgb_maps(model, x, "head", torch.arange(n_neurons(model, "head")))
    assert torch.equal(rgb.sum(1), ref)
    assert torch.all((rgb != 0).sum(1) <= 1)


def test_exact_cache_follows_weight_changes():
    model = make_nerv(16)
    x = nerv_mod.layer_input(model, 0.1, "b1")
    ids = torch.arange(7)
    before = nerv_mod.exact_maps(model, x, "b1", ids)
    with torch.no_grad():
        model.head.weight.mul_(2.0)
    after = nerv_mod.exact_maps(model, x, "b1", ids)
    torch.testing.assert_close(after, 2 * before)


def test_rescale_gain():
    z = torch.tensor([-3.0, -1e-7, 0.0, 1e-7, 2.0])
    g = rescale_gain(torch.nn.GELU(), z)
    assert g[1:4].tolist() == [0.5, 0.5, 0.5]
    torch.testing.assert_close(g * z, F.gelu(z))
    assert rescale_gain(torch.nn.ReLU(), z).tolist() == [0, 0, 0, 1, 1]
    with pytest.raises(TypeError):
        rescale_gain(torch.nn.Tanh(), z)


# --------------------------------------------------------------------------- brute force


def hand_shuffle(v: torch.Tensor, r: int) -> torch.Tensor:
    """PixelShuffle by definition: out[c, y·r + a, x·r + b] = v[c·r² + a·r + b, y, x]."""
    c, h, w = v.shape[0] // (r * r), v.shape[1], v.shape[2]
    out = v.new_zeros(c, h * r, w * r)
    for ch in range(c):
        for a in range(r):
            for b in range(r):
                out[ch, a::r, b::r] = v[ch * r * r + a * r + b]
    return out


@torch.no_grad()
def hand_exact(model, x: torch.Tensor, j: int, i: int, k: int) -> torch.Tensor:
    """R[i, k] [3, H, W] of block j: real forward for the gains, then a plain linear loop."""
    blocks = list(model.blocks)
    pad = lambda conv: conv.padding  # noqa: E731
    # real forward from block j's input, gains GELU(z)/z
    gains, v = [], x
    for block in blocks[j - 1:]:
        z = hand_shuffle(F.conv2d(v[None], block.conv.weight, block.conv.bias,
                                  padding=pad(block.conv))[0], block.shuffle.upscale_factor)
        assert torch.all(z != 0)
        gains.append(F.gelu(z) / z)
        v = F.gelu(z)
    conv, r = blocks[j - 1].conv, blocks[j - 1].shuffle.upscale_factor
    p = F.conv2d(x[i][None, None], conv.weight[k, i][None, None], padding=pad(conv))[0, 0]
    p = p + conv.bias[k] / conv.in_channels
    s = torch.zeros_like(gains[0])
    g = k % (r * r)
    s[k // (r * r), g // r::r, g % r::r] = p
    v = gains[0] * s
    for block, gain in zip(blocks[j:], gains[1:], strict=True):
        v = F.conv2d(v[None], block.conv.weight, padding=pad(block.conv))[0]
        v = gain * hand_shuffle(v, block.shuffle.upscale_factor)
    return F.conv2d(v[None], model.head.weight, padding=pad(model.head))[0]


@pytest.mark.parametrize("cfg", [{}, {"strides": [3, 2], "lower_width": 3}])
def test_nerv_exact_brute_force_float64(cfg):
    model = make_nerv(17, **cfg)
    inputs = {f"b{j}": nerv_mod.layer_input(model, 0.45, f"b{j}").double()
              for j in range(1, len(model.blocks) + 1)}
    model.double()  # the positional encoding stays float32: take the inputs from before
    for j in range(1, len(model.blocks) + 1):
        layer = f"b{j}"
        x = inputs[layer]
        conv = model.blocks[j - 1].conv
        n_out = conv.out_channels
        for i, k in [(0, 0), (conv.in_channels - 1, n_out - 1), (1, n_out // 2 + 1)]:
            want = hand_exact(model, x, j, i, k)
            ids = torch.tensor([i * n_out + k])
            got = nerv_mod.exact_rgb_maps(model, x, layer, ids)[0]
            assert got.dtype == torch.float64
            tol = 1e-10 * float(want.abs().max())
            torch.testing.assert_close(got, want, rtol=0, atol=tol)
            torch.testing.assert_close(nerv_mod.exact_maps(model, x, layer, ids)[0],
                                       want.sum(0), rtol=0, atol=3 * tol)


def test_ffn_exact_brute_force_float64():
    model = make_ffn(18, 6, 4)
    h, w = 3, 4
    inputs = {layer: ffn_mod.layer_input(model, layer, h, w).double()
              for layer in layer_names(model)}
    model.double()
    for idx, layer in enumerate(layer_names(model)):
        u = inputs[layer]
        n_in, n_out = u.shape[0], model.net[idx].linear.out_features
        rgb = ffn_mod.exact_rgb_maps(model, u, layer, torch.arange(n_in))
        sep = ffn_mod.exact_rgb_maps(model, u, layer, torch.arange(n_in + n_out), "separate")
        assert rgb.dtype == torch.float64
        beta = model.net[idx].linear.bias
        for p in range(h * w):
            act = u[:, p]
            paths = torch.eye(n_out, dtype=torch.float64)  # from linear l's outputs
            for m in range(idx + 1, len(model.net)):
                z = model.net[m - 1].linear(act)
                act = torch.relu(z)
                paths = model.net[m].linear.weight @ torch.diag((z > 0).double()) @ paths
            mat = paths @ model.net[idx].linear.weight
            want = u[:, p][:, None] * mat.T  # [n_l, 3]
            torch.testing.assert_close(rgb[:, :, p], want + (paths @ beta) / n_in, rtol=0,
                                       atol=1e-12)
            torch.testing.assert_close(sep[:n_in, :, p], want, rtol=0, atol=1e-12)
            torch.testing.assert_close(sep[n_in:, :, p], (paths * beta).T, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- switches


def test_bias_separate_exact_completeness_and_split_relation():
    model = make_nerv(19, strides=[2, 2], lower_width=3)
    t = 0.65
    h = model.trace(torch.tensor([t], dtype=torch.float64)).head_out[0]
    for layer in layer_names(model):
        conv = nerv_mod.layer_conv(model, layer)
        c_in, k_out = conv.in_channels, conv.out_channels
        assert n_neurons(model, layer, bias="separate") == c_in * k_out + k_out
        x = nerv_mod.layer_input(model, t, layer)
        ids = torch.arange(c_in * k_out + k_out)
        sep = nerv_mod.exact_rgb_maps(model, x, layer, ids, "separate")
        bias = nerv_mod.exact_bias_terms(model, t, layer)
        assert rel_err(sep.sum(0) + bias, h) <= 1e-4, layer
        # split = separate kernel map + 1/C_in of its output channel's bias pseudo-neuron
        split = nerv_mod.exact_rgb_maps(model, x, layer, ids[:c_in * k_out])
        pseudo = sep[c_in * k_out:].repeat(c_in, 1, 1, 1)
        torch.testing.assert_close(split, sep[:c_in * k_out] + pseudo / c_in,
                                   rtol=1e-4, atol=1e-6)
        dense = nerv_canvas(model, t, layers=[layer], mode="exact", bias="separate")[layer]
        torch.testing.assert_close(dense, sep.sum(1) if layer != "head" else
                                   nerv_canvas(model, t, layers=[layer], bias="separate")[layer],
                                   rtol=1e-5, atol=1e-6)


def test_bias_separate_reference_sums_and_dead_inputs():
    model = make_nerv(20)
    for layer in layer_names(model):
        conv = nerv_mod.layer_conv(model, layer)
        c_in, k_out = conv.in_channels, conv.out_channels
        x = nerv_mod.layer_input(model, 0.3, layer).clone()
        ids = torch.arange(c_in * k_out + k_out)
        pieces = nerv_mod.per_kernel_conv(x, conv, ids, "separate")
        summed = pieces[:c_in * k_out].reshape(c_in, k_out, *pieces.shape[1:]).sum(0)
        torch.testing.assert_close(summed + pieces[c_in * k_out:], conv(x[None])[0],
                                   rtol=1e-5, atol=1e-5)
        assert torch.equal(pieces[c_in * k_out:],
                           conv.bias[:, None, None].expand(k_out, *pieces.shape[1:]))
        # a dead input channel gives exactly-zero maps when the bias is separate
        x[1] = 0
        for mode, fn in nerv_mod.MODES.items():
            maps = fn(model, x, layer, ids, "separate")
            assert torch.all(maps[k_out:2 * k_out] == 0), (layer, mode)
            assert torch.any(maps[:k_out] != 0), (layer, mode)


@pytest.mark.parametrize("mode", ["reference", "exact"])
def test_neuron_channel_sums_kernels(mode):
    model = make_nerv(21, strides=[2, 2], lower_width=3)
    for bias in ("split", "separate"):
        kernel = nerv_canvas(model, 0.15, mode=mode, bias=bias)
        for layer in layer_names(model):
            conv = nerv_mod.layer_conv(model, layer)
            c_in, k_out = conv.in_channels, conv.out_channels
            chunks = list(iter_canvas(model, layer, t=0.15, mode=mode, chunk=3, bias=bias,
                                      neuron="channel"))
            ids = torch.cat([c[0] for c in chunks])
            total = n_neurons(model, layer, bias=bias, neuron="channel")
            assert total == c_in + (k_out if bias == "separate" else 0)
            assert torch.equal(ids, torch.arange(total))
            got = torch.cat([c[1] for c in chunks])
            want = kernel[layer][:c_in * k_out].reshape(c_in, k_out, *got.shape[1:]).sum(1)
            torch.testing.assert_close(got[:c_in], want, rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(got[c_in:], kernel[layer][c_in * k_out:])


def test_switch_validation():
    nerv, ffn = make_nerv(22), make_ffn(22)
    with pytest.raises(ValueError, match="bias mode"):
        iter_canvas(nerv, "b1", t=0.1, bias="proportional")
    with pytest.raises(ValueError, match="neuron mode"):
        n_neurons(nerv, "b1", neuron="pixel")
    with pytest.raises(ValueError, match="bias mode"):
        iter_canvas(ffn, "l1", height=3, width=3, bias="none")
    assert n_neurons(ffn, "l1") == n_neurons(ffn, "l1", neuron="channel") == 16
    assert n_neurons(ffn, "l1", bias="separate") == 16 + ffn.net[0].linear.out_features


def test_ffn_bias_switch():
    model = make_ffn(23, 6, 3)
    h, w = 4, 5
    y = model(ffn_coords(h, w, model.cfg.coords)).T.reshape(3, h, w)
    for idx, layer in enumerate(layer_names(model)):
        u = ffn_mod.layer_input(model, layer, h, w)
        n_in = u.shape[0]
        total = n_neurons(model, layer, bias="separate")
        split = ffn_mod.summed_contributions(model, u, layer, torch.arange(n_in))
        sep = ffn_mod.summed_contributions(model, u, layer, torch.arange(total), bias="separate")
        torch.testing.assert_close(sep.sum(0), split.sum(0), rtol=1e-5, atol=1e-5)
        beta = model.net[idx].linear.bias
        assert torch.equal(sep[n_in:], beta[:, None].expand(len(beta), h * w))
        bias = ffn_mod.exact_bias_terms(model, layer, h, w)
        for mode_bias, n in (("split", n_in), ("separate", total)):
            rgb = ffn_mod.exact_rgb_maps(model, u, layer, torch.arange(n), mode_bias)
            got = rgb.sum(0).reshape(3, h, w) + bias
            torch.testing.assert_close(got, y, rtol=1e-5, atol=1e-5)
        dense = ffn_canvas(model, h, w, mode="exact", bias="separate")[layer]
        chunks = torch.cat([m for _, m in iter_canvas(model, layer, height=h, width=w,
                                                      mode="exact", bias="separate", chunk=4)])
        torch.testing.assert_close(dense, chunks)
        channel = ffn_canvas(model, h, w, neuron="channel")[layer]
        torch.testing.assert_close(channel, ffn_canvas(model, h, w)[layer], rtol=0, atol=0)


@settings(max_examples=200)
@given(st.integers(-40, 40), st.integers(0, 60), st.integers(1, 16))
def test_probe_spacing_separates_supports(lo, width, u):
    hi = lo + width
    pad, offset, s = probe._spacing(lo, hi, u)
    box = range(offset - pad, offset + u + pad)  # relative to u·cell
    assert lo in box and hi in box
    for shift in (-s * u, s * u):  # a cell s away: its support lies outside this cell's box
        assert hi + shift < box.start or lo + shift >= box.stop
    assert pad >= abs(offset)


def test_probed_exact_maps_equal_direct_pushes():
    torch.manual_seed(24)
    model = build_model("nerv", {"fc_hw": [6, 8], "strides": [2, 2], "fc_dim": 16,
                                 "modelsize": 0.02}).eval()
    h = model.trace(torch.tensor([0.4], dtype=torch.float64)).head_out[0].sum(0)
    for layer in ("b2", "b1"):
        x = nerv_mod.layer_input(model, 0.4, layer)
        prober = probe.Prober(model, x, layer, nerv_mod.exact_gains(model, x, layer),
                              nerv_mod.push_exact)
        assert prober.usable and prober.s_y * prober.s_x < x.shape[0], layer
        for bias in ("split", "separate"):
            total = n_neurons(model, layer, bias=bias)
            maps = nerv_canvas(model, 0.4, [layer], mode="exact", bias=bias)[layer]
            ids = torch.arange(0, total, 7)
            direct = nerv_mod.exact_rgb_maps(model, x, layer, ids, bias).sum(1)
            assert rel_err(maps[ids], direct) <= 1e-5, (layer, bias)
            bias_terms = nerv_mod.exact_bias_terms(model, 0.4, layer).sum(0)
            assert rel_err(maps.sum(0) + bias_terms, h) <= 1e-4, (layer, bias)


def test_probe_blocks_survive_between_statistics_passes(monkeypatch):
    from xinc.stats import canvas_frame_stats, grid_groups

    torch.manual_seed(24)
    model = build_model("nerv", {"fc_hw": [6, 8], "strides": [2, 2], "fc_dim": 16,
                                 "modelsize": 0.02}).eval()
    built: list[int] = []
    original = probe.Prober._build

    def counting(self, ks, batch):
        built.extend(ks)
        return original(self, ks, batch)

    monkeypatch.setattr(probe.Prober, "_build", counting)
    h, w = model.cfg.output_size
    canvas_frame_stats(model, "b1", grid_groups(h, w, (2, 2)), t=0.4, mode="exact", chunk=64)
    k_out = nerv_mod.layer_conv(model, "b1").out_channels
    assert sorted(built) == list(range(k_out))  # every M_k built once over both passes
