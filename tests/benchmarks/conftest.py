"""Which grid the pytest-benchmark suite runs, and one prepared point per test.

The default is a small sub-grid of BENCH_GRID, so that the plain test command
(`pytest`, with `--benchmark-disable`) runs every benchmark once, as a smoke test,
in seconds. Set LSTM_BENCH_PYTEST_GRID=quick or =bench to sweep QUICK_GRID or the
whole BENCH_GRID when measuring for real, =study for the one point of
the measurement-quality study (with LSTM_BENCH_INJECT_SLOWDOWN) (`--benchmark-enable --benchmark-only`).
"""
from __future__ import annotations

import pytest

from lstm_bench.bench.grid import Point, grid_from_env, skip_reason
from lstm_bench.impls import COMPILING


def pytest_generate_tests(metafunc):
    if "point" in metafunc.fixturenames:
        points = grid_from_env("LSTM_BENCH_PYTEST_GRID", "smoke").points()
        # a compiling implementation compiles on its first call: with the slow tests, not the quick gate
        metafunc.parametrize("point", [pytest.param(p, marks=pytest.mark.slow) if p.impl in COMPILING else p
                                       for p in points], ids=[p.key for p in points])


@pytest.fixture
def runnable(point: Point) -> Point:
    """The point, or a skip that says why it does not run here."""
    reason = skip_reason(point)
    if reason is not None:
        pytest.skip(reason)
    return point
