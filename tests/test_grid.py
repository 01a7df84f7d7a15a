"""The benchmark grid: the axes the issue asks for, every point kept, skips explicit."""
from __future__ import annotations

import itertools
import json

import pytest
import torch

from lstm_bench import make_case, register_impl, unregister_impl
from lstm_bench.bench.grid import BENCH_GRID, QUICK_GRID, Grid, Point, Variant, skip_reason
from lstm_bench.bench.lengths import draw_lengths
from lstm_bench.impls import BUILTIN, COMPILING


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
    from lstm_bench.bench.grid import ASV_GRID

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


# --- nn.LSTM's configurations as a grid axis ---------------------------------------------------

def test_the_config_grid_has_a_point_per_axis_of_the_issue():
    from lstm_bench.bench.grid import CONFIG_GRID, NAMED_GRIDS

    v = CONFIG_GRID.variants
    assert any(x.num_layers == 2 for x in v) and any(x.bidirectional for x in v)
    assert any(x.proj_size > 0 for x in v) and any(x.lengths for x in v) and Variant() in v
    assert {"float32", "bfloat16"} <= set(CONFIG_GRID.dtypes)
    assert NAMED_GRIDS["configs"] is CONFIG_GRID
    # every configuration of every CPU path that declares it runs under the CPU GFLOP limit
    for p in CONFIG_GRID.points():
        reason = skip_reason(p)
        assert reason is None or "not available" in reason or "computes in" in reason, (p.key, reason)


def test_a_configured_point_has_its_key_case_and_flops():
    p = Point("vectorised", 4, 3, 5, 4, num_layers=2, bidirectional=True, proj_size=2, lengths="padded-batch")
    assert p.key == "vectorised|T=4|B=3|I=5|H=4|cpu|float32|L=2+bi+P=2+len=padded-batch"
    assert Point.from_dict(json.loads(json.dumps(p.as_dict()))) == p
    case = p.case(seed=3)
    assert "weight_hr_l1_reverse" in case.weights and case.h0.shape == (4, 3, 2) and case.c0.shape == (4, 3, 4)
    assert torch.equal(case.lengths, p.sequence_lengths())
    S = int(case.lengths.sum())
    # per layer and direction: 2 S 4H (In + P) + 2 S H P; In = 5, then 2 directions x P = 4; x3 with backward
    forward = 2 * (2 * S * 16 * (5 + 2) + 2 * S * 4 * 2) + 2 * (2 * S * 16 * (4 + 2) + 2 * S * 4 * 2)
    assert p.gemm_flops(backward=False) == forward and p.flops == 3 * forward
    assert p.features == ["layers", "bidirectional", "projection", "lengths"]


def test_plain_points_keep_their_key_and_old_files_still_load():
    old = {"impl": "nn_lstm", "T": 10, "B": 1, "I": 64, "H": 64, "device": "cpu", "dtype": "float32"}
    p = Point.from_dict(old)  # as written by lstm-bench 0.1, without the configuration fields
    assert p.variant == Variant() and p.key == "nn_lstm|T=10|B=1|I=64|H=64|cpu|float32"
    assert p.flops == 24 * 10 * 1 * 64 * 128


@pytest.mark.parametrize("label", ["plain", "L=2", "bi", "P=64", "len=padded-batch", "L=3+bi+P=8+len=padded-batch"])
def test_variant_labels_round_trip(label):
    assert Variant.from_label(label).label == label


@pytest.mark.parametrize("label, word", [("L=x", "L=x"), ("big", "big"), ("plain+bi", "plain"), ("L=0", "num_layers"),
                                         ("len=zipf", "zipf"), ("", "cannot read")])
def test_a_bad_variant_label_is_named(label, word):
    with pytest.raises(ValueError, match=word):
        Variant.from_label(label)


def test_a_projection_as_large_as_H_is_refused():
    with pytest.raises(ValueError, match="proj_size must be smaller than hidden_size"):
        Point("vectorised", 2, 1, 4, 4, proj_size=4)


def test_padded_batch_lengths_are_fixed_in_range_and_about_two_thirds_of_T():
    a = draw_lengths("padded-batch", 1000, 4000)
    assert torch.equal(a, draw_lengths("padded-batch", 1000, 4000))  # no dependence on any global seed
    assert a.dtype == torch.int64 and a[0] == 1000 and int(a.min()) >= 1 and int(a.max()) <= 1000
    # L = T exp(-0.6 |z|): median T exp(-0.6 x 0.674) = 0.667 T; P(L < 0.4 T) = P(|z| > 1.527) = 0.127
    assert 0.64 < float(a.double().median()) / 1000 < 0.70
    assert 0.10 < float((a < 400).double().mean()) < 0.15
    assert draw_lengths("padded-batch", 1, 5).tolist() == [1] * 5
    with pytest.raises(ValueError, match="unknown length distribution 'zipf'"):
        draw_lengths("zipf", 10, 2)


def test_a_configuration_the_impl_does_not_declare_is_a_skip_reason():
    register_impl("_plain_only_for_grid_test", lambda case: None, features=())
    try:
        reason = skip_reason(Point("_plain_only_for_grid_test", 10, 1, 64, 64, num_layers=2, lengths="padded-batch"))
        assert reason is not None and "does not implement layers, lengths" in reason
        assert skip_reason(Point("_plain_only_for_grid_test", 10, 1, 64, 64)) is None
    finally:
        unregister_impl("_plain_only_for_grid_test")


def test_configured_points_measure_through_every_builtin_that_declares_them(tmp_path):
    from lstm_bench.bench.measure import measure_point

    for impl in (name for name in BUILTIN if name not in COMPILING):  # compiled: tests/test_pt2_gates.py
        p = Point(impl, 3, 2, 4, 6, num_layers=2, bidirectional=True, proj_size=3, lengths="padded-batch")
        if skip_reason(p) is not None:
            continue
        m = measure_point(p, repeats=1, warmup=0, memory=False)
        assert m.max_rel_error is not None and m.max_rel_error < 1e-4, (impl, m.max_rel_error)
