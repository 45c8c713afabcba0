"""xinc.bench.canvas: the naive baselines equal xinc's maps; the harness runs and reports."""

from __future__ import annotations

import pytest
import torch

from xinc.bench import canvas as bench
from xinc.canvas import ffn_canvas, nerv_canvas
from xinc.models import build_model


@pytest.mark.slow  # naive canvas of a NeRV
def test_naive_nerv_equals_canvas():
    torch.manual_seed(0)
    model = build_model("nerv", {"fc_dim": 5, "fc_hw": [2, 3]}).eval()
    ours = nerv_canvas(model, 0.3)
    for layer, maps in ours.items():
        naive = bench.naive_nerv_maps(model, 0.3, layer)
        assert naive.shape == maps.shape, layer
        torch.testing.assert_close(naive, maps, rtol=1e-5, atol=1e-6, msg=layer)


def test_naive_ffn_equals_canvas():
    torch.manual_seed(0)
    model = build_model("ffn", {"width": 8}).eval()
    ours = ffn_canvas(model, 6, 10)
    for layer, maps in ours.items():
        torch.testing.assert_close(bench.naive_ffn_maps(model, 6, 10, layer), maps,
                                   rtol=1e-5, atol=1e-6, msg=layer)


def test_measure_and_report():
    row = bench.measure("stats", "ffn", "l3", size=(16, 32))
    assert row["seconds"] > 0 and row["peak_rss_delta_bytes"] >= 0
    assert row["device"] == "cpu" and "peak_gpu_bytes" not in row
    result = {"preset": "paper", "size": [16, 32], "threads": 1,
              "rows": [row, {"case": "naive", "arch": "nerv", "layer": "b1", "error": "skipped"}]}
    text = bench.format_report(result)
    assert "l3" in text and "skipped" in text


def test_alloc_case_is_the_layer_shape():
    row = bench.measure("alloc", "nerv", "b2", repeats=2)
    assert row["case"] == "alloc" and row["seconds"] > 0 and row["repeats"] == 2
    # b2's zero tensor (3,224 × 128 × 256 float32 = 403 MiB) is first-touched in this process
    assert row["peak_rss_delta_bytes"] >= 400 * 2**20


def test_frame_totals_speedups():
    rows = [{"arch": "nerv", "case": c, "layer": layer, "seconds": s, "peak_rss_delta_bytes": m}
            for c, layer, s, m in [("naive", "b1", 10.0, 5), ("naive", "b2", 2.0, 7),
                                   ("dense", "b1", 1.0, 3), ("dense", "b2", 1.0, 2),
                                   ("stats", "b1", 4.0, 1)]]
    totals = {row["case"]: row for row in bench.frame_totals(rows)}
    assert totals["naive"]["seconds"] == 12.0 and totals["naive"]["speedup_vs_naive"] == 1.0
    assert totals["dense"]["speedup_vs_naive"] == 6.0
    assert totals["dense"]["max_peak_rss_delta_bytes"] == 3
    assert totals["stats"]["speedup_vs_naive"] is None  # other layers than the baseline


def test_naive_ffn_frame_equals_per_layer():
    torch.manual_seed(1)
    model = build_model("ffn", {"width": 8}).eval()
    frame = bench.naive_ffn_frame(model, 5, 6)
    for layer, maps in frame.items():
        torch.testing.assert_close(maps, bench.naive_ffn_maps(model, 5, 6, layer))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(ValueError, match="CUDA is not available.*device 'cpu'"):
        bench.run(device="cuda", cases=["dense"])


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"cases": ["bogus"]}, "unknown case 'bogus'"),
    ({"naive_layers": ["l1"]}, "unknown NeRV layer 'l1'"),
    ({"ffn_layers": ["b1"]}, "unknown FFN layer 'b1'"),
    ({"repeats": 0}, "repeats"),
    ({"device": "bogus"}, "device 'bogus'"),
])
def test_run_checks_its_arguments_before_measuring(kwargs, message, monkeypatch):
    monkeypatch.setattr(bench, "_measure_subprocess", lambda *a, **k: pytest.fail("measured"))
    with pytest.raises(ValueError, match=message):
        bench.run(**kwargs)
