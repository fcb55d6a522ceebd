"""BD-rate wrapper: textbook cases, and NaN with a reason for unusable curves."""

from __future__ import annotations

import json
import math

import pytest

from icm_lib.evaluate.recognition.bdrate import Curve, bd_rate, bd_rate_table, table_markdown, write_table

ANCHOR = Curve(bpp=[0.1, 0.2, 0.4, 0.8], metric=[0.20, 0.30, 0.38, 0.42])


def _scaled(curve: Curve, factor: float) -> Curve:
    return Curve([b * factor for b in curve.bpp], list(curve.metric))


@pytest.mark.parametrize("factor,expected", [(0.5, -50.0), (2.0, 100.0), (1.0, 0.0)])
def test_scaled_rates_give_the_textbook_bd_rate(factor, expected):
    result = bd_rate(ANCHOR, _scaled(ANCHOR, factor))
    assert result.value == pytest.approx(expected, abs=1e-6)


def test_unsorted_input_is_sorted_first():
    shuffled = Curve([0.4, 0.1, 0.8, 0.2], [0.38, 0.20, 0.42, 0.30])
    assert bd_rate(ANCHOR, _scaled(shuffled, 0.5)).value == pytest.approx(-50.0)


def test_too_few_points_and_non_monotonic_give_nan_with_reason():
    short = Curve([0.1, 0.2, 0.4], [0.2, 0.3, 0.38])
    result = bd_rate(ANCHOR, short)
    assert math.isnan(result.value) and "fewer than 4" in result.reason
    assert bd_rate(ANCHOR, short, min_points=3).value == pytest.approx(0.0, abs=0.5)  # same points, other spline
    wiggly = Curve([0.1, 0.2, 0.4, 0.8, 1.6], [0.20, 0.30, 0.28, 0.38, 0.42])
    result = bd_rate(ANCHOR, wiggly)
    assert math.isnan(result.value) and "does not rise" in result.reason
    kept = bd_rate(ANCHOR, wiggly, drop_dominated=True)
    assert math.isfinite(kept.value) and "dominated" in kept.reason and "0.4" in kept.reason


def test_disjoint_accuracy_ranges_give_nan():
    high = Curve([0.1, 0.2, 0.4, 0.8], [0.50, 0.60, 0.70, 0.80])
    result = bd_rate(ANCHOR, high)
    assert math.isnan(result.value) and "no mAP range" in result.reason


def test_table_rows_columns_and_files(tmp_path):
    curves = {"mse": ANCHOR, "object": _scaled(ANCHOR, 0.5), "jpeg": Curve([1.0], [0.3])}
    table = bd_rate_table(curves, anchor="object")
    assert table["rows"][0] == "object"
    row = dict(zip(table["columns"], table["bd_rate"][0]))
    assert row["mse"] == pytest.approx(-50.0) and row["object"] is None and row["jpeg"] is None
    markdown = table_markdown(table)
    assert "| object |" in markdown and "-50.0" in markdown and "fewer than 4" in markdown
    json_path, md_path = write_table(table, tmp_path / "bdrate_shapes_yolo.json", "test")
    assert json.loads(json_path.read_text())["rows"] == table["rows"]
    assert md_path.read_text() == markdown
    with pytest.raises(ValueError, match="anchor 'vvc'"):
        bd_rate_table(curves, anchor="vvc")
