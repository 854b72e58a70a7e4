"""Confidence intervals for agent evaluation: Wilson for success rates, bootstrap for mean returns."""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np

__all__ = ["bootstrap_mean_interval", "wilson_interval"]


def _z(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (Wilson 1927).

    Unlike the normal approximation it stays inside [0, 1] and is not degenerate at 0 or ``trials``
    successes, which matters for the small success rates of weak policies.

    Args:
        successes: number of successes ``k``.
        trials: number of trials ``n`` (>= 1).
        confidence: coverage, e.g. 0.95.

    Returns:
        ``(low, high)``.
    """
    if trials < 1 or not 0 <= successes <= trials:
        raise ValueError(f"expected 0 <= successes <= trials and trials >= 1, got {successes}/{trials}")
    z = _z(confidence)
    p = successes / trials
    denom = 1.0 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    # Exact ends at 0 and n successes (the formula gives them only up to rounding).
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


def bootstrap_mean_interval(
    values: Sequence[float] | np.ndarray, confidence: float = 0.95, resamples: int = 10_000, seed: int = 0
) -> tuple[float, float]:
    """Percentile-bootstrap interval of a mean (Efron & Tibshirani 1993), deterministic given ``seed``.

    Args:
        values: the samples ``(n,)`` (n >= 1); one value gives a zero-width interval.
        confidence: coverage, e.g. 0.95.
        resamples: bootstrap resamples.
        seed: seed of the resampling generator.

    Returns:
        ``(low, high)``.
    """
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if x.size == 0:
        raise ValueError("bootstrap_mean_interval needs at least one value")
    _z(confidence)  # validates
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(int(resamples), x.size))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)
