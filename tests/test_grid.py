"""The benchmark grid: the axes the issue asks for, every point kept, skips explicit."""
from __future__ import annotations

import itertools
import json

import pytest
import torch

from lstm_bench import make_case, register_impl, unregister_impl
from lstm_bench.grid import BENCH_GRID, QUICK_GRID, Grid, Point, skip_reason
from lstm_bench.impls import BUILTIN



def test_bench_grid_has_the_axes_of_the_issue():
    assert set(BENCH_GRID.T) == {10, 100, 500}
    assert set(BENCH_GRID.H) == {64, 256, 1024}
    assert set(BENCH_GRID.B) == {1, 32}
    assert set(BENCH_GRID.devices) == {"cpu", "cuda"}
    assert set(BENCH_GRID.dtypes) == {"float32"}
    assert BENCH_GRID.impls == BUILTIN  # every built-in implementation is benchmarked


def test_points_are_every_combination_none_dropped():
    g = BENCH_GRID
    want = {(i, T, B, H, H, d, dt) for i, T, B, H, d, dt in itertools.product(g.impls, g.T, g.B, g.H, g.devices, g.dtypes)}
    got = [(p.impl, p.T, p.B, p.I, p.H, p.device, p.dtype) for p in g.points()]
    assert len(got) == len(set(got)) == len(want)
    assert set(got) == want


def test_explicit_input_sizes():
    g = Grid(impls=("vectorised",), T=(3,), H=(4,), B=(2,), I=(1, 5))
    assert [(p.I, p.H) for p in g.points()] == [(1, 4), (5, 4)]


def test_reference_at_T500_H1024_is_skipped_as_too_slow():
    for B in BENCH_GRID.B:
        reason = skip_reason(Point("reference", 500, B, 1024, 1024, "cpu"))
        assert reason is not None and reason.startswith("too slow") and "reference" in reason


def test_small_cpu_points_run():
    assert skip_reason(Point("vectorised", 10, 1, 64, 64)) is None
    assert all(skip_reason(p) is None for p in QUICK_GRID.points() if p.device == "cpu")


def test_every_skipped_point_of_the_grid_says_why():
    for p in BENCH_GRID.points():
        reason = skip_reason(p)
        assert reason is None or (isinstance(reason, str) and len(reason) > 20), p.key


def test_missing_cuda_is_a_skip_reason(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert "cuda not available" in skip_reason(Point("vectorised", 10, 1, 64, 64, "cuda"))


def test_unregistered_and_wrong_device_impls_are_skip_reasons(monkeypatch):
    assert "not registered" in skip_reason(Point("no_such_impl", 10, 1, 64, 64))
    register_impl("_cpu_only_for_grid_test", lambda case: None, devices=("cpu",))
    try:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        reason = skip_reason(Point("_cpu_only_for_grid_test", 10, 1, 64, 64, "cuda"))
        assert "runs on ['cpu'], not on cuda" in reason
    finally:
        unregister_impl("_cpu_only_for_grid_test")


def test_point_key_dict_and_case():
    p = Point("vectorised", 100, 32, 256, 256)
    assert p.key == "vectorised|T=100|B=32|I=256|H=256|cpu|float32"
    assert Point.from_dict(json.loads(json.dumps(p.as_dict()))) == p
    small = Point("vectorised", 3, 2, 5, 4, "cpu", "float64")
    case = small.case(seed=7)
    assert case.sizes == (3, 2, 5, 4) and case.dtype == torch.float64
    assert torch.equal(case.x, make_case(3, 2, 5, 4, dtype=torch.float64, seed=7).x)


@pytest.mark.parametrize("kwargs, word", [
    (dict(T=0), "T"), (dict(H=-1), "H"), (dict(device="tpu"), "device"), (dict(dtype="int32"), "dtype")])
def test_bad_points_name_the_argument(kwargs, word):
    base = dict(impl="vectorised", T=1, B=1, I=1, H=1)
    with pytest.raises(ValueError, match=word):
        Point(**{**base, **kwargs})


def test_from_dict_and_replace_reject_unknown_keys():
    with pytest.raises(ValueError, match="bogus"):
        Point.from_dict({"impl": "vectorised", "T": 1, "B": 1, "I": 1, "H": 1, "bogus": 2})
    with pytest.raises(ValueError, match="sizes"):
        BENCH_GRID.replace(sizes=(1,))
    sub = BENCH_GRID.replace(impls=["vectorised"], T=100)
    assert sub.impls == ("vectorised",) and sub.T == (100,) and sub.H == BENCH_GRID.H


def test_asv_and_quick_grids_are_sub_grids_of_the_bench_grid():
    from lstm_bench.grid import ASV_GRID

    for g in (ASV_GRID, QUICK_GRID):
        for axis in ("impls", "T", "H", "B", "devices", "dtypes"):
            assert set(getattr(g, axis)) <= set(getattr(BENCH_GRID, axis)), axis
    assert set(ASV_GRID.devices) == {"cpu", "cuda"}  # a missing device skips, it is not left out


def test_a_dtype_alias_gives_the_canonical_key():
    # one measurement, one key: "float" and "float32" must not split a point in two
    assert Point("vectorised", 2, 1, 3, 3, "cpu", "float") == Point("vectorised", 2, 1, 3, 3, "cpu", "float32")
    assert Point("vectorised", 2, 1, 3, 3, "cpu", "float").key.endswith("|cpu|float32")


@pytest.mark.parametrize("value", ["20GF", "nan", "-1", "0", "inf"])
def test_a_bad_cpu_gflop_limit_is_named(monkeypatch, value):
    monkeypatch.setenv("LSTM_BENCH_CPU_GFLOP_LIMIT", value)
    with pytest.raises(ValueError, match=r"\$LSTM_BENCH_CPU_GFLOP_LIMIT: expected a positive number"):
        skip_reason(Point("vectorised", 10, 1, 64, 64))
