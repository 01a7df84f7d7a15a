"""pytest-benchmark over the shared grid: forward and forward+backward of each point.

Each test times `lstm_bench.machine.timing.step_fn` (the callable asv times too) after one
untimed warm-up call, under the thread count of `lstm_bench.machine.timing.set_threads`, and
puts the point's FLOPs, saved bytes and peak bytes in `benchmark.extra_info`. Tests
are grouped by case, so the implementations of one case are compared side by side.
"""
from __future__ import annotations

from lstm_bench.bench.grid import PLAIN, Point
from lstm_bench.core.contract import check_result
from lstm_bench.core.registry import get_impl
from lstm_bench.machine.memory import peak_bytes, saved_bytes
from lstm_bench.machine.timing import set_threads, step_fn


def _run(benchmark, point: Point, *, backward: bool):
    impl, case = get_impl(point.impl), point.case()
    fn = step_fn(impl, case, backward=backward)
    benchmark.group = f"{'forward_backward' if backward else 'forward'} " + point.key.split("|", 1)[1]
    benchmark.extra_info.update(
        point=point.as_dict(),
        threads=set_threads(),
        flops=point.gemm_flops(backward),
    )
    if backward:  # memory is a property of the whole step: measured once per point
        benchmark.extra_info.update(saved_bytes=saved_bytes(impl, case), peak_bytes=peak_bytes(impl, case))
    if benchmark.enabled:
        fn()  # warm-up, untimed: module caches, allocator, cuDNN algorithm choice
    return benchmark(fn), case


def test_bench_forward(benchmark, runnable: Point):
    _run(benchmark, runnable, backward=False)
    if runnable.variant == PLAIN:  # 4 gates' GEMMs of x_t and h_{t-1}, 2 FLOPs per multiply-add
        assert benchmark.extra_info["flops"] == 8 * runnable.T * runnable.B * runnable.H * (runnable.I + runnable.H)


def test_bench_forward_backward(benchmark, runnable: Point):
    result, case = _run(benchmark, runnable, backward=True)
    check_result(result, case, runnable.impl)  # the timed call returned a whole, well-formed Result
    info = benchmark.extra_info
    if runnable.variant == PLAIN:
        assert info["flops"] == 24 * runnable.T * runnable.B * runnable.H * (runnable.I + runnable.H)
    assert 0 < info["saved_bytes"] <= info["peak_bytes"]
