"""The figures of one measured point, as the exports and reports name them.

A point's benchmark name is its key with "/" for "|" (`lstm/vectorised/T=100/B=32/I=256/H=256/cpu/float32`,
plus `/L=2+bi` for a configured point), the same in every store. Its figures:

    name                 unit     values
    forward_backward_s   seconds  the repeats of one forward+backward (median, quartiles)
    forward_s            seconds  the repeats of the forward half (absent without halves)
    gflops               GFLOP/s  FLOPs / median forward+backward seconds / 1e9
    peak_bytes           bytes    peak allocated during one forward+backward
    saved_bytes          bytes    kept by the forward for the backward
    max_rel_error        1        max |a - b| / max |b| against the float64 reference
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..bench.grid import Point
from ..bench.records import PointRecord
from ..bench.spread import quartiles

PREFIX = "lstm"


@dataclass(frozen=True)
class Figure:
    """One measured quantity of one point: its repeats (or its single value) and unit."""

    name: str
    unit: str
    values: tuple[float, ...]

    @property
    def quartiles(self) -> tuple[float, float, float]:
        """(25th percentile, median, 75th percentile); all three the value for a single one."""
        return quartiles(self.values)


def benchmark_name(point: Point) -> str:
    return PREFIX + "/" + point.key.replace("|", "/")


def figures(record: PointRecord) -> list[Figure]:
    """The figures an ok record holds (module docstring), those not measured (or not finite: a NaN error
    is no figure to plot or push) left out."""
    m = record.measurement
    if m is None:
        return []
    out = [Figure("forward_backward_s", "s", m.forward_backward_s)]
    if m.forward_s:
        out.append(Figure("forward_s", "s", m.forward_s))
    out.append(Figure("gflops", "GFLOP/s", (record.gflops,)))
    for name in ("peak_bytes", "saved_bytes"):
        if getattr(m, name) is not None:
            out.append(Figure(name, "B", (float(getattr(m, name)),)))
    if m.max_rel_error is not None:
        out.append(Figure("max_rel_error", "1", (m.max_rel_error,)))
    return [f for f in out if all(math.isfinite(v) for v in f.values)]
