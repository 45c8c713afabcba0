"""`xinc bench canvas-jobs`: per-frame processes and one per-model process give equal statistics."""

import pytest

from xinc.bench.canvas_jobs import format_report, run

pytestmark = pytest.mark.slow  # starts Python, torch and a model three times


def test_per_frame_and_per_model_jobs_write_equal_statistics():
    result = run("ffn", preset="smoke", n_frames=2)  # raises if any statistic differs
    assert result["per_frame"]["jobs"] == 2 and result["per_model"]["jobs"] == 1
    assert result["layers"] == ["l1", "l2", "l3"]
    assert result["speedup"] == result["per_frame"]["seconds"] / result["per_model"]["seconds"]
    assert "per-model speed-up" in format_report(result)
