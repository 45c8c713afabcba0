"""Shapes and parameter counts of the NeRV and FFN models (docs/method.md §1.1, §1.3, §1.4)."""

from __future__ import annotations

import math

import pytest
import torch

from xinc.models import build_model, count_params, ffn_coords, model_config


def nerv_param_formula(
    widths: tuple[int, ...], fc_hw: tuple[int, int], strides: tuple[int, ...], pe_dim: int = 160
) -> int:
    """Closed-form parameter count of a NeRV with 3×3 kernels."""
    c0 = widths[0]
    total = pe_dim * c0 * fc_hw[0] * fc_hw[1] + c0 * fc_hw[0] * fc_hw[1]
    for j, s in enumerate(strides):
        total += widths[j] * widths[j + 1] * s * s * 9 + widths[j + 1] * s * s
    return total + widths[-1] * 3 * 9 + 3


def test_nerv_paper_config() -> None:
    model = build_model("nerv", {})
    assert model.cfg.widths == (37, 31, 26, 22)
    assert count_params(model) == 978_557
    assert nerv_param_formula(model.cfg.widths, (8, 16), (4, 2, 2)) == 978_557


@pytest.mark.parametrize(
    "settings",
    [
        {"modelsize": 0.1},
        {"fc_hw": [2, 4], "fc_dim": 16, "strides": [4, 2, 2]},
        {"fc_hw": [3, 5], "fc_dim": 20, "strides": [2, 3], "modelsize": 0.5},
    ],
)
def test_nerv_params_match_formula(settings: dict) -> None:
    model = build_model("nerv", settings)
    cfg = model.cfg
    assert count_params(model) == nerv_param_formula(cfg.widths, cfg.fc_hw, cfg.strides)


def test_nerv_widths_follow_reduce_rule() -> None:
    cfg = model_config("nerv", {"modelsize": 0.1})
    for a, b in zip(cfg.widths, cfg.widths[1:], strict=False):
        assert b == max(round(a / 1.2), 6)


def test_nerv_output_shape_and_range() -> None:
    torch.manual_seed(0)
    model = build_model("nerv", {"fc_hw": [2, 4], "fc_dim": 8, "strides": [4, 2, 2]})
    assert model.cfg.output_size == (2 * 16, 4 * 16)
    t = torch.arange(3, dtype=torch.float64) / 3
    with torch.no_grad():
        out = model(t)
    assert out.shape == (3, 3, 32, 64)
    assert out.dtype == torch.float32
    assert bool(((out > 0) & (out < 1)).all())


def test_nerv_output_size_is_fc_hw_times_stride_product() -> None:
    for fc_hw, strides in [((8, 16), (4, 2, 2)), ((3, 5), (2, 3)), ((1, 2), (5,))]:
        cfg = model_config("nerv", {"fc_hw": fc_hw, "strides": strides, "fc_dim": 4})
        scale = math.prod(strides)
        assert cfg.output_size == (fc_hw[0] * scale, fc_hw[1] * scale)


def test_ffn_paper_config() -> None:
    model = build_model("ffn", {})
    assert count_params(model) == 32_971
    assert model.positional_encoding.B.shape == (104, 2)


@pytest.mark.parametrize("width,layers", [(32, 3), (16, 4)])
def test_ffn_params_formula(width: int, layers: int) -> None:
    model = build_model("ffn", {"width": width, "layers": layers})
    expected = 2 * width * width + width + (layers - 2) * (width * width + width) + 3 * width + 3
    assert count_params(model) == expected


def test_ffn_output_shapes() -> None:
    torch.manual_seed(0)
    model = build_model("ffn", {"width": 16})
    coords = ffn_coords(8, 16)
    assert coords.shape == (128, 2)
    with torch.no_grad():
        assert model(coords).shape == (128, 3)
        image = model.render(8, 16)
    assert image.shape == (8, 16, 3)
    assert torch.equal(image.reshape(-1, 3), model(coords).detach())


def test_ffn_reference_coords_span() -> None:
    coords = ffn_coords(128, 256)
    assert coords[:, 1].min() == -1 and coords[:, 1].max() == 1
    assert coords[:, 0].min() == -1
    assert coords[:, 0].max() == pytest.approx(2 * 127 / 255 - 1)
