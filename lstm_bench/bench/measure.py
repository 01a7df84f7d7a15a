"""Everything measured at one grid point, and the verdict on its result (`measure_point`).

The timed callables come from `lstm_bench.machine.timing.step_fn` and the loop is
`lstm_bench.machine.timing.time_fn`; memory is `lstm_bench.machine.memory`; the machine's
load around the point is `lstm_bench.machine.load`; instruction counts (optional) are
`lstm_bench.bench.instructions`. `impossible_reason` rejects a timing faster than the
machine's GEMM peak allows.

Every measurement is also a verdict, the same as `lstm-bench check`'s: the point's result is
judged under the tolerance policy (`lstm_bench.conformance.judge.judge_against_reference`)
against the float64 truth of its case, the one cache of which is `judge.truth_of` (low
precision: against the vendor's error, as the policy says), once before anything is timed
and again on the result of the LAST timed call, so that a kernel that caches its result or
computes less when called repeatedly fails too: the first call runs on another draw of the
case (seed + 1) than the timed ones (seed), so a result cached from it is wrong at the end.
A result that fails either is `WrongResult`.

A kernel declared forward-only (`gradients=False`, an inference engine) has its forward timed
(the record's `timed` is "forward", its GFLOP/s counts the forward's FLOPs) and its output, h_n and
c_n judged.
"""
from __future__ import annotations

import dataclasses
import statistics
import time

import torch

from ..conformance.cases import CaseSpec
from ..conformance.judge import Reference, float64_result, judge_against_reference, truth_of
from ..conformance.policy import AgreementReport, agreement
from ..core.contract import Case, Result
from ..core.registry import Impl, get_impl
from ..core.support import Unsupported
from ..machine.gpu import ClockSampler
from ..machine.gpu_timing import measure_gpu
from ..machine.load import LoadProbe
from ..machine.memory import peak_bytes, saved_bytes
from ..machine.timing import set_threads, step_fn, synchronize, time_fn
from .flops import FORWARD, STEP
from .grid import Point, skip_reason
from .instructions import InstructionsFailed, InstructionsUnavailable, count_instructions
from .records import Measurement

ACCURACY_REFERENCE = "autograd"  # run in float64 on the same case


class WrongResult(ValueError):
    """A point whose result fails the tolerance policy: a failed point, never a measurement.
    `worst` is the report's largest err/bound (inf for NaN/Inf)."""

    def __init__(self, message: str, worst: float) -> None:
        super().__init__(message)
        self.worst = worst


def case_spec(point: Point, seed: int = 0) -> CaseSpec:
    """The `CaseSpec` of `point`'s case (what `Point.case(seed)` makes), the key of `judge.truth_of`."""
    lengths = point.sequence_lengths()
    return CaseSpec(point.T, point.B, point.I, point.H, point.dtype, seed=seed, num_layers=point.num_layers,
                    bidirectional=point.bidirectional, proj_size=point.proj_size,
                    lengths=None if lengths is None else tuple(int(n) for n in lengths))


def reference_for(point: Point, seed: int = 0) -> Reference:
    """What `point`'s result is judged against (`judge.truth_of`, computed once per process);
    `Unsupported` when there is no yardstick (a low-precision case the vendor cannot run)."""
    return truth_of(case_spec(point, seed), point.device, ACCURACY_REFERENCE)


def judge_given(impl: Impl, result: Result, case: Case, truth: Reference) -> AgreementReport:
    """Judge an already computed `result` of `impl` on `case` (the contract's checks included),
    the way `judge_against_reference` judges a call."""
    given = dataclasses.replace(impl, fn=lambda _case: result)
    return judge_against_reference(given, case, reference=ACCURACY_REFERENCE, truth=truth)


def wrong_reason(report: AgreementReport, when: str) -> str | None:
    """Why `report` fails, naming the tensors, err/bound and `when` the result was computed; or None."""
    if report.passed:
        return None
    tensors = ", ".join(f"{r.name} (err/bound {r.worst:.3g}, max rel {r.max_rel:.2g}{', ' + r.note if r.note else ''})"
                        for r in report.failures)
    return f"wrong result on the {when}: " + "; ".join(([tensors] if tensors else []) + report.problems)


def max_rel_error(impl: str | Impl, point: Point, *, seed: int = 0, case: Case | None = None,
                  result: Result | None = None) -> tuple[float, str]:
    """(max relative error against the float64 truth, backend that ran) at `point`; NaN when
    the result holds NaN or Inf. `result` is the implementation's result on the point's case, if
    already computed (asv's track_max_rel_error)."""
    impl = get_impl(impl) if isinstance(impl, str) else impl
    case = point.case(seed) if case is None else case
    got = result if result is not None else impl(case)
    # The truth alone, from a case made afresh: this figure needs no sensitivity, whose perturbed runs
    # (`reference_for`'s) made it 6.1 s instead of 2.5 s at T=500, B=32, H=64 (AMD EPYC, 2 threads).
    truth = float64_result(point.case(seed), ACCURACY_REFERENCE)
    return agreement(got, truth, gradients=impl.support.gradients).max_rel, got.backend


def validated_result(impl: Impl, case: Case) -> Result:
    """One call of `impl` on `case`, outside any timed region, that must be sound to measure:
    a result of the contract's shapes, dtype and device (`Impl.__call__`), every value finite,
    and the case left unchanged. ValueError naming what is wrong otherwise, so that `bench`
    records the point as failed instead of timing a broken kernel (used without a verdict,
    `--no-accuracy`)."""
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
    """Why `m` is impossible at `point` (its median timed call beats FLOPs / peak), or None.

    The figure checked is the one `bench` shows as % of peak: GEMM FLOPs of the timed call
    (forward+backward, or a forward-only kernel's forward) over its median time. None when there
    is no peak to check against."""
    if not peak_gflops:
        return None
    flops = point.gemm_flops(backward=not m.forward_only)
    gflops = flops / m.forward_backward_median_s / 1e9
    if gflops <= peak_gflops:
        return None
    return (f"impossible timing: {gflops:.1f} GFLOP/s ({flops:.3g} GEMM FLOPs in a median "
            f"{m.forward_backward_median_s:.3g} s) is above this machine's {point.device}/{point.dtype} matmul "
            f"peak of {peak_gflops:.1f} GFLOP/s; not recorded as a measurement")


def measure_point(point: Point, *, threads: int | None = None, repeats: int = 5, warmup: int = 1, seed: int = 0,
                  accuracy: bool = True, memory: bool = True, instructions: bool = False) -> Measurement:
    """Time forward and forward+backward of `point`, measure its memory and load, and judge its result.

    `threads` fixes torch's CPU thread count first (default `timing.default_threads()`).
    With `accuracy`, the result of one call before the timing (on the case of `seed + 1`)
    and the result of the last timed forward+backward (on the case of `seed`) are both
    judged (module docstring): `WrongResult` when either fails; a point with no yardstick (`Unsupported` from the judge) is measured with
    `unjudged_reason` set. Without it, one call must still give a sound result
    (`validated_result`). `instructions` also counts the CPU instructions of one
    forward+backward under callgrind (`lstm_bench.bench.instructions`), for the points that
    module accepts. A kernel that compiles (a `cold_start` attribute on its function, e.g.
    `compiled`) is made cold first; its first call's time less the warm median is recorded as
    `compile_s`. Raises ValueError naming the reason when `skip_reason(point)` is not None.
    An implementation registered without a forward/backward split gets its whole call
    timed as forward+backward; its forward times and memory figures are left empty. A forward-only
    kernel (`gradients=False`) gets its call timed as what it is, the forward (`timed` "forward").
    """
    reason = skip_reason(point)
    if reason is not None:
        raise ValueError(f"point {point.key} is skipped: {reason}")
    threads = set_threads(threads)
    probe = LoadProbe.start()
    impl = get_impl(point.impl)
    forward_only = not impl.support.gradients
    has_halves = impl.forward is not None and not forward_only  # a forward-only kernel's call is its forward
    # The first call runs on another draw of the case than the timed calls (seed + 1), so that
    # a kernel returning a cached result, or one computed for other numbers, fails at the end.
    first_case, case = point.case(seed + 1), point.case(seed)
    truths, unjudged = None, None
    if accuracy:
        try:
            truths = (reference_for(point, seed + 1), reference_for(point, seed))
        except Unsupported as why:
            unjudged = f"not judged: {why}"
    cold_start = getattr(impl.fn, "cold_start", None)  # a kernel that compiles: its first call compiles
    if cold_start is not None:
        cold_start()
    started = time.perf_counter()
    if truths is not None:
        first = judge_against_reference(impl, first_case, reference=ACCURACY_REFERENCE, truth=truths[0])
        wrong = wrong_reason(first, "first call")
        if wrong:
            raise WrongResult(wrong, first.worst)
        backend = first.backend
    else:
        backend = validated_result(impl, first_case).backend
    first_call_s = time.perf_counter() - started  # the judge's float64 truth is cached: the call dominates
    del first_case
    pristine = case.clone()

    clock = ClockSampler.start(point.device)  # SM clock per repeat on CUDA; silent on the CPU
    if has_halves:
        forward_s = time_fn(step_fn(impl, case, backward=False), device=point.device,
                            repeats=repeats, warmup=warmup, clock=clock)
        step = step_fn(impl, case, backward=True)
    else:
        forward_s = []
        # the raw function, like step_fn's halves: no validation inside the timed region
        def step() -> Result:
            out = impl.fn(case)
            synchronize(case.device)
            return out
    last: list = [None]

    def fb() -> None:
        last[0] = None  # the previous result freed before the call, as time_fn drops it
        last[0] = step()
    forward_backward_s = time_fn(fb, device=point.device, repeats=repeats, warmup=warmup, clock=clock)
    compile_s = None if cold_start is None else max(0.0, first_call_s - statistics.median(forward_backward_s))
    worst = None
    if truths is not None:
        again = judge_given(impl, last[0], case, truths[1])
        again.problems += [f"{impl.name} modified case.{name} in place while timed (inputs are read-only)"
                           for name in case.modified(pristine)]
        wrong = wrong_reason(again, f"last of {warmup + repeats} timed calls")
        if wrong:
            raise WrongResult(wrong, again.worst)
        worst = max(first.worst, again.worst)
        max_rel = max(first.max_rel, again.max_rel)
    last[0] = None
    # CUDA only: graph replays, the backward's phases, the launch floor, the clocks (machine/gpu_timing.py)
    gpu = measure_gpu(impl, case, repeats=repeats, warmup=warmup, clock=clock) if point.device == "cuda" else None

    saved = peak = None
    if memory and has_halves:
        saved = saved_bytes(impl, case)
        peak = peak_bytes(impl, case)

    load = probe.stop(threads)  # before callgrind, which is not a timing and runs in its own process
    count, note = None, ""
    if instructions:
        try:  # a count that fails is a note beside the point's timing, never the point's failure
            counted = count_instructions(point, seed=seed, backend=backend)
            count, note = counted.per_call, f"counted {counted.counted}"
        except (InstructionsUnavailable, InstructionsFailed) as why:
            note = f"not counted: {why}"
    return Measurement(forward_s=tuple(forward_s), forward_backward_s=tuple(forward_backward_s),
                       saved_bytes=saved, peak_bytes=peak, max_rel_error=max_rel if worst is not None else None,
                       backend=backend, load=load, instructions=count, instructions_note=note, worst_err_bound=worst,
                       unjudged_reason=unjudged, oversubscribed=load.oversubscribed_reason(), gpu=gpu,
                       compile_s=compile_s, timed=FORWARD if forward_only else STEP)
