"""deepnmf.stats: bootstrap intervals, paired comparisons, Holm's correction."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from deepnmf.stats import bootstrap_ci, holm_adjust, paired_comparison


def test_bootstrap_interval_matches_a_naive_resampling():
    x = np.random.default_rng(1).gamma(2.0, 1.5, size=25)
    lo, hi = bootstrap_ci(x, n_resamples=4000, random_state=3)
    rng = np.random.default_rng(7)
    means = x[rng.integers(0, x.size, size=(20000, x.size))].mean(axis=1)
    ref_lo, ref_hi = np.quantile(means, [0.025, 0.975])
    se = x.std(ddof=1) / np.sqrt(x.size)
    assert abs(lo - ref_lo) < 0.15 * se and abs(hi - ref_hi) < 0.15 * se
    assert lo < x.mean() < hi


def test_bootstrap_interval_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    hits = 0
    for trial in range(200):
        x = rng.normal(2.0, 1.0, size=40)
        lo, hi = bootstrap_ci(x, n_resamples=500, random_state=trial)
        hits += lo <= 2.0 <= hi
    assert 0.88 <= hits / 200 <= 0.99


def test_bootstrap_interval_edge_cases():
    assert bootstrap_ci([1.0]) is None
    assert bootstrap_ci([None, float("nan"), 3.0]) is None
    assert bootstrap_ci([2.0, 2.0, 2.0]) == (2.0, 2.0)
    lo, hi = bootstrap_ci([1.0, None, 2.0, float("inf"), 3.0])
    assert 1.0 <= lo < hi <= 3.0
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci([1.0, 2.0], level=95)


def test_paired_comparison_agrees_with_scipy_wilcoxon_and_drops_missing_pairs():
    rng = np.random.default_rng(2)
    a = rng.normal(1.0, 1.0, size=30)
    b = a - 0.4 + rng.normal(0.0, 0.5, size=30)
    out = paired_comparison(list(a) + [None], list(b) + [1.0])
    assert out["n"] == 30
    assert out["mean_diff"] == pytest.approx(float(np.mean(a - b)))
    assert out["p_value"] == pytest.approx(float(sps.wilcoxon(a - b).pvalue))
    lo, hi = out["ci95"]
    assert lo < out["mean_diff"] < hi
    same = paired_comparison(a, a)
    assert same["p_value"] == 1.0 and same["mean_diff"] == 0.0
    with pytest.raises(ValueError, match="same number"):
        paired_comparison([1.0, 2.0], [1.0])


def test_holm_matches_hand_computed_values():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> raised to 0.06 (monotone)
    got = holm_adjust([0.01, 0.04, None, 0.03, 0.005])
    assert got[2] is None
    assert [got[i] for i in (0, 1, 3, 4)] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm_adjust([0.6, 0.9]) == pytest.approx([1.0, 1.0])
