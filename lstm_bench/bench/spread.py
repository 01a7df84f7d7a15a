"""The spread of one point's repeats: quartiles and the noisy flag, which the bench table,
the plots and both comparisons read.

Noisy (`relative_iqr`): a set of repeats whose interquartile range exceeds 10 % of its
median, the rule `torch.utils.benchmark` warns on (its `Measurement` flags an IQR/median
above 10 %).
"""
from __future__ import annotations

import math

import numpy as np

NOISY_SPREAD = 0.10  # IQR / median above which a point's repeats are called noisy


def quartiles(samples) -> tuple[float, float, float]:
    """(25th percentile, median, 75th percentile) of the repeats of one point."""
    q1, med, q3 = np.percentile(samples_array("samples", samples), [25, 50, 75])
    return float(q1), float(med), float(q3)


def relative_iqr(samples) -> float:
    """(75th - 25th percentile) / median of the repeats: the spread behind the "noisy" flag."""
    q1, med, q3 = quartiles(samples)
    return (q3 - q1) / med if med > 0 else math.inf


def plus_minus(samples) -> str:
    """"±N%": half the interquartile range relative to the median, the robust ± the tables print."""
    return f"±{50 * relative_iqr(samples):.0f}%"


def is_noisy(samples) -> bool:
    """True when the repeats' IQR exceeds 10 % of their median (as torch.utils.benchmark warns)."""
    return relative_iqr(samples) > NOISY_SPREAD


def samples_array(name: str, x) -> np.ndarray:
    arr = np.asarray(x, dtype=float).ravel()
    if arr.size == 0:
        raise ValueError(f"{name} must hold at least one sample, got none")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite, got {arr.tolist()}")
    return arr
