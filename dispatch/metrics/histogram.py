"""Percentiles: nearest rank, exact over durations or estimated from a log-scale histogram.

The p-th percentile of n durations is the k-th smallest, k = ceil(p × n / 100) (at least 1):
always one of the durations, the same on every database. A rollup cell keeps, per phase, a
histogram whose bin 0 holds durations under 1 s and bin b ≥ 1 holds [R^(b-1), R^b) seconds.
The estimate of a percentile is the geometric middle of the bin holding the k-th smallest
duration, so it is within a factor √R of the exact one: a relative error of at most
MAX_RELATIVE_ERROR (2.47 %), or under 1 s for durations under 1 s.

A histogram is stored sparse: little-endian (uint16 index, uint32 count) pairs sorted by
index, index = phase number × BINS + bin.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

R = 1.05
BINS = 400  # the last bin is open-ended: R^399 s is nine years
MAX_RELATIVE_ERROR = math.sqrt(R) - 1
ENTRY = np.dtype([("index", "<u2"), ("count", "<u4")])
_LOG_R = math.log(R)


def bin_of(seconds: int) -> int:
    if seconds < 1:
        return 0
    return min(BINS - 1, 1 + int(math.log(seconds) / _LOG_R))


def rank(percent: int, n: int) -> int:
    """The 1-based rank of the nearest-rank percentile among n values."""
    return max(1, -(-percent * n // 100))


def nearest_rank(sorted_values: Sequence[int], percent: int) -> int | None:
    if not sorted_values:
        return None
    return sorted_values[rank(percent, len(sorted_values)) - 1]


def encode(counts: dict[int, int]) -> bytes:
    items = sorted((i, c) for i, c in counts.items() if c)
    return np.array(items, dtype=ENTRY).tobytes() if items else b""


def decode(blob: bytes | None) -> dict[int, int]:
    if not blob:
        return {}
    entries = np.frombuffer(blob, dtype=ENTRY)
    return dict(zip(entries["index"].tolist(), entries["count"].tolist()))


def dense(groups: Sequence[int], blobs: Sequence[bytes], n_groups: int, n_phases: int) -> np.ndarray:
    """Sum sparse histograms into one dense (group, phase, bin) array of counts."""
    width = n_phases * BINS
    lengths = np.fromiter((len(b) // ENTRY.itemsize for b in blobs), dtype=np.int64, count=len(blobs))
    if not lengths.sum():
        return np.zeros((n_groups, n_phases, BINS), dtype=np.int64)
    entries = np.frombuffer(b"".join(blobs), dtype=ENTRY)
    cells = np.repeat(np.asarray(groups, dtype=np.int64), lengths) * width + entries["index"]
    out = np.bincount(cells, weights=entries["count"], minlength=n_groups * width)
    return out.astype(np.int64).reshape(n_groups, n_phases, BINS)


def estimate(counts: np.ndarray, percent: int) -> float | None:
    """The nearest-rank percentile estimated from one phase's dense bin counts."""
    total = int(counts.sum())
    if total == 0:
        return None
    found = int(np.searchsorted(np.cumsum(counts), rank(percent, total), side="left"))
    return 0.0 if found == 0 else round(R ** (found - 0.5), 1)
