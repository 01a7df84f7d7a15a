"""Everything measured at one grid point: times, memory, accuracy, load and instructions (`measure_point`).

The timed callables come from `lstm_bench.machine.timing.step_fn` and the loop is
`lstm_bench.machine.timing.time_fn`; memory is `lstm_bench.machine.memory`; accuracy is the policy's
agreement figure (`lstm_bench.conformance.policy.agreement`) against a float64 reference; the
machine's load around the point is `lstm_bench.machine.load`; instruction counts (optional) are
`lstm_bench.bench.instructions`. `impossible_reason` rejects a timing faster than the machine's
GEMM peak allows.
"""
from __future__ import annotations

import dataclasses
import functools
import statistics
import time

import torch

from ..core.contract import Case, Result
from ..core.registry import Impl, get_impl
from ..machine.gpu import ClockSampler
from ..machine.gpu_timing import measure_gpu
from ..machine.load import LoadProbe
from ..machine.memory import peak_bytes, saved_bytes
from ..machine.timing import set_threads, step_fn, synchronize, time_fn
from .grid import Point, skip_reason
from .instructions import InstructionsFailed, InstructionsUnavailable, count_instructions
from .records import Measurement

ACCURACY_REFERENCE = "autograd"  # run in float64 on the same case


@functools.lru_cache(maxsize=4)
def _truth(point: Point, seed: int) -> Result:
    """The float64 reference, run on the point's own case cast up (the same numbers the
    implementation sees, rounded to its dtype); shared by every impl measured on that case."""
    return get_impl(ACCURACY_REFERENCE)(point.case(seed).to(dtype=torch.float64))


def max_rel_error(impl: str | Impl, point: Point, *, seed: int = 0, case: Case | None = None,
                  result: Result | None = None) -> tuple[float, str]:
    """(max relative error against the float64 reference, backend that ran) at `point`; NaN when
    the result holds NaN or Inf. `result` is the implementation's result on the point's case, if
    already computed."""
    from ..conformance.policy import agreement

    impl = get_impl(impl) if isinstance(impl, str) else impl
    got = result if result is not None else impl(point.case(seed) if case is None else case)
    truth = _truth(dataclasses.replace(point, impl=ACCURACY_REFERENCE), seed)
    return agreement(got, truth).max_rel, got.backend


def validated_result(impl: Impl, case: Case) -> Result:
    """One call of `impl` on `case`, outside any timed region, that must be sound to measure:
    a result of the contract's shapes, dtype and device (`Impl.__call__`), every value finite,
    and the case left unchanged. ValueError naming what is wrong otherwise, so that `bench`
    records the point as failed instead of timing a broken kernel."""
    pristine = case.clone()
    result = impl(case)
    non_finite = [name for name, t in result.tensors().items() if not bool(torch.isfinite(t).all())]
    if non_finite:
        raise ValueError(f"{impl.name} returned NaN or Inf in {', '.join(non_finite)}")
    modified = case.modified(pristine)
    if modified:
        raise ValueError(f"{impl.name} modified case.{', case.'.join(modified)} in place (inputs are read-only)")
    return result


class ImpossibleTiming(ValueError):
    """A point measured faster than the machine's GEMM peak allows: a timing error, not a result."""


def impossible_reason(point: Point, m: Measurement, peak_gflops: float | None) -> str | None:
    """Why `m` is impossible at `point` (its median forward+backward beats FLOPs / peak), or None.

    The figure checked is the one `bench` shows as % of peak: GEMM FLOPs of the step over
    the median forward+backward time. None when there is no peak to check against."""
    if not peak_gflops:
        return None
    gflops = point.flops / m.forward_backward_median_s / 1e9
    if gflops <= peak_gflops:
        return None
    return (f"impossible timing: {gflops:.1f} GFLOP/s ({point.flops:.3g} GEMM FLOPs in a median "
            f"{m.forward_backward_median_s:.3g} s) is above this machine's {point.device}/{point.dtype} matmul "
            f"peak of {peak_gflops:.1f} GFLOP/s; not recorded as a measurement")


def measure_point(point: Point, *, threads: int | None = None, repeats: int = 5, warmup: int = 1, seed: int = 0,
                  accuracy: bool = True, memory: bool = True, instructions: bool = False) -> Measurement:
    """Time forward and forward+backward of `point`, and measure its memory, accuracy and load.

    `threads` fixes torch's CPU thread count first (default `timing.default_threads()`).
    Before anything is timed, one call must give a sound result (`validated_result`).
    `instructions` also counts the CPU instructions of one forward+backward under
    callgrind (`lstm_bench.bench.instructions`), for the points that module accepts.
    A kernel that compiles (a `cold_start` attribute on its function, e.g. `compiled`) is made
    cold first; its first call's time less the warm median is recorded as `compile_s`.
    Raises ValueError naming the reason when `skip_reason(point)` is not None.
    An implementation registered without a forward/backward split gets its whole call
    timed as forward+backward; its forward times and memory figures are left empty.
    """
    reason = skip_reason(point)
    if reason is not None:
        raise ValueError(f"point {point.key} is skipped: {reason}")
    threads = set_threads(threads)
    probe = LoadProbe.start()
    impl = get_impl(point.impl)
    case = point.case(seed)
    has_halves = impl.forward is not None
    cold_start = getattr(impl.fn, "cold_start", None)  # a kernel that compiles: its first call compiles
    if cold_start is not None:
        cold_start()
    first = time.perf_counter()
    result = validated_result(impl, case)
    first_call_s = time.perf_counter() - first

    clock = ClockSampler.start(point.device)  # SM clock per repeat on CUDA; silent on the CPU
    if has_halves:
        forward_s = time_fn(step_fn(impl, case, backward=False), device=point.device,
                            repeats=repeats, warmup=warmup, clock=clock)
        fb = step_fn(impl, case, backward=True)
    else:
        forward_s = []
        # the raw function, like step_fn's halves: no validation inside the timed region
        fb = lambda: (impl.fn(case), synchronize(case.device))  # noqa: E731
    forward_backward_s = time_fn(fb, device=point.device, repeats=repeats, warmup=warmup, clock=clock)
    compile_s = None if cold_start is None else max(0.0, first_call_s - statistics.median(forward_backward_s))
    # CUDA only: graph replays, the backward's phases, the launch floor, the clocks (machine/gpu_timing.py)
    gpu = measure_gpu(impl, case, repeats=repeats, warmup=warmup, clock=clock) if point.device == "cuda" else None

    saved = peak = None
    if memory and has_halves:
        saved = saved_bytes(impl, case)
        peak = peak_bytes(impl, case)

    err, backend = (None, result.backend)
    if accuracy:
        err, backend = max_rel_error(impl, point, seed=seed, result=result)
    load = probe.stop(threads)  # before callgrind, which is not a timing and runs in its own process
    count, note = None, ""
    if instructions:
        try:  # a count that fails is a note beside the point's timing, never the point's failure
            counted = count_instructions(point, seed=seed, backend=backend)
            count, note = counted.per_call, f"counted {counted.counted}"
        except (InstructionsUnavailable, InstructionsFailed) as why:
            note = f"not counted: {why}"
    return Measurement(forward_s=tuple(forward_s), forward_backward_s=tuple(forward_backward_s),
                       saved_bytes=saved, peak_bytes=peak, max_rel_error=err, backend=backend, load=load,
                       instructions=count, instructions_note=note, gpu=gpu, compile_s=compile_s)
