"""Quantised evaluation / bits per pixel (docs/method.md §2.4) and Table S1 (xinc.tables)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from xinc.models import build_model, count_params
from xinc.tables import PAPER_PSNR, path_fields, table_s1, write_table_s1
from xinc.train.quantize import (
    QuantizedPE,
    bits_per_pixel,
    coding_cost,
    huffman_code_lengths,
    pe_table,
    quantize_state_dict,
    quantize_tensor,
    quantized_copy,
)

# ----------------------------------------------------------------------------- quantisation


def test_whole_tensor_error_within_half_a_step() -> None:
    torch.manual_seed(0)
    t = torch.randn(7, 5) * 3
    q = quantize_tensor(t, bits=8)
    assert q.variant == "tensor"  # no axis leaves < 2 % of the elements as groups
    scale = float((t.max() - t.min()) / 255)
    assert float((t - q.dequantised).abs().max()) <= scale / 2 * (1 + 1e-5)
    assert q.codes.dtype == torch.uint8 and int(q.codes.min()) == 0 and int(q.codes.max()) == 255
    torch.testing.assert_close(q.minimum + q.scale * q.codes.float(), q.dequantised)
    assert q.n_minscale == 2


def test_per_axis_variant_chosen_when_rows_differ() -> None:
    torch.manual_seed(0)
    # 60 rows of very different ranges: min over axis 1 leaves 60 groups of 6000 (1 %)
    t = torch.rand(60, 100) * torch.logspace(-3, 1, 60)[:, None]
    q = quantize_tensor(t, bits=8)
    assert q.variant == "axis1"
    assert q.minimum.dtype == torch.float16 and q.minimum.shape == (60, 1)
    assert q.n_minscale == 120
    whole = float((t.max() - t.min()) / 255)
    assert q.mean_abs_err < 0.25 * whole / 4  # far better than the whole-tensor step
    step = q.scale.float()
    exact = (t.amax(1, keepdim=True) - t.amin(1, keepdim=True)) / 255
    # half a step plus the float16 rounding of the stored minimum and scale
    bound = (step / 2 + (q.minimum.float() - t.amin(1, keepdim=True)).abs()
             + 255 * (step - exact).abs() + 1e-7)
    assert bool(((t - q.dequantised).abs() <= bound).all())


def test_constant_tensor_is_exact() -> None:
    q = quantize_tensor(torch.full((4,), 0.5), bits=8)
    assert torch.equal(q.dequantised, torch.full((4,), 0.5)) and q.mean_abs_err == 0.0


def test_quantize_state_dict_skips_pe_and_fourier_matrix() -> None:
    torch.manual_seed(0)
    nerv = build_model("nerv", {"fc_dim": 5, "fc_hw": [2, 4], "strides": [2]})
    deq, info = quantize_state_dict(nerv.state_dict())
    assert info["skipped"] == ["pe.omega"] and torch.equal(deq["pe.omega"], nerv.pe.omega)
    assert info["n_params"] == count_params(nerv) == len(info["symbols"])
    ffn = build_model("ffn", {"width": 8})
    deq, info = quantize_state_dict(ffn.state_dict())
    assert info["skipped"] == ["positional_encoding.B"]
    assert info["n_params"] == count_params(ffn)


# ----------------------------------------------------------------------------- Huffman

def test_huffman_lengths_kraft_and_gain() -> None:
    rng = np.random.default_rng(0)
    symbols = np.minimum(rng.geometric(0.05, 20_000) - 1, 255)  # skewed over 0..255
    values, counts = np.unique(symbols, return_counts=True)
    lengths = huffman_code_lengths(dict(zip(values.tolist(), counts.tolist(), strict=True)))
    assert sum(2.0 ** -n for n in lengths.values()) == pytest.approx(1.0, abs=1e-12)
    bits = sum(c * lengths[v] for v, c in zip(values.tolist(), counts.tolist(), strict=True))
    assert bits < 8 * len(symbols)
    p = counts / counts.sum()
    entropy = float(-(p * np.log2(p)).sum())
    assert entropy <= bits / len(symbols) < entropy + 1
    assert huffman_code_lengths({"a": 5}) == {"a": 1} and huffman_code_lengths({}) == {}


def test_coding_cost_hand_computed() -> None:
    # counts {0: 4, 1: 2, 2: 1, 3: 1} → lengths 1, 2, 3, 3 → 14 bits
    symbols = [0, 0, 0, 0, 1, 1, 2, 3]
    c = coding_cost(symbols, n_minscale=2, n_pixels=16, eof=False)
    assert c["huffman_bits"] == 14 and c["bits_per_param"] == 14 / 8
    assert c["total_bits"] == 14 + 2 * 16 and c["bits_per_param_with_overhead"] == 46 / 8
    assert c["bpp"] == 46 / 16
    # with the end-of-file symbol of count 1 (as dahuffman): counts 4, 2, 1, 1, 1 → 16 bits
    c = coding_cost(symbols, n_minscale=2, n_pixels=16)
    assert c["huffman_bits"] == 16 and c["bpp"] == 3.0


def test_state_dict_to_bits_hand_computed() -> None:
    state = {"w": torch.tensor([0, 0, 0, 0, 1, 1, 2, 3], dtype=torch.float32) / 3}
    deq, info = quantize_state_dict(state, bits=2)
    assert info["symbols"].tolist() == [0, 0, 0, 0, 1, 1, 2, 3]
    torch.testing.assert_close(deq["w"], state["w"])
    c = coding_cost(info["symbols"], info["n_minscale"], n_pixels=16, eof=False)
    assert c["total_bits"] == 14 + 32


# ----------------------------------------------------------------------------- models

@pytest.mark.slow  # paper-size NeRV
def test_paper_nerv_bits_per_pixel_arithmetic() -> None:
    torch.manual_seed(0)
    model = build_model("nerv", {}).eval()
    frames, pixels = 30, 30 * 128 * 256
    r = bits_per_pixel(model, pixels)
    assert r["frames"] == frames and r["n_params"] == 978_557 and r["n_pe"] == 160 * frames
    assert r["n_symbols"] == 978_557 + 160 * frames
    assert r["bpp_fp32"] == pytest.approx(31.854, abs=1e-3)  # docs/method.md §2.4
    # docs/method.md §2.4: bpp = bits/param_with_overhead · (978,557 + 160·T) / (32,768·T)
    assert r["bpp"] == pytest.approx(
        r["bits_per_param_with_overhead"] * (978_557 + 160 * frames) / (32_768 * frames))
    assert r["total_bits"] == r["huffman_bits"] + 16 * r["n_minscale"]
    assert 6.0 < r["bpp"] < 8.5  # untrained (uniform) weights: close to 8 bits each
    assert bits_per_pixel(model, pixels, frames=frames)["bpp"] == r["bpp"]
    with pytest.raises(ValueError, match="frames"):
        bits_per_pixel(model, pixels + 1)


def test_quantized_copy_nerv_uses_quantised_pe() -> None:
    torch.manual_seed(0)
    model = build_model("nerv", {"fc_dim": 6, "fc_hw": [2, 4], "strides": [2, 2]}).eval()
    q = quantized_copy(model, frames=10)
    assert isinstance(q.pe, QuantizedPE) and q.state_dict().keys() == model.state_dict().keys()
    assert q.quant_info["frames"] == 10 and q.quant_info["pe_bits"] == 6
    t = torch.arange(10, dtype=torch.float64) / 10
    pe_q = quantize_tensor(pe_table(model, 10), 6).dequantised.reshape(10, -1)
    assert torch.equal(q.pe(t), pe_q)
    assert torch.equal(q.pe(torch.tensor([0.05], dtype=torch.float64)),
                       model.pe(torch.tensor([0.05], dtype=torch.float64)))
    with torch.no_grad():
        err = (q(t) - model(t)).abs().max()
    assert 0 < float(err) < 0.1
    assert torch.equal(model.pe.omega, q.pe.omega)
    w_only = quantized_copy(model)
    assert not isinstance(w_only.pe, QuantizedPE)
    for k, v in w_only.state_dict().items():
        if k != "pe.omega":
            assert float((v - model.state_dict()[k]).abs().max()) > 0 or v.numel() == 1


def test_ffn_bits_per_pixel_and_copy() -> None:
    torch.manual_seed(0)
    model = build_model("ffn", {"width": 16}).eval()
    r = bits_per_pixel(model, 32 * 64)
    assert r["n_pe"] == 0 and r["n_params"] == count_params(model)
    assert r["bpp"] == pytest.approx(r["total_bits"] / 2048)
    q = quantized_copy(model)
    assert torch.equal(q.positional_encoding.B, model.positional_encoding.B)


# ----------------------------------------------------------------------------- Table S1

def records() -> list[dict]:
    return [
        {"arch": "ffn", "params": 32971, "psnr": 34.0, "psnr_q8": 33.0, "bpp": 8.3},
        {"arch": "nerv", "params": 978557, "psnr": 33.0, "bpp": 7.9},
        {"arch": "ffn", "params": 32971, "psnr": 35.0},
        {"arch": "nerv", "params": 978557, "psnr": 34.0, "bpp": 8.1, "psnr_q8": 33.5},
        {"arch": "ffn", "params": 32971, "psnr": 36.0},
        {"arch": "siren", "params": 10, "psnr": 20.0},
    ]


def test_table_s1_statistics() -> None:
    table = table_s1(records())
    assert table["arch"].tolist() == ["nerv", "ffn", "siren"]
    nerv, ffn, siren = (table.iloc[i] for i in range(3))
    assert nerv["n"] == 2 and nerv["params"] == 978557
    assert nerv["psnr_mean"] == pytest.approx(33.5)
    assert nerv["psnr_std"] == pytest.approx(math.sqrt(0.5))
    assert nerv["bpp_mean"] == pytest.approx(8.0) and nerv["psnr_q8_mean"] == pytest.approx(33.5)
    assert nerv["paper_psnr"] == PAPER_PSNR["nerv"] == 33.50
    assert ffn["n"] == 3 and ffn["psnr_mean"] == pytest.approx(35.0)
    assert ffn["psnr_std"] == pytest.approx(1.0) and ffn["bpp_mean"] == pytest.approx(8.3)
    assert ffn["paper_psnr"] == 34.29 and ffn["psnr_pm"] == "35.00 ± 1.00 (n=3)"
    assert siren["n"] == 1 and math.isnan(siren["psnr_std"]) and math.isnan(siren["bpp_mean"])
    assert math.isnan(siren["paper_psnr"]) and math.isnan(siren["bits_per_param_mean"])


def test_write_table_s1_from_files(tmp_path) -> None:
    paths = []
    for i, rec in enumerate(records()[:5]):
        sub = (f"nerv/cityscapes/000{i}/s1" if rec["arch"] == "nerv"
               else f"ffn/cityscapes/0005/f{i}/s1")
        path = tmp_path / "results" / "models" / sub / "metrics.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({**rec, "psnr_history": [[1, 10.0]], "seconds": 1.0,
                                    "device": "cpu"}))
        paths.append(path)
    assert path_fields(paths[2]) == {"arch": "ffn", "dataset": "cityscapes", "video": "0005",
                                     "frame": 2, "seed": 1}
    out = tmp_path / "tables" / "table_s1.csv"
    table = write_table_s1(paths, out)
    assert out.exists() and table["n"].tolist() == [2, 3]
    by_ds = write_table_s1(paths, tmp_path / "t2.csv", by=("dataset", "arch"))
    assert by_ds["dataset"].tolist() == ["cityscapes", "cityscapes"]
    with pytest.raises(ValueError, match="psnr"):
        table_s1([{"arch": "nerv"}])
