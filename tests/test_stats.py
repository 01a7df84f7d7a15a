"""The statistics behind `lstm-bench compare`: exact Mann-Whitney U, Holm, bootstrap CI, verdicts."""
from __future__ import annotations

import math

import numpy as np
import pytest

from lstm_bench.comparison.stats import bootstrap_ratio_ci, compare_samples, holm, mann_whitney_u, min_p


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


# --- paired repeats (ab), batches, runs -----------------------------------------------------------------------

from lstm_bench.bench.spread import is_noisy, relative_iqr  # noqa: E402
from lstm_bench.comparison.stats import (batch_medians, compare_pairs, compare_run_samples,  # noqa: E402
                                         detectable_paired, hodges_lehmann, one_sample_t, pairs_needed, robust_sd,
                                         signed_rank, signed_rank_ci, welch_log)


def test_signed_rank_matches_scipy_and_its_exact_floor():
    scipy_stats = pytest.importorskip("scipy.stats")
    d = np.array([0.1, 0.2, -0.04, 0.3, 0.12, 0.22, 0.15, 0.05, 0.13])  # no ties: exact
    assert signed_rank(d) == pytest.approx(scipy_stats.wilcoxon(d, method="exact").pvalue)
    # all 10 differences positive: only 1 of 2^10 sign patterns is as extreme on each side
    assert signed_rank(np.arange(1, 11) * 0.01) == pytest.approx(2 / 2 ** 10)
    assert signed_rank([0.0, 0.0, 0.0]) == 1.0


def test_hodges_lehmann_and_its_interval_by_hand():
    # Walsh averages of (1, 2, 9): 1, 1.5, 5, 2, 5.5, 9 -> sorted 1, 1.5, 2, 5, 5.5, 9: median 3.5
    assert hodges_lehmann([1.0, 2.0, 9.0]) == pytest.approx(3.5)
    # n = 3 is too few for a 95% interval: it spans every Walsh average
    assert signed_rank_ci([1.0, 2.0, 9.0]) == (1.0, 9.0)
    rng = np.random.default_rng(3)
    d = 0.1 + 0.02 * rng.standard_normal(40)
    lo, hi = signed_rank_ci(d)
    assert lo < 0.1 < hi and hi - lo < 0.03


def test_batch_medians_and_the_t_test_by_hand():
    d = [0.1, 0.3, 0.2, 1.0, 1.0, -5.0]
    assert batch_medians(d, [0, 0, 0, 1, 1, 1]).tolist() == pytest.approx([0.2, 1.0])
    mean, lo, hi, p, se, df = one_sample_t([1.0, 2.0, 3.0])
    # mean 2, sd 1, se 1/sqrt(3), df 2: t = 2 sqrt(3) = 3.464, two-sided p = 0.0742 (t table)
    assert (mean, df) == (2.0, 2.0) and se == pytest.approx(1 / math.sqrt(3))
    assert p == pytest.approx(0.07418, abs=1e-4)
    assert lo == pytest.approx(2 - 4.3027 / math.sqrt(3), abs=1e-3)


def _paired(ratio: float, n: int, noise: float, seed: int, shared: float = 0.5):
    """n pairs with a large load shared within each pair (which the pairing must cancel)."""
    rng = np.random.default_rng(seed)
    load = np.exp(shared * rng.standard_normal(n))
    base = 1e-3 * load * np.exp(noise * rng.standard_normal(n))
    new = ratio * 1e-3 * load * np.exp(noise * rng.standard_normal(n))
    return base, new


def test_pairs_cancel_shared_load_both_ways():
    same = _paired(1.0, 30, 0.02, 1)
    slow = _paired(1.10, 30, 0.02, 2)
    batches = [i // 3 for i in range(30)]
    got = {v.key: v for v in compare_pairs({"same": (*same, batches), "slow": (*slow, batches)})}
    assert got["same"].verdict == "no change" and not got["same"].regression
    assert got["slow"].verdict == "slower" and got["slow"].regression and got["slow"].method == "batches"
    assert got["slow"].ci_low < 1.10 < got["slow"].ci_high
    # without the batch labels: the signed-rank test on the pairs
    assert compare_pairs({"slow": slow})[0].method == "pairs"
    # the unpaired test on the same numbers drowns in the shared load (sd 0.5 against a 10 % change)
    assert compare_samples({"slow": slow}, threshold=0.05)[0].verdict == "no change"


def test_a_slowdown_inside_one_worker_generation_is_not_a_verdict():
    """A stretch that favours one side within one generation (a shared process, a burst) moves one batch
    median: the batch test does not call it significant, the pair-level signed-rank test does."""
    rng = np.random.default_rng(7)
    base = 1e-3 * np.exp(0.01 * rng.standard_normal(30))
    new = base * np.exp(0.01 * rng.standard_normal(30))
    new[:10] *= 1.08  # generation 0 only
    batches = [i // 3 for i in range(30)]
    assert compare_pairs({"p": (base, new, batches)})[0].verdict == "no change"
    batches = [i // 10 for i in range(30)]  # three generations of ten: one of three is off
    assert compare_pairs({"p": (base, new, batches)})[0].verdict == "no change"
    assert compare_pairs({"p": (base, new)})[0].verdict == "slower"  # the pairs alone are fooled


def test_detectable_slowdown_and_pairs_needed():
    # sd 0.05 over 30 pairs at level 0.05: (1.95996 + 0.84162) * 0.05 / sqrt(30 * 3/pi) = 0.026171 -> 2.65 %
    assert detectable_paired(0.05, 30, 0.05) == pytest.approx(math.expm1(0.026171), rel=1e-4)
    assert detectable_paired(0.05, 4, 0.05) == math.inf  # 2 / 2^4 = 0.125: never significant
    need = pairs_needed(0.05, 0.05)
    assert detectable_paired(0.05, need, 0.05) <= 0.05 < detectable_paired(0.05, need - 2, 0.05)
    v = compare_pairs({"p": _paired(1.0, 30, 0.05, 4)})[0]
    assert 0 < v.detectable < 0.2 and v.more_for_target >= 0


def test_runs_are_the_unit_when_there_are_several():
    rng = np.random.default_rng(5)
    run = lambda level: list(level * 1e-3 * np.exp(0.01 * rng.standard_normal(7)))  # noqa: E731
    # every run's repeats agree, but the runs moved by the load: 1.0, 1.3, 0.8 ... on both sides
    levels = [1.0, 1.3, 0.8, 1.1, 0.9]
    same = ([run(x) for x in levels], [run(x) for x in levels[::-1]])
    slow = ([run(x) for x in levels], [run(1.5 * x) for x in levels])
    got = {v.key: v for v in compare_run_samples({"same": same, "slow": slow})}
    assert got["same"].method == "runs" and got["same"].verdict == "no change"
    assert got["slow"].verdict == "slower" and got["slow"].ratio == pytest.approx(1.5, rel=0.02)
    one = compare_run_samples({"one": ([run(1.0)], [run(1.0)])})[0]
    assert one.method == "repeats" and math.isnan(one.detectable)
    diff, lo, hi, p, se, df = welch_log([1.0, 1.1, 0.9], [2.0, 2.2, 1.8])
    assert diff == pytest.approx(math.log(2.0), abs=0.01) and p < 0.01 and lo < diff < hi


def test_noisy_is_an_iqr_above_ten_percent_of_the_median():
    assert relative_iqr([1.0, 2.0, 3.0, 4.0, 5.0]) == pytest.approx(2 / 3)
    assert not is_noisy([1.0, 1.01, 1.02, 1.03, 1.04]) and is_noisy([1.0, 1.0, 1.1, 1.2, 1.25])
    v = compare_pairs({"p": ([1.0, 1.0, 1.3, 1.3], [1.0, 1.0, 1.0, 1.0])})[0]
    assert v.noisy and v.to_dict()["noisy"] is True


def test_verdicts_are_strict_json():
    import json

    v = compare_run_samples({"one": ([[1.0, 1.1, 0.9]], [[1.0, 1.2, 0.9]])})[0]
    assert json.loads(json.dumps(v.to_dict(), allow_nan=False))["detectable"] is None


def test_no_change_only_when_the_threshold_was_detectable_else_inconclusive():
    quiet = compare_pairs({"p": _paired(1.0, 30, 0.01, 11)}, threshold=0.05)[0]
    assert quiet.verdict == "no change" and quiet.detectable <= 0.05 and quiet.outcome == "no change"
    noisy_pair = _paired(1.0, 30, 0.30, 12)
    noisy = compare_pairs({"p": noisy_pair}, threshold=0.05)[0]
    assert noisy.verdict == "no change" and noisy.detectable > 0.05 and noisy.outcome == "inconclusive"
    # the further pairs that would decide it: enough to make the threshold itself detectable
    sd = robust_sd(np.log(noisy_pair[1]) - np.log(noisy_pair[0]))
    assert noisy.more_for_target == pairs_needed(sd, 0.05, target=0.05) - 30 > 0
    # a 10 % threshold is easier to see than 5 %: fewer further pairs
    assert compare_pairs({"p": noisy_pair}, threshold=0.10)[0].more_for_target < noisy.more_for_target
    # significant outcomes are decided whatever the power
    slow = compare_pairs({"p": _paired(3.0, 30, 0.05, 13)})[0]
    fast = compare_pairs({"p": _paired(0.5, 30, 0.05, 14)})[0]
    assert (slow.outcome, fast.outcome) == ("regression", "faster")


def test_outcome_rule_by_hand():
    from lstm_bench.comparison.stats import outcome

    assert outcome("no change", False, 0.04, 1.2, 0.05) == "no change"
    assert outcome("no change", False, 0.06, 1.01, 0.05) == "inconclusive"
    assert outcome("no change", False, math.inf, 1.01, 0.05) == "inconclusive"
    assert outcome("no change", False, math.nan, 1.04, 0.05) == "no change"  # repeats: no detectable, the CI
    assert outcome("no change", False, math.nan, 1.06, 0.05) == "inconclusive"
    assert outcome("slower", True, 0.5, 9.0, 0.05) == "regression"
    assert outcome("slower", False, 0.5, 9.0, 0.05) == "slower"
