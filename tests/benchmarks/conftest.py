"""Which grid the pytest-benchmark suite runs, and one prepared point per test.

The default is a small sub-grid of BENCH_GRID, so that the plain test command
(`pytest`, with `--benchmark-disable`) runs every benchmark once, as a smoke test,
in seconds. Set LSTM_BENCH_PYTEST_GRID=quick or =bench to sweep QUICK_GRID or the
whole BENCH_GRID when measuring for real, =study for the one point of
the measurement-quality study (with LSTM_BENCH_INJECT_SLOWDOWN) (`--benchmark-enable --benchmark-only`).
"""
from __future__ import annotations

import os

import pytest

from lstm_bench.grid import BENCH_GRID, QUICK_GRID, STUDY_GRID, Grid, Point, skip_reason
from lstm_bench.measure import register_slowed, register_slowed_from_env
from lstm_bench.registry import all_impls

SMOKE_GRID = BENCH_GRID.replace(T=(10,), H=(64,), B=(1,))
GRIDS: dict[str, Grid] = {"smoke": SMOKE_GRID, "quick": QUICK_GRID, "bench": BENCH_GRID, "study": STUDY_GRID}
register_slowed_from_env()  # LSTM_BENCH_INJECT_SLOWDOWN=0.05: measurement-quality studies


def selected_grid() -> Grid:
    name = os.environ.get("LSTM_BENCH_PYTEST_GRID", "smoke")
    if name not in GRIDS:
        raise ValueError(f"$LSTM_BENCH_PYTEST_GRID must be one of {sorted(GRIDS)}, got {name!r}")
    if name == "study" and "vectorised_slowed" not in all_impls():
        register_slowed(0.0)  # the study's path, unslowed unless LSTM_BENCH_INJECT_SLOWDOWN says so
    return GRIDS[name]


def pytest_generate_tests(metafunc):
    if "point" in metafunc.fixturenames:
        points = selected_grid().points()
        metafunc.parametrize("point", points, ids=[p.key for p in points])


@pytest.fixture
def runnable(point: Point) -> Point:
    """The point, or a skip that says why it does not run here."""
    reason = skip_reason(point)
    if reason is not None:
        pytest.skip(reason)
    return point
