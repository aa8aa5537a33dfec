"""Uncertainty of experiment results: bootstrap intervals and paired tests.

The experiments score every method on the same test units (utterances,
speaker pairs, movement repetitions), so a difference between two methods is
judged on paired values. Everything here wraps :mod:`scipy.stats`
(``bootstrap``, ``wilcoxon``); the only formula written out is Holm's
step-down correction for testing several pairs at once.
"""
from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np

__all__ = ["bootstrap_ci", "paired_comparison", "holm_adjust"]


def _finite(values: Sequence[float | None]) -> np.ndarray:
    arr = np.asarray([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    return arr[np.isfinite(arr)]


def bootstrap_ci(values: Sequence[float | None], *, level: float = 0.95, n_resamples: int = 2000,
                 random_state: int = 0) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean.

    Parameters
    ----------
    values : sequence of float, shape (n_units,)
        One value per independent test unit; ``None``, NaN and inf are left out.
    level : float
        Coverage of the interval (0.95 for a 95% interval).
    n_resamples : int
        Bootstrap resamples.
    random_state : int
        Seed of the resampling, so a report is reproducible.

    Returns
    -------
    (low, high) or None
        ``None`` when fewer than two finite values remain (no interval exists).
        With all values equal the interval is that value on both sides.
    """
    from scipy import stats

    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    x = _finite(values)
    if x.size < 2:
        return None
    if np.ptp(x) == 0.0:
        return float(x[0]), float(x[0])
    res = stats.bootstrap((x,), np.mean, confidence_level=level, n_resamples=n_resamples, method="percentile",
                          rng=np.random.default_rng(random_state), vectorized=True)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def paired_comparison(a: Sequence[float | None], b: Sequence[float | None], *, level: float = 0.95,
                      random_state: int = 0) -> dict[str, float | int | list[float] | None]:
    """Compare two methods scored on the same units.

    Parameters
    ----------
    a, b : sequence of float, shape (n_units,)
        Scores of the two methods, unit by unit (same order). Units where
        either score is missing are dropped from both.
    level, random_state
        As in :func:`bootstrap_ci`, for the interval of the mean difference.

    Returns
    -------
    dict
        ``n`` (units used), ``mean_diff`` (mean of ``a - b``), ``ci95``
        (bootstrap interval of that mean, or None), ``p_value`` (two-sided
        Wilcoxon signed-rank test; 1.0 when every difference is zero, None
        with fewer than two units).
    """
    from scipy import stats

    x = np.asarray([np.nan if v is None else float(v) for v in a], dtype=np.float64)
    y = np.asarray([np.nan if v is None else float(v) for v in b], dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"paired scores need the same number of units, got {x.size} and {y.size}")
    keep = np.isfinite(x) & np.isfinite(y)
    d = x[keep] - y[keep]
    out: dict[str, float | int | list[float] | None] = {"n": int(d.size), "mean_diff": float(d.mean()) if d.size else None}
    ci = bootstrap_ci(d, level=level, random_state=random_state)
    out["ci95"] = None if ci is None else [ci[0], ci[1]]
    if d.size < 2:
        out["p_value"] = None
    elif not np.any(d):
        out["p_value"] = 1.0
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # scipy notes small-sample/ties approximations
            out["p_value"] = float(stats.wilcoxon(d).pvalue)
    return out


def holm_adjust(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of several p-values (family-wise error).

    Parameters
    ----------
    p_values : sequence of float or None, shape (n_tests,)
        Raw p-values; ``None`` entries stay ``None`` and do not count as tests.

    Returns
    -------
    list of float or None, shape (n_tests,)
        Adjusted p-values, ``min(1, max_{j <= i} (m - j + 1) p_(j))`` in the
        order of the input.
    """
    idx = [i for i, p in enumerate(p_values) if p is not None and not math.isnan(p)]
    order = sorted(idx, key=lambda i: p_values[i])
    m = len(order)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * float(p_values[i])))
        adjusted[i] = running
    return adjusted
