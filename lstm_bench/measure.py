"""Everything measured at one grid point: times, memory, FLOPs and accuracy."""
from __future__ import annotations

import dataclasses
import functools
import statistics
from dataclasses import dataclass

import torch

from .contract import Case, Result
from .flops import gflops, lstm_flops
from .grid import Grid, Point, skip_reason
from .memory import peak_bytes, saved_bytes
from .registry import Impl, get_impl
from .timing import set_threads, step_fn, synchronize, time_fn

ACCURACY_REFERENCE = "autograd"  # run in float64 on the same case


@dataclass
class Measurement:
    """One point's figures. Times are seconds per call, one per repeat.

    `gflops` = flops_forward_backward / median(forward_backward_s) / 1e9.
    `max_rel_error` = max over the outputs and the seven gradients of
    max|a - b| / max|b|, with b the float64 `autograd` result of the same case
    (`lstm_bench.tolerance.compare`); None when accuracy was not measured.
    """

    point: Point
    forward_s: list[float]
    forward_backward_s: list[float]
    saved_bytes: int | None
    peak_bytes: int | None
    flops_forward: int
    flops_forward_backward: int
    gflops: float
    max_rel_error: float | None
    threads: int
    backend: str = ""

    @property
    def forward_median_s(self) -> float:
        return statistics.median(self.forward_s) if self.forward_s else float("nan")

    @property
    def forward_backward_median_s(self) -> float:
        return statistics.median(self.forward_backward_s)

    def to_dict(self) -> dict:
        return {
            "key": self.point.key,
            "point": self.point.as_dict(),
            "forward_s": list(self.forward_s),
            "forward_backward_s": list(self.forward_backward_s),
            "forward_median_s": self.forward_median_s if self.forward_s else None,
            "forward_backward_median_s": self.forward_backward_median_s,
            "saved_bytes": self.saved_bytes,
            "peak_bytes": self.peak_bytes,
            "flops_forward": self.flops_forward,
            "flops_forward_backward": self.flops_forward_backward,
            "gflops": self.gflops,
            "max_rel_error": self.max_rel_error,
            "threads": self.threads,
            "backend": self.backend,
            "torch": torch.__version__,
        }


@functools.lru_cache(maxsize=4)
def _truth(point: Point, seed: int) -> Result:
    """The float64 reference, run on the point's own case cast up (the same numbers the
    path sees, rounded to its dtype); shared by every impl measured on that case."""
    return get_impl(ACCURACY_REFERENCE)(point.case(seed).to(dtype=torch.float64))


def max_rel_error(impl: str | Impl, point: Point, *, seed: int = 0, case: Case | None = None) -> tuple[float, str]:
    """(max relative error against the float64 reference, backend that ran) at `point`."""
    from .tolerance import compare

    impl = get_impl(impl) if isinstance(impl, str) else impl
    got = impl(point.case(seed) if case is None else case)
    truth = _truth(dataclasses.replace(point, impl=ACCURACY_REFERENCE), seed)
    return compare(got, truth).max_rel, got.backend


def measure_point(point: Point, *, repeats: int = 5, warmup: int = 1, seed: int = 0,
                  accuracy: bool = True, memory: bool = True) -> Measurement:
    """Time forward and forward+backward of `point`, and measure its memory, FLOPs and accuracy.

    Raises ValueError naming the reason when `skip_reason(point)` is not None.
    An implementation registered without a forward/backward split gets its whole call
    timed as forward+backward; its forward times and memory figures are left empty.
    """
    reason = skip_reason(point)
    if reason is not None:
        raise ValueError(f"point {point.key} is skipped: {reason}")
    threads = set_threads()
    impl = get_impl(point.impl)
    case = point.case(seed)
    try:
        impl.split()
        has_split = True
    except NotImplementedError:
        has_split = False

    if has_split:
        forward_s = time_fn(step_fn(impl, case, backward=False), device=point.device,
                            repeats=repeats, warmup=warmup)
        fb = step_fn(impl, case, backward=True)
    else:
        forward_s = []
        # the raw function, like step_fn's halves: no validation inside the timed region
        fb = lambda: (impl.fn(case), synchronize(case.device))  # noqa: E731
    forward_backward_s = time_fn(fb, device=point.device, repeats=repeats, warmup=warmup)

    saved = peak = None
    if memory and has_split:
        saved = saved_bytes(impl, case)
        peak = peak_bytes(impl, case)

    err, backend = (None, "")
    if accuracy:
        err, backend = max_rel_error(impl, point, seed=seed, case=case)

    flops_f = lstm_flops(point.T, point.B, point.I, point.H, backward=False)
    flops_fb = lstm_flops(point.T, point.B, point.I, point.H, backward=True)
    median = statistics.median(forward_backward_s)
    return Measurement(
        point=point, forward_s=forward_s, forward_backward_s=forward_backward_s,
        saved_bytes=saved, peak_bytes=peak, flops_forward=flops_f, flops_forward_backward=flops_fb,
        gflops=gflops(point.T, point.B, point.I, point.H, median),
        max_rel_error=err, threads=threads, backend=backend,
    )


# --- Measurement quality: a path made slower by a known fraction -------------------

SLOWDOWN_ENV = "LSTM_BENCH_INJECT_SLOWDOWN"
SLOWED_IMPL = "vectorised_slowed"


def _slowed(fn, fraction: float):
    """`fn` followed by a busy wait of `fraction` times the time `fn` itself took."""
    import time

    def run(case, *args):
        t0 = time.perf_counter()
        out = fn(case, *args)
        if case.device.type == "cuda":
            torch.cuda.synchronize(case.device)
        end = t0 + (time.perf_counter() - t0) * (1.0 + fraction)
        while time.perf_counter() < end:
            pass
        return out
    return run


def register_slowed(fraction: float, *, base: str = "vectorised", name: str = SLOWED_IMPL) -> Impl:
    """Register `name`: `base` with each half made slower by exactly `fraction` (0.05 = 5%).

    Used to find the smallest slowdown asv and pytest-benchmark flag: run the suites
    once with fraction 0 and once with the slowdown, under the same name.
    """
    from .registry import register_impl

    if not (isinstance(fraction, (int, float)) and 0 <= fraction < 10):
        raise ValueError(f"fraction must be a number in [0, 10), got {fraction!r}")
    b = get_impl(base)
    forward, backward = b.split()
    return register_impl(name, _slowed(b.fn, fraction), devices=b.devices, replace=True,
                         forward=_slowed(forward, fraction), backward=_slowed(backward, fraction),
                         description=f"{base} slowed down by {fraction:.1%} (measurement-quality studies)")


def grid_from_env(variable: str, default: str) -> Grid:
    """The grid of `NAMED_GRIDS` that $`variable` names (else `default`), ready to run.

    Registers the study's path too: slowed by $LSTM_BENCH_INJECT_SLOWDOWN when that is
    set, else unslowed when the study grid is asked for.
    """
    import os

    from .grid import NAMED_GRIDS
    from .registry import all_impls

    name = os.environ.get(variable) or default
    if name not in NAMED_GRIDS:
        raise ValueError(f"${variable} must be one of {sorted(NAMED_GRIDS)}, got {name!r}")
    register_slowed_from_env()
    if name == "study" and SLOWED_IMPL not in all_impls():
        register_slowed(0.0)
    return NAMED_GRIDS[name]


def register_slowed_from_env() -> Impl | None:
    """`register_slowed(float($LSTM_BENCH_INJECT_SLOWDOWN))` when that variable is set."""
    import os

    value = os.environ.get(SLOWDOWN_ENV)
    if value is None or value == "":
        return None
    try:
        fraction = float(value)
    except ValueError:
        raise ValueError(f"${SLOWDOWN_ENV} must be a fraction such as 0.05, got {value!r}") from None
    return register_slowed(fraction)
