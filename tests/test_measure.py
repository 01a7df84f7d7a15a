"""measure_point: every figure present, consistent with its definition, and responsive."""
from __future__ import annotations

import json
import math
import statistics

import pytest
import torch

from lstm_bench import get_impl, register_impl, unregister_impl
from lstm_bench.bench.grid import Point
from lstm_bench.bench.measure import measure_point
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


def test_accuracy_metric_sees_a_wrong_gradient():
    good = get_impl("vectorised")

    def broken(case):
        r = good(case)
        r.grads["weight_hh_l0"] = -r.grads["weight_hh_l0"]
        return r

    register_impl("_broken_for_measure_test", broken, devices=("cpu",),
                  forward=good.forward, backward=lambda c, s: broken(c))
    try:
        m = measure_point(Point("_broken_for_measure_test", 4, 2, 3, 5), repeats=1, memory=False)
        assert m.max_rel_error > 0.5
    finally:
        unregister_impl("_broken_for_measure_test")


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
