"""Confidence intervals: Wilson for proportions, Student's t for means (95% by default).

Pure Python (no scipy): t quantiles for small samples come from a table, 1.96 beyond it.

    >>> round(wilson(8, 10).low, 3), round(wilson(8, 10).high, 3)
    (0.49, 0.943)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

Z95 = 1.959963984540054
# Two-sided 95% Student t quantiles, df 1..30.
_T95 = [
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
]


@dataclass
class Proportion:
    k: int
    n: int
    rate: float | None
    low: float | None
    high: float | None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Mean:
    n: int
    mean: float | None
    low: float | None
    high: float | None

    def as_dict(self) -> dict:
        return asdict(self)


def wilson(k: int, n: int, z: float = Z95) -> Proportion:
    """k successes in n trials: the rate and its Wilson score interval (sound at 0, 1 and small n)."""
    if n <= 0:
        return Proportion(k, n, None, None, None)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Proportion(k, n, p, max(0.0, centre - half), min(1.0, centre + half))


def t_quantile(df: int) -> float:
    return _T95[df - 1] if 1 <= df <= len(_T95) else Z95


def mean_ci(values, low: float | None = None, high: float | None = None) -> Mean:
    """The mean and its t interval, clipped to the values' possible range [low, high] when given;
    one value gives the mean with no interval."""
    values = [float(v) for v in values]
    n = len(values)
    if n == 0:
        return Mean(0, None, None, None)
    m = sum(values) / n
    if n == 1:
        return Mean(1, m, None, None)
    var = sum((v - m) ** 2 for v in values) / (n - 1)
    half = t_quantile(n - 1) * math.sqrt(var / n)
    lo, hi = m - half, m + half
    return Mean(n, m, lo if low is None else max(low, lo), hi if high is None else min(high, hi))
