"""Statistics of `lstm-bench compare` and `lstm-bench ab`: is NEW faster, slower, or the same as BASE?

Three designs, one test each, all Holm-adjusted over the points of one comparison
(Holm 1979: sort the k p-values, multiply the i-th smallest by k - i + 1, keep the
running maximum), so that "no change" on all k points of identical code holds with
probability >= 1 - alpha when each test is calibrated:

1. Paired repeats (`ab`, `compare_pairs`): NEW and BASE timed alternately, repeat by
   repeat, in random order within each pair. Per pair i, d_i = ln(new_i / base_i): the
   load a pair shares cancels in d_i. Because the order within a pair is random and the
   two sides are exchangeable when the code is identical, each d_i (and any median of
   them) is symmetric about 0 under the null.
   - batches (`ab`'s default, method "batches"): the pairs come in batches, one per
     generation of worker processes; pairs of one batch share processes and a stretch
     of time, so they are not independent, batches are. m_g = median of d in batch g;
     test: Student's t that mean(m_g) = 0, g = 1..B, df = B - 1 (the batch-means
     method of simulation output analysis, e.g. Law & Kelton 2000, 9.5.3; the median
     within a batch keeps one burst from moving it); estimate ratio = exp(mean m_g),
     CI the t interval. No floor on p; an outlier batch widens the interval (the test
     loses power, it does not gain false alarms).
   - pairs (one batch, method "pairs"): Wilcoxon signed-rank, two-sided (Wilcoxon 1945;
     `scipy.stats.wilcoxon`): W+ = sum of the ranks of |d_i| over d_i > 0; exact null
     distribution (all 2^n sign patterns equally likely) for n <= 50 without ties,
     normal approximation otherwise; smallest possible p: 2 / 2^n. Estimate exp(HL), HL
     the Hodges-Lehmann pseudo-median of d (Hodges & Lehmann 1963): the median of the
     n(n+1)/2 Walsh averages (d_i + d_j)/2, i <= j; CI the distribution-free interval that
     goes with the test: with C = n(n+1)/4 - z * sqrt(n(n+1)(2n+1)/24) (z the normal
     quantile of the level), the (C+1)-th smallest and largest Walsh averages (Hollander
     & Wolfe 1999, 3.3).
2. Independent runs (`compare` of results files with >= 2 runs a side): the unit is the
   run, whose repeats share its stretch of load; each run contributes its median.
   - test      Welch's t on ln(run medians) (`scipy.stats.ttest_ind(equal_var=False)`);
               no floor on p (a rank test on 5 + 5 runs cannot go below 0.008)
   - estimate  ratio = exp(mean ln new - mean ln base), CI Welch's t interval.
3. Repeats of a single run a side (`compare` of one file against one file): Mann-Whitney U
   on the pooled repeats (`scipy.stats.mannwhitneyu`; exact without ties for n, m <= 50)
   with the ratio of medians and a percentile-bootstrap CI. The repeats of one run are
   not independent (they share its load), so these p-values are too small on a noisy
   machine: `compare` says so whenever it falls back to this.

Verdict: "slower" / "faster" when the adjusted p < alpha (direction from the ratio), else
"no change". A point is a *regression* when it is "slower" AND its estimated ratio is
above 1 + threshold: significant and large enough to matter.

Outcome (`PointComparison.outcome`, nvbench_compare's SAME / FAST / SLOW / AMBIGUOUS):
"regression" (slower, above the threshold), "slower" (significant, within it), "faster",
"no change" -- only when the test could have seen a slowdown of the threshold's size:
`detectable` <= threshold (for the uncalibrated repeats test, which has no `detectable`,
the CI's upper end <= 1 + threshold) -- and otherwise "inconclusive": not significant, but
the noise measured would have hidden a slowdown of the threshold's size. `more_for_target`
then says how many more pairs, runs a side or repeats would make that size detectable.

Sensitivity (`detectable`): the smallest slowdown the test would flag with 80 % power at
the noise measured, at the Bonferroni level a = alpha / k (Holm's first step, so an upper
bound): for batches and runs ln(1 + e) = (t_{1-a/2, df} + t_{0.8, df}) * SE, SE the
standard error of the test; for pairs ln(1 + e) = (z_{1-a/2} + z_{0.8}) * s / sqrt(n * 3/pi),
s = 1.4826 * MAD(d) (a robust SD; 3/pi is the signed-rank test's efficiency relative to
the t-test under normal noise, Lehmann 1975). The n (batches, runs, pairs) that brings it
to a target (5 %) scales as (ln(1 + e) / ln 1.05)^2.

The spread of one point's repeats (quartiles, the noisy flag) is `bench.spread`.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np

from ..bench.spread import NOISY_SPREAD, relative_iqr
from ..bench.spread import samples_array as _samples

BOOTSTRAP = 4000
EXACT_MAX = 50
POWER = 0.80  # of the `detectable` figure
TARGET = 0.05  # the slowdown `more_for_target` aims to make detectable when the threshold is 0
OUTCOMES = ("regression", "slower", "faster", "no change", "inconclusive")


def _positive(name: str, x) -> np.ndarray:
    arr = _samples(name, x)
    if (arr <= 0).any():
        raise ValueError(f"{name} must be positive seconds, got {arr.tolist()}")
    return arr


def mann_whitney_u(a, b) -> tuple[float, float]:
    """(U, two-sided p) of the Mann-Whitney U test; U counts pairs with b_j > a_i (ties count 1/2)."""
    from scipy.stats import mannwhitneyu

    a, b = _samples("a", a), _samples("b", b)
    ties = np.unique(np.concatenate([a, b])).size < a.size + b.size
    method = "exact" if not ties and max(a.size, b.size) <= EXACT_MAX else "asymptotic"
    res = mannwhitneyu(b, a, alternative="two-sided", method=method)
    return float(res.statistic), float(res.pvalue)


def bootstrap_ratio_ci(a, b, *, level: float = 0.95, n_boot: int = BOOTSTRAP, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of median(b) / median(a)."""
    a, b = _samples("a", a), _samples("b", b)
    _check_level(level)
    rng = np.random.default_rng(seed)
    ma = np.median(a[rng.integers(0, a.size, (n_boot, a.size))], axis=1)
    mb = np.median(b[rng.integers(0, b.size, (n_boot, b.size))], axis=1)
    r = mb / ma
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(r, [tail, 100 - tail])
    return float(lo), float(hi)


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")


def holm(p_values) -> list[float]:
    """Holm step-down adjusted p-values (same order as given)."""
    p = np.asarray(p_values, dtype=float)
    k = p.size
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(k)
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (k - rank) * p[idx]))
        adjusted[idx] = running
    return adjusted.tolist()


def min_p(n: int, m: int) -> float:
    """Smallest two-sided p the exact Mann-Whitney test can give for n and m samples: 2 / C(n+m, n)."""
    return min(1.0, 2 / math.comb(n + m, n))


def min_p_signed_rank(n: int) -> float:
    """Smallest two-sided p the exact signed-rank test can give for n pairs: 2 / 2^n."""
    return min(1.0, 2.0 ** (1 - n))


# --- paired repeats ------------------------------------------------------------------------------------------

def log_ratios(base, new) -> np.ndarray:
    """d_i = ln(new_i / base_i) of paired repeats."""
    a, b = _positive("base", base), _positive("new", new)
    if a.size != b.size:
        raise ValueError(f"paired samples need as many base as new repeats, got {a.size} and {b.size}")
    return np.log(b) - np.log(a)


def signed_rank(d) -> float:
    """Two-sided p of the Wilcoxon signed-rank test that the d_i are symmetric about 0."""
    from scipy.stats import wilcoxon

    d = _samples("d", d)
    if not np.any(d != 0):
        return 1.0
    nonzero = d[d != 0]
    ties = np.unique(np.abs(nonzero)).size < nonzero.size
    method = "exact" if not ties and nonzero.size <= EXACT_MAX and nonzero.size == d.size else "approx"
    return float(wilcoxon(d, alternative="two-sided", method=method).pvalue)


def _walsh(d: np.ndarray) -> np.ndarray:
    i, j = np.triu_indices(d.size)
    return np.sort((d[i] + d[j]) / 2)


def hodges_lehmann(d) -> float:
    """The median of the Walsh averages (d_i + d_j) / 2, i <= j."""
    return float(np.median(_walsh(_samples("d", d))))


def signed_rank_ci(d, level: float = 0.95) -> tuple[float, float]:
    """Distribution-free CI of the pseudo-median of d that goes with the signed-rank test."""
    from scipy.stats import norm

    _check_level(level)
    w = _walsh(_samples("d", d))
    n = d.size if isinstance(d, np.ndarray) else len(d)
    z = norm.ppf(1 - (1 - level) / 2)
    c = n * (n + 1) / 4 - z * math.sqrt(n * (n + 1) * (2 * n + 1) / 24)
    k = max(0, int(math.floor(c)))
    k = min(k, (w.size - 1) // 2)
    return float(w[k]), float(w[w.size - 1 - k])


def robust_sd(x) -> float:
    """1.4826 * median absolute deviation: the SD of normal data, unmoved by a few bursts."""
    x = _samples("x", x)
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


def _z(p: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(p))


def detectable_paired(sd: float, n: int, level: float, *, power: float = POWER) -> float:
    """Smallest slowdown (a fraction) the signed-rank test flags with `power` at two-sided level `level`.

    inf when the exact test cannot reach `level` with n pairs at all (2 / 2^n >= level)."""
    if n < 1 or min_p_signed_rank(n) >= level:
        return math.inf
    delta = (_z(1 - level / 2) + _z(power)) * sd / math.sqrt(n * 3 / math.pi)
    return math.expm1(delta)


def pairs_needed(sd: float, level: float, *, target: float = TARGET, power: float = POWER) -> int:
    """Pairs that make a `target` slowdown detectable (`detectable_paired` <= target)."""
    floor = max(1, math.ceil(1 + math.log2(1 / level) + 1e-9))  # 2 / 2^n < level
    need = ((_z(1 - level / 2) + _z(power)) * sd / math.log1p(target)) ** 2 / (3 / math.pi)
    return max(floor, math.ceil(need))


# --- independent runs ----------------------------------------------------------------------------------------

def welch_log(base_runs, new_runs, *, level: float = 0.95) -> tuple[float, float, float, float, float, float]:
    """Welch's t on the logs of run medians: (mean log-ratio, CI low, CI high, two-sided p, SE, df)."""
    from scipy.stats import ttest_ind

    a, b = np.log(_positive("base runs", base_runs)), np.log(_positive("new runs", new_runs))
    if a.size < 2 or b.size < 2:
        raise ValueError(f"Welch's test needs at least 2 runs a side, got {a.size} and {b.size}")
    diff = float(b.mean() - a.mean())
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    if se == 0:
        return diff, diff, diff, (1.0 if diff == 0 else 0.0), 0.0, float(a.size + b.size - 2)
    res = ttest_ind(b, a, equal_var=False)
    ci = res.confidence_interval(level)
    return diff, float(ci.low), float(ci.high), float(res.pvalue), se, float(res.df)


def detectable_runs(se: float, df: float, level: float, *, power: float = POWER) -> float:
    """Smallest slowdown (a fraction) Welch's test flags with `power` at level `level`, given its SE."""
    from scipy.stats import t

    if not df > 0:
        return math.inf
    return math.expm1((t.ppf(1 - level / 2, df) + t.ppf(power, df)) * se)


# --- verdicts ------------------------------------------------------------------------------------------------

@dataclass
class PointComparison:
    """Verdict for one point. Times in seconds; ratio = NEW/BASE (its estimator depends on `method`).

    detectable       smallest slowdown (fraction) this test flags with 80 % power at the
                     noise it measured (inf: cannot reach significance with this n)
    more_for_target  how many more pairs (pairs, batches), runs a side (runs) would make a
                     slowdown of `target` (the threshold; 5 % for a threshold of 0)
                     detectable; 0 when it already is (or unknown: repeats)
    outcome          one of OUTCOMES (module docstring)
    spread_base/new  IQR / median of each side's repeats (the largest over its runs)
    """

    key: str
    base_median: float
    new_median: float
    ratio: float
    ci_low: float
    ci_high: float
    p_value: float
    p_adjusted: float
    verdict: str  # "faster" | "slower" | "no change"
    regression: bool  # slower and ratio > 1 + threshold
    method: str = "repeats"
    n: int = 0
    detectable: float = math.nan
    more_for_target: int = 0
    spread_base: float = math.nan
    spread_new: float = math.nan
    outcome: str = ""
    target: float = TARGET

    @property
    def noisy(self) -> bool:
        return max(self.spread_base, self.spread_new) > NOISY_SPREAD

    def to_dict(self) -> dict:
        """Strict-JSON-ready: NaN and infinity become None."""
        d = asdict(self)
        d["noisy"] = self.noisy
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


@dataclass
class _Row:
    key: str
    base_median: float
    new_median: float
    ratio: float
    ci_low: float
    ci_high: float
    p: float
    method: str
    n: int
    spread_base: float
    spread_new: float
    sensitivity: Callable[[float, float], tuple[float, int]] = field(repr=False)  # level, target -> (detectable, more)


def _check_options(threshold: float, alpha: float, correction: str) -> None:
    if isinstance(threshold, bool) or not (isinstance(threshold, (int, float)) and threshold >= 0):
        raise ValueError(f"threshold must be a fraction >= 0 (0.05 for 5%), got {threshold!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if correction not in ("holm", "none"):
        raise ValueError(f"correction must be 'holm' or 'none', got {correction!r}")


def outcome(verdict: str, regression: bool, detectable: float, ci_high: float, target: float) -> str:
    """One of OUTCOMES (module docstring): "no change" only when a slowdown of `target` was visible."""
    if regression:
        return "regression"
    if verdict != "no change":
        return verdict
    seen = detectable <= target if not math.isnan(detectable) else ci_high <= 1 + target
    return "no change" if seen else "inconclusive"


def _judge(rows: list[_Row], threshold: float, alpha: float, correction: str) -> list[PointComparison]:
    adjusted = holm([r.p for r in rows]) if correction == "holm" else [r.p for r in rows]
    level = alpha / len(rows) if correction == "holm" and rows else alpha
    target = threshold if threshold > 0 else TARGET  # no test can see a slowdown of 0
    out = []
    for r, p_adj in zip(rows, adjusted):
        verdict = ("slower" if r.ratio > 1 else "faster") if p_adj < alpha else "no change"
        regression = verdict == "slower" and r.ratio > 1 + threshold
        detectable, more = r.sensitivity(level, target)
        out.append(PointComparison(r.key, r.base_median, r.new_median, r.ratio, r.ci_low, r.ci_high, r.p, p_adj,
                                   verdict, regression, r.method, r.n, detectable, more, r.spread_base, r.spread_new,
                                   outcome(verdict, regression, detectable, r.ci_high, target), target))
    return out


def _paired_row(key: str, base, new, level: float) -> _Row:
    a, b = _positive(f"{key} base", base), _positive(f"{key} new", new)
    d = log_ratios(a, b)
    lo, hi = signed_rank_ci(d, level)
    sd = robust_sd(d)

    def sensitivity(test_level: float, target: float) -> tuple[float, int]:
        return (detectable_paired(sd, d.size, test_level),
                max(0, pairs_needed(sd, test_level, target=target) - d.size))
    return _Row(key, float(np.median(a)), float(np.median(b)), math.exp(hodges_lehmann(d)), math.exp(lo),
                math.exp(hi), signed_rank(d), "pairs", d.size, relative_iqr(a), relative_iqr(b), sensitivity)


def batch_medians(d, batches) -> np.ndarray:
    """The median of d within each batch (in order of first appearance)."""
    d = _samples("d", d)
    labels = list(batches)
    if len(labels) != d.size:
        raise ValueError(f"need one batch label per pair, got {len(labels)} for {d.size} pairs")
    order = list(dict.fromkeys(labels))
    return np.array([np.median(d[[i for i, b in enumerate(labels) if b == g]]) for g in order])


def one_sample_t(x, *, level: float = 0.95) -> tuple[float, float, float, float, float, float]:
    """Student's t that mean(x) = 0: (mean, CI low, CI high, two-sided p, SE, df)."""
    from scipy.stats import t as student

    x = _samples("x", x)
    if x.size < 2:
        raise ValueError(f"a t-test needs at least 2 values, got {x.size}")
    mean, df = float(x.mean()), float(x.size - 1)
    se = float(x.std(ddof=1) / math.sqrt(x.size))
    if se == 0:
        return mean, mean, mean, (1.0 if mean == 0 else 0.0), 0.0, df
    half = float(student.ppf(1 - (1 - level) / 2, df)) * se
    p = float(2 * student.sf(abs(mean) / se, df))
    return mean, mean - half, mean + half, p, se, df


def _batches_row(key: str, a: np.ndarray, b: np.ndarray, batches: Sequence, level: float) -> _Row:
    d = log_ratios(a, b)
    m = batch_medians(d, batches)
    mean, lo, hi, p, se, df = one_sample_t(m, level=level)
    per_batch = d.size / m.size

    def sensitivity(test_level: float, target: float) -> tuple[float, int]:
        detectable = detectable_runs(se, df, test_level)
        if detectable <= target or not math.isfinite(detectable):
            return detectable, 0
        need = math.ceil(m.size * (math.log1p(detectable) / math.log1p(target)) ** 2)  # SE ~ 1/sqrt(batches)
        return detectable, max(0, math.ceil((need - m.size) * per_batch))
    return _Row(key, float(np.median(a)), float(np.median(b)), math.exp(mean), math.exp(lo), math.exp(hi), p,
                "batches", d.size, relative_iqr(a), relative_iqr(b), sensitivity)


def compare_pairs(pairs: dict[str, tuple], *, threshold: float = 0.05, alpha: float = 0.05,
                  correction: str = "holm", level: float = 0.95) -> list[PointComparison]:
    """Judge every point from paired repeats: key -> (base seconds, new seconds[, batch of each pair]).

    With batch labels naming at least 2 batches (the worker generations of `ab`), the
    unit is the batch: Student's t on the batch medians of d (method "batches"), which
    stays calibrated when pairs of one batch share something (a process, a stretch of
    load). Without, the Wilcoxon signed-rank test on the pairs (method "pairs")."""
    _check_options(threshold, alpha, correction)
    _check_level(level)
    rows = []
    for key, item in pairs.items():
        a, b = _positive(f"{key} base", item[0]), _positive(f"{key} new", item[1])
        batches = item[2] if len(item) > 2 else None
        if batches is not None and len(set(batches)) >= 2:
            rows.append(_batches_row(key, a, b, batches, level))
        else:
            rows.append(_paired_row(key, a, b, level))
    return _judge(rows, threshold, alpha, correction)


def _runs_row(key: str, base_runs: list, new_runs: list, level: float) -> _Row:
    med_a = np.array([np.median(_positive(f"{key} base", r)) for r in base_runs])
    med_b = np.array([np.median(_positive(f"{key} new", r)) for r in new_runs])
    diff, lo, hi, p, se, df = welch_log(med_a, med_b, level=level)
    na, nb = med_a.size, med_b.size

    def sensitivity(test_level: float, target: float) -> tuple[float, int]:
        detectable = detectable_runs(se, df, test_level)
        if detectable <= target or not math.isfinite(detectable):
            return detectable, 0
        # SE shrinks as 1/sqrt(runs a side); scale the smaller side's count
        need = math.ceil(min(na, nb) * (math.log1p(detectable) / math.log1p(target)) ** 2)
        return detectable, max(0, need - min(na, nb))
    spread = lambda runs: max(relative_iqr(r) for r in runs)  # noqa: E731
    return _Row(key, float(np.median(med_a)), float(np.median(med_b)), math.exp(diff), math.exp(lo), math.exp(hi),
                p, "runs", min(na, nb), spread(base_runs), spread(new_runs), sensitivity)


def _repeats_row(key: str, base, new, level: float) -> _Row:
    a, b = _samples(f"{key} base", base), _samples(f"{key} new", new)
    lo, hi = bootstrap_ratio_ci(a, b, level=level)
    _, p = mann_whitney_u(a, b)

    def sensitivity(test_level: float, target: float) -> tuple[float, int]:
        return math.nan, 0  # no calibrated figure: the repeats are not independent
    return _Row(key, float(np.median(a)), float(np.median(b)), float(np.median(b) / np.median(a)), lo, hi, p,
                "repeats", min(a.size, b.size), relative_iqr(a), relative_iqr(b), sensitivity)


def compare_run_samples(points: dict[str, tuple[list[Sequence[float]], list[Sequence[float]]]], *,
                        threshold: float = 0.05, alpha: float = 0.05, correction: str = "holm",
                        level: float = 0.95) -> list[PointComparison]:
    """Judge every point from separately recorded runs: key -> (base runs, new runs), each run a list of repeats.

    With at least 2 runs a side the unit is the run (Welch on log run medians); with a
    single run on either side only the repeats are left (Mann-Whitney, method "repeats")."""
    _check_options(threshold, alpha, correction)
    _check_level(level)
    rows = []
    for key, (base_runs, new_runs) in points.items():
        if not base_runs or not new_runs:
            raise ValueError(f"{key}: needs at least one run a side")
        if len(base_runs) >= 2 and len(new_runs) >= 2:
            rows.append(_runs_row(key, list(base_runs), list(new_runs), level))
        else:
            rows.append(_repeats_row(key, [x for r in base_runs for x in r], [x for r in new_runs for x in r], level))
    return _judge(rows, threshold, alpha, correction)


def compare_samples(pairs: dict[str, tuple[list[float], list[float]]], *, threshold: float = 0.10,
                    alpha: float = 0.05, correction: str = "holm", level: float = 0.95) -> list[PointComparison]:
    """Judge every point from the pooled repeats of one run a side (method "repeats", Mann-Whitney)."""
    _check_options(threshold, alpha, correction)
    _check_level(level)
    return _judge([_repeats_row(k, a, b, level) for k, (a, b) in pairs.items()], threshold, alpha, correction)
