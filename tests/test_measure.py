"""measure_point: every figure present, consistent with its definition, and responsive."""
from __future__ import annotations

import dataclasses
import json
import math
import statistics

import pytest
import torch

from lstm_bench import get_impl, register_impl, unregister_impl
from lstm_bench.bench.grid import Point
from lstm_bench.bench.measure import WrongResult, max_rel_error, measure_point
from lstm_bench.bench.records import Measurement, PointRecord


def test_small_point_has_every_figure():
    threads = torch.get_num_threads()
    p = Point("vectorised", 5, 3, 4, 6)
    try:
        m = measure_point(p, threads=1, repeats=3, warmup=1)
        assert torch.get_num_threads() == 1  # the thread count asked for, not the environment's
    finally:
        torch.set_num_threads(threads)
    assert isinstance(m, Measurement)
    assert len(m.forward_s) == len(m.forward_backward_s) == 3
    assert all(t > 0 and math.isfinite(t) for t in m.forward_s + m.forward_backward_s)
    # flops by hand for T=5, B=3, I=4, H=6: forward 2*T*B*4H*(I+H), backward twice that
    assert p.flops == 3 * 2 * 5 * 3 * 24 * 10
    rec = PointRecord(p, "ok", m)
    assert rec.gflops == pytest.approx(p.flops / statistics.median(m.forward_backward_s) / 1e9)
    assert 0 < m.saved_bytes < m.peak_bytes
    assert 0 <= m.max_rel_error < 1e-4  # float32 against float64 at normal scale
    stored = json.loads(json.dumps(rec.to_json()))
    assert "key" not in stored and "flops" not in stored["measurement"]  # derived, so not stored
    assert PointRecord.from_json(stored) == rec


@pytest.fixture
def kernel():
    """Register a kernel for one test: kernel(name, fn) with halves that run fn whole."""
    names = []

    def register(name, fn):
        register_impl(name, fn, devices=("cpu",), forward=lambda c: c, backward=lambda c, saved: fn(c))
        names.append(name)
        return name
    yield register
    for name in names:
        unregister_impl(name)


def _correct(case):
    return get_impl("autograd").fn(case)


def test_a_wrong_gradient_is_a_wrong_result_never_a_measurement(kernel):
    def negated(case):
        r = _correct(case)
        return dataclasses.replace(r, grads={**r.grads, "weight_hh_l0": -r.grads["weight_hh_l0"]})

    with pytest.raises(WrongResult, match="first call: .*weight_hh_l0") as err:
        measure_point(Point(kernel("_negated", negated), 4, 2, 3, 5), repeats=1, memory=False)
    assert err.value.worst > 1


def test_bf16_rounded_gradients_fail_a_float32_point(kernel):
    # A float32 kernel that rounds its gradients through bfloat16: ~3e-3 relative error,
    # recorded "ok" before bench judged its points.
    def rounded(case):
        r = _correct(case)
        return dataclasses.replace(r, grads={k: v.to(torch.bfloat16).to(v.dtype) for k, v in r.grads.items()})

    name = kernel("_bf16_rounded", rounded)
    with pytest.raises(WrongResult, match="wrong result on the first call") as err:
        measure_point(Point(name, 20, 4, 16, 16), repeats=1, memory=False)
    assert 1 < err.value.worst < math.inf


def test_a_result_cached_from_the_first_call_fails_after_the_timing(kernel):
    cache = {}

    def caching(case):  # right on its first call, then returns that result for every case of the shape
        key = tuple(case.sizes)
        if key not in cache:
            cache[key] = _correct(case)
        return cache[key]

    with pytest.raises(WrongResult, match="last of 3 timed calls"):
        measure_point(Point(kernel("_caching", caching), 4, 2, 3, 5), repeats=2, warmup=1, memory=False)


def test_a_kernel_that_computes_less_when_called_again_fails(kernel):
    calls = []

    def lazy(case):  # skips the weight gradients from its third call on
        calls.append(1)
        r = _correct(case)
        if len(calls) < 3:
            return r
        return dataclasses.replace(r, grads={k: (torch.zeros_like(v) if k.startswith("weight") else v)
                                             for k, v in r.grads.items()})

    with pytest.raises(WrongResult, match="last of .* timed calls: .*weight"):
        measure_point(Point(kernel("_lazy", lazy), 4, 2, 3, 5), repeats=2, memory=False)


def test_a_correct_point_records_its_verdict_and_old_records_still_load():
    m = measure_point(Point("vectorised", 4, 2, 3, 5), threads=1, repeats=1, memory=False)
    assert m.worst_err_bound is not None and 0 <= m.worst_err_bound <= 1 and m.unjudged_reason is None
    rec = PointRecord(Point("vectorised", 4, 2, 3, 5), "ok", m)
    assert PointRecord.from_json(json.loads(json.dumps(rec.to_json()))).err_bound == m.worst_err_bound
    old = rec.to_json()
    for name in ("worst_err_bound", "oversubscribed", "unjudged_reason"):
        old["measurement"].pop(name, None)
    again = PointRecord.from_json(old)  # a file of lstm-bench 0.1 / 0.2 without a verdict
    assert again.err_bound is None and again.oversubscribed is None


def test_one_float64_truth_cache_the_judges(monkeypatch):
    from lstm_bench.conformance import judge

    made = []
    real = judge.reference_of
    monkeypatch.setattr(judge, "reference_of", lambda case, reference="autograd": made.append(1) or real(case, reference))
    judge.truth_of.cache_clear()
    for impl in ("vectorised", "nn_lstm"):
        measure_point(Point(impl, 3, 2, 4, 6), threads=1, repeats=1, memory=False)
    assert len(made) == 2  # one truth per draw (seed, seed + 1), shared by both implementations
    judge.truth_of.cache_clear()


def test_impl_without_split_is_timed_whole():
    register_impl("_no_split_for_measure_test", get_impl("vectorised").fn, devices=("cpu",))
    try:
        m = measure_point(Point("_no_split_for_measure_test", 4, 2, 3, 5), repeats=2, accuracy=False)
        assert m.forward_s == () and len(m.forward_backward_s) == 2 and not m.has_halves
        assert m.saved_bytes is None and m.peak_bytes is None and m.max_rel_error is None
    finally:
        unregister_impl("_no_split_for_measure_test")


def test_skipped_point_raises_with_reason():
    with pytest.raises(ValueError, match="not registered"):
        measure_point(Point("no_such_impl", 2, 2, 2, 2))


def test_asvs_max_rel_error_is_against_the_float64_truth():
    point = Point("vectorised", 5, 2, 4, 4)
    err, backend = max_rel_error("vectorised", point)
    assert err < 1e-5 and backend.startswith("vectorised")
    right = get_impl("vectorised")(point.case())
    rounded = dataclasses.replace(right, output=right.output.bfloat16().float())  # 8 bits of mantissa
    assert max_rel_error("vectorised", point, result=rounded)[0] > 1e-4
