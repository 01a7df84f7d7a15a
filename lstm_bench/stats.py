"""Statistics of `lstm-bench compare`: is NEW faster, slower, or the same as BASE?

For one point, `a` (n repeats of BASE) and `b` (m repeats of NEW), in seconds:

- ratio  r = median(b) / median(a)        (> 1: NEW is slower)
- CI     percentile bootstrap of r: resample a and b with replacement (fixed seed,
         so a comparison is reproducible), 2.5th and 97.5th percentiles of r*.
- test   Mann-Whitney U, two-sided (`scipy.stats.mannwhitneyu`): U = #{(i, j): b_j > a_i}
         + #{ties}/2. Exact null distribution (all C(n+m, n) orderings equally likely)
         when there are no ties and n, m <= 50; normal approximation with tie and
         continuity correction otherwise. Rank-based, so one outlier repeat does not decide.
- family the p-values of all points of one comparison are adjusted with Holm's
         step-down method, so that, if the repeats were independent, "no change" on
         all k points of two runs of the same code would hold with probability
         >= 1 - alpha, not (1 - alpha)^k. Repeats of one run are not independent (they
         share that run's load), so on a noisy machine the p-values are too small:
         alternate base and new over several runs (pooled by `compare`), and rely on
         the threshold below as well as on the test.

Verdict: "slower" / "faster" when the adjusted p < alpha (direction from r), else
"no change". A point is a *regression* (compare exits non-zero) when it is "slower"
and r > 1 + threshold: significant AND large enough to matter, as `asv continuous`
judges. The test is scipy's; the bootstrap and Holm's adjustment are a few lines of numpy.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

BOOTSTRAP = 4000
EXACT_MAX = 50


def quartiles(samples) -> tuple[float, float, float]:
    """(25th percentile, median, 75th percentile) of the repeats of one point."""
    q1, med, q3 = np.percentile(_samples("samples", samples), [25, 50, 75])
    return float(q1), float(med), float(q3)


def _samples(name: str, x) -> np.ndarray:
    arr = np.asarray(x, dtype=float).ravel()
    if arr.size == 0:
        raise ValueError(f"{name} must hold at least one sample, got none")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite, got {arr.tolist()}")
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
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    rng = np.random.default_rng(seed)
    ma = np.median(a[rng.integers(0, a.size, (n_boot, a.size))], axis=1)
    mb = np.median(b[rng.integers(0, b.size, (n_boot, b.size))], axis=1)
    r = mb / ma
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(r, [tail, 100 - tail])
    return float(lo), float(hi)


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
    """Smallest two-sided p the exact test can give for n and m samples: 2 / C(n+m, n)."""
    return min(1.0, 2 / math.comb(n + m, n))


@dataclass
class PointComparison:
    """Verdict for one point. Times in seconds; ratio = new/base medians."""

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

    def to_dict(self) -> dict:
        return asdict(self)


def compare_samples(pairs: dict[str, tuple[list[float], list[float]]], *, threshold: float = 0.10,
                    alpha: float = 0.05, correction: str = "holm", level: float = 0.95) -> list[PointComparison]:
    """Judge every point: `pairs` maps key -> (base samples, new samples)."""
    if not (isinstance(threshold, (int, float)) and threshold >= 0):
        raise ValueError(f"threshold must be a fraction >= 0 (0.10 for 10%), got {threshold!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if correction not in ("holm", "none"):
        raise ValueError(f"correction must be 'holm' or 'none', got {correction!r}")
    rows = []
    for key, (a, b) in pairs.items():
        a, b = _samples(f"{key} base", a), _samples(f"{key} new", b)
        ratio = float(np.median(b) / np.median(a))
        lo, hi = bootstrap_ratio_ci(a, b, level=level)
        _, p = mann_whitney_u(a, b)
        rows.append([key, float(np.median(a)), float(np.median(b)), ratio, lo, hi, p])
    adjusted = holm([r[-1] for r in rows]) if correction == "holm" else [r[-1] for r in rows]
    out = []
    for row, p_adj in zip(rows, adjusted):
        key, ma, mb, ratio, lo, hi, p = row
        if p_adj < alpha:
            verdict = "slower" if ratio > 1 else "faster"
        else:
            verdict = "no change"
        out.append(PointComparison(key, ma, mb, ratio, lo, hi, p, p_adj, verdict,
                                   verdict == "slower" and ratio > 1 + threshold))
    return out
