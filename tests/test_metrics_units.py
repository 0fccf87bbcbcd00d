"""Pure parts of the metrics: percentiles, histograms and how a date range is covered by cells."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest

from dispatch.metrics import histogram
from dispatch.metrics.service import spans


@pytest.mark.parametrize("values, p50, p90", [
    ([60, 120, 180, 240, 600], 180, 600),
    ([300, 600], 300, 600),
    ([7], 7, 7),
    (list(range(1, 11)), 5, 9),
    ([], None, None),
])
def test_nearest_rank(values, p50, p90):
    assert histogram.nearest_rank(values, 50) == p50
    assert histogram.nearest_rank(values, 90) == p90


def test_histogram_estimates_stay_within_the_bound():
    rng = np.random.default_rng(3)
    for size in (1, 2, 5, 50, 5000):
        values = np.maximum(0, rng.lognormal(7, 2, size)).astype(int)
        counts: dict[int, int] = {}
        for value in values:
            counts[histogram.bin_of(int(value))] = counts.get(histogram.bin_of(int(value)), 0) + 1
        dense = histogram.dense([0], [histogram.encode(counts)], 1, 1)[0, 0]
        for percent in (50, 90):
            exact = histogram.nearest_rank(sorted(values.tolist()), percent)
            estimate = histogram.estimate(dense, percent)
            if exact < 1:
                assert estimate == 0
            else:
                assert abs(estimate - exact) <= exact * histogram.MAX_RELATIVE_ERROR + 0.05


def test_sparse_histograms_round_trip_and_sum_per_group():
    a, b = histogram.encode({3: 2, 401: 1}), histogram.encode({3: 1, 0: 0})
    assert histogram.decode(a) == {3: 2, 401: 1} and histogram.decode(b) == {3: 1}
    dense = histogram.dense([1, 1, 0], [a, b, b], 2, 2)
    assert dense[1, 0, 3] == 3 and dense[1, 1, 1] == 1 and dense[0, 0, 3] == 1 and dense.sum() == 5


def cell_days(span: str, period: date) -> int:
    if span == "M":
        return ((period.replace(day=28) + timedelta(days=4)).replace(day=1) - period).days
    return {"D": 1, "W": 7}[span]


def d(text: str) -> date:
    return date.fromisoformat(text)


@pytest.mark.parametrize("start, end, allowed, parts", [
    ("2026-11-01", "2026-11-30", "MWD", [("M", "2026-11-01", "2026-11-01")]),
    ("2025-12-01", "2026-11-30", "MWD", [("M", "2025-12-01", "2026-11-01")]),
    ("2026-11-20", "2026-12-31", "MWD", [("D", "2026-11-20", "2026-11-22"), ("W", "2026-11-23", "2026-11-23"),
                                        ("D", "2026-11-30", "2026-11-30"), ("M", "2026-12-01", "2026-12-01")]),
    ("2026-11-20", "2026-12-31", "MD", [("D", "2026-11-20", "2026-11-30"), ("M", "2026-12-01", "2026-12-01")]),
    ("2026-10-17", "2026-11-15", "WD", [("D", "2026-10-17", "2026-10-18"), ("W", "2026-10-19", "2026-11-09")]),
    ("2026-11-03", "2026-11-05", "MWD", [("D", "2026-11-03", "2026-11-05")]),
    ("2026-11-03", "2026-11-05", "D", [("D", "2026-11-03", "2026-11-05")]),
])
def test_ranges_are_covered_by_months_weeks_and_days(start, end, allowed, parts):
    got = spans(d(start), d(end), allowed)
    assert got == [(span, d(a), d(b)) for span, a, b in parts]
    covered = []
    for span, first, last in got:
        period = first
        while period <= last:
            length = cell_days(span, period)
            covered += [period + timedelta(days=k) for k in range(length)]
            period += timedelta(days=length)
    assert covered == [d(start) + timedelta(days=k) for k in range((d(end) - d(start)).days + 1)]
