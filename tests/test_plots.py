"""The charts' log axes: every plotted value lies between two labelled ticks, and a panel has enough labels."""
from __future__ import annotations

import math

import pytest

from lstm_bench.bench.plots import MAX_TICKS, log_ticks


@pytest.mark.parametrize("lo, hi", [
    (0.7, 7084.0),   # the time charts of a CPU sweep: four decades
    (1.0, 1.65),     # the ratio charts at B = 32: less than a factor of 2 (labelled only "1" and "2" before)
    (0.42, 8.06),
    (4894.0, 7990.0),
    (0.0123, 0.0124),
    (3.0, 3.0),
])
def test_labelled_ticks_bracket_every_value(lo, hi):
    ticks = log_ticks(lo, hi)
    assert ticks == sorted(set(ticks))
    assert ticks[0] <= lo and ticks[-1] >= hi  # nothing above the last label or below the first
    assert len(ticks) <= MAX_TICKS
    if hi / lo >= 1.2:
        assert len(ticks) >= 3, ticks  # a reader can interpolate between labels
    # the end ticks are the nearest ones outside the data: no empty decade is added
    assert ticks[-1] / hi < 10 and lo / ticks[0] < 10


def test_ticks_are_plain_round_numbers():
    ticks = log_ticks(0.3, 3000)
    assert all(math.isclose(t, float(f"{t:.2g}")) for t in ticks)
    assert 1 in ticks and 1000 in ticks


@pytest.mark.parametrize("lo, hi", [(0, 1), (2, 1), (1, math.inf), (-1, 1)])
def test_bad_ranges_are_refused(lo, hi):
    with pytest.raises(ValueError, match="log_ticks needs"):
        log_ticks(lo, hi)
