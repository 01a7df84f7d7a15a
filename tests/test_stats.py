"""The statistics behind `lstm-bench compare`: exact Mann-Whitney U, Holm, bootstrap CI, verdicts."""
from __future__ import annotations

import math

import numpy as np
import pytest

from lstm_bench.stats import bootstrap_ratio_ci, compare_samples, holm, mann_whitney_u, min_p


def test_fully_separated_samples_have_the_smallest_exact_p():
    # Every b above every a: U = n*m, and only 1 of C(10, 5) = 252 orderings is as extreme
    # on each side, so the two-sided p is 2/252.
    u, p = mann_whitney_u([1, 2, 3, 4, 5], [6, 7, 8, 9, 10])
    assert u == 25
    assert p == pytest.approx(2 / 252)
    assert min_p(5, 5) == pytest.approx(2 / 252)


def test_interleaved_samples_are_not_significant():
    u, p = mann_whitney_u([1, 3, 5, 7, 9], [2, 4, 6, 8, 10])
    assert u == 15  # pairs with b > a: 5 + 4 + 3 + 2 + 1
    assert p > 0.5


@pytest.mark.parametrize("n, m", [(3, 4), (7, 7), (12, 9), (60, 70)])
def test_mann_whitney_matches_scipy(n, m):
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(n * 100 + m)
    a, b = rng.normal(size=n), rng.normal(0.4, size=m)
    method = "exact" if max(n, m) <= 50 else "asymptotic"
    ref = scipy_stats.mannwhitneyu(b, a, alternative="two-sided", method=method)
    u, p = mann_whitney_u(a, b)
    assert u == ref.statistic
    assert p == pytest.approx(ref.pvalue, rel=1e-9)


def test_ties_use_the_corrected_normal_approximation():
    scipy_stats = pytest.importorskip("scipy.stats")
    a, b = [1, 1, 2, 3, 3, 3], [2, 3, 4, 4, 5, 5]
    ref = scipy_stats.mannwhitneyu(b, a, alternative="two-sided", method="asymptotic")
    assert mann_whitney_u(a, b)[1] == pytest.approx(ref.pvalue, rel=1e-9)


def test_holm_step_down():
    # Sorted p: 0.01, 0.03, 0.04, 0.2 -> 4*0.01, max(.04, 3*.03), max(.09, 2*.04), max(.09, .2)
    assert holm([0.01, 0.04, 0.03, 0.2]) == pytest.approx([0.04, 0.09, 0.09, 0.2])
    assert holm([0.9, 0.4]) == pytest.approx([0.9, 0.8])  # 2*0.4, then max(0.8, 0.9)


def test_bootstrap_ci_brackets_the_true_ratio():
    rng = np.random.default_rng(0)
    a = 1e-3 * (1 + 0.05 * rng.standard_normal(30))
    b = 2e-3 * (1 + 0.05 * rng.standard_normal(30))
    lo, hi = bootstrap_ratio_ci(a, b)
    assert lo < 2.0 < hi
    assert hi - lo < 0.2
    assert bootstrap_ratio_ci([1.0] * 5, [3.0] * 5) == pytest.approx((3.0, 3.0))


def test_verdicts_and_regression_threshold():
    rng = np.random.default_rng(1)
    base = 1e-3 * (1 + 0.02 * rng.standard_normal(10))
    same = 1e-3 * (1 + 0.02 * rng.standard_normal(10))
    pairs = {
        "slow3x": (base, 3 * base[::-1]),
        "fast2x": (base, 0.5 * base),
        "same": (base, same),
        "slow5pct": (base, 1.05 * base[::-1]),  # significant, but under a 10% threshold
    }
    got = {v.key: v for v in compare_samples(pairs, threshold=0.10)}
    assert got["slow3x"].verdict == "slower" and got["slow3x"].regression
    assert got["slow3x"].ratio == pytest.approx(3.0, rel=0.05)
    assert got["fast2x"].verdict == "faster" and not got["fast2x"].regression
    assert got["same"].verdict == "no change" and not got["same"].regression
    assert got["slow5pct"].verdict == "slower" and not got["slow5pct"].regression
    assert compare_samples({"x": pairs["slow5pct"]}, threshold=0.01)[0].regression


def test_holm_keeps_small_families_honest():
    # With 5 vs 5 repeats the smallest p is 0.0079: alone it is significant, but among
    # 10 points Holm multiplies it by 10 and nothing can be declared slower.
    a, b = [1, 2, 3, 4, 5], [6, 7, 8, 9, 10]
    assert compare_samples({"p": (a, b)})[0].verdict == "slower"
    many = {f"p{i}": (a, b) for i in range(10)}
    assert {v.verdict for v in compare_samples(many)} == {"no change"}
    assert {v.verdict for v in compare_samples(many, correction="none")} == {"slower"}


@pytest.mark.parametrize("bad", [[], [1.0, math.nan], [math.inf]])
def test_bad_samples_are_named(bad):
    with pytest.raises(ValueError, match="p base"):
        compare_samples({"p": (bad, [1.0])})


def test_bad_threshold_and_alpha():
    with pytest.raises(ValueError, match="threshold"):
        compare_samples({"p": ([1.0], [1.0])}, threshold=-0.1)
    with pytest.raises(ValueError, match="alpha"):
        compare_samples({"p": ([1.0], [1.0])}, alpha=1.5)
