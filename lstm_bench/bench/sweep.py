"""Running a sweep: every point of a grid measured and appended to a results file.

    run_sweep(grid, out) ─┬─ set_threads(threads)               lstm_bench.machine.timing
                          ├─ environment() + peak_details()     lstm_bench.machine.environment, lstm_bench.machine.peak
                          ├─ Writer(out, header, resume)        lstm_bench.bench.results
                          └─ for each point not yet in `out`:
                               skip_reason(point)               lstm_bench.bench.grid
                               measure_point(point, ...)        lstm_bench.bench.measure -> timing.time_fn
                               impossible_reason(point, m, peak)   faster than the peak: failed, not ok
                               writer.point(PointRecord)        one fsync'ed line per point

`bench`, the main job and the tests all call `run_sweep`; what is shown while it runs
is up to the caller's `SweepObserver` (the command line draws a progress bar).
"""
from __future__ import annotations

import dataclasses
import gc
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ..core.values import check_int
from ..machine.environment import environment
from ..machine.peak import Peak, header_key, matmul_peak, peak_details
from ..machine.timing import set_threads
from .grid import Grid, Point, skip_reason
from .measure import impossible_reason, measure_point
from .records import PointRecord
from .results import ResultsError, ResultsFile, Writer, load, make_header

# 7 repeats a point keep the exact Mann-Whitney test of `compare` able to reach
# alpha = 0.05 after Holm's correction over up to 86 points (min p = 2 / C(14, 7)).
DEFAULT_REPEATS = 7


@dataclass(frozen=True)
class SweepSettings:
    """How each point is measured (`measure_point`'s arguments); stored in the results file's header."""

    repeats: int = DEFAULT_REPEATS
    warmup: int = 1
    seed: int = 0
    accuracy: bool = True
    memory: bool = True
    instructions: bool = False

    def __post_init__(self) -> None:
        check_int("repeats", self.repeats, 1)
        check_int("warmup", self.warmup, 0)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an int, got {self.seed!r}")

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        if not self.instructions:  # absent as in files of lstm-bench 0.1, so --resume still matches them
            del d["instructions"]
        return d


def grid_dict(grid: Grid) -> dict:
    """The grid's axes as stored in a results file's header."""
    return {k: (list(v) if v is not None else None) for k, v in dataclasses.asdict(grid).items()}


@dataclass
class SweepPlan:
    """What a sweep is about to do: handed to the observer before the first point."""

    out: Path
    points: list[Point]  # the whole grid, skipped points included
    todo: list[Point]  # not yet in the file
    skip_reasons: list[str | None]  # per point of `todo`
    threads: int
    settings: SweepSettings

    @property
    def runnable(self) -> int:
        return sum(skip_reason(p) is None for p in self.points)


class SweepObserver:
    """Hooks called while a sweep runs; the default does nothing. `seconds_left` may be None."""

    def started(self, plan: SweepPlan) -> None: ...

    def measuring(self, index: int, point: Point, seconds_left: float | None) -> None: ...

    def measured(self, index: int, record: PointRecord, seconds_left: float | None) -> None: ...

    def finished(self, interrupted: bool) -> None: ...


@dataclass
class SweepOutcome:
    """The results file after the sweep, and how this sweep's points ended."""

    results: ResultsFile
    counts: dict[str, int] = field(default_factory=dict)  # ok, failed, skipped, resumed

    @property
    def failed(self) -> bool:
        """A point of the file (this sweep's or an earlier one's) ended in failure."""
        return any(r.status == "failed" for r in self.results.by_key().values())


# The time-left estimate: a cost model of each point before anything is measured, then
# corrected by the ratio of measured to modelled time of the points already done.
STEP_OVERHEAD_S = 1e-4  # per time step of a forward+backward: ~20 small ops launched from Python
FALLBACK_GFLOPS = 20.0  # achieved rate assumed where no matmul peak is known
EFFICIENCY = 0.3  # achieved share of the matmul peak assumed for an LSTM step
POINT_OVERHEAD_S = 0.05  # per point: making the case, the first call's allocations


def point_cost(point: Point, settings: SweepSettings, peak_gflops: float | None) -> float:
    """Modelled seconds to measure `point`: calls x (GEMM FLOPs / rate + steps x per-step overhead).

    Calls: warm-up and repeats of the forward (a third of the work) and of forward+backward,
    three for memory, and the accuracy check (the point's call plus a float64 reference
    at about twice the cost)."""
    rate = (peak_gflops * EFFICIENCY if peak_gflops else FALLBACK_GFLOPS) * 1e9
    steps = point.T * point.num_layers * (2 if point.bidirectional else 1)  # sequential steps run
    one = point.flops / rate + steps * STEP_OVERHEAD_S
    calls = (settings.warmup + settings.repeats) * (1 + 1 / 3)
    calls += 3 if settings.memory else 0
    calls += 3 if settings.accuracy else 0
    return POINT_OVERHEAD_S + calls * one


class TimeLeft:
    """Seconds left from the model, scaled by how far off it was on the points done so far.

    left = f * model_left, f = (elapsed + K) / (model_done + K): K (the prior's weight, in
    seconds) pulls f towards 1 while little has been measured, so that one slow first
    point (imports, lazy initialisation) cannot multiply the estimate by 1000 as a pure
    elapsed/FLOPs-done extrapolation does; as measured time accumulates it dominates."""

    def __init__(self, costs: Sequence[float], *, clock=time.perf_counter, prior_s: float | None = None) -> None:
        self.costs = list(costs)
        self.total = sum(self.costs)
        self.done = 0.0
        self.clock = clock
        self.t0 = clock()
        self.prior = max(2.0, 0.1 * self.total) if prior_s is None else prior_s

    def advance(self, index: int) -> None:
        self.done += self.costs[index]

    def seconds_left(self) -> float:
        elapsed = self.clock() - self.t0
        factor = (elapsed + self.prior) / (self.done + self.prior)
        return max(0.0, factor * (self.total - self.done))


def _release_memory(device: str) -> None:
    gc.collect()
    if device == "cuda":
        import torch

        torch.cuda.empty_cache()


def run_sweep(grid: Grid, out: str | Path, *, settings: SweepSettings = SweepSettings(), threads: int | None = None,
              peak: bool = True, resume: bool = False, observer: SweepObserver | None = None) -> SweepOutcome:
    """Measure every point of `grid` not yet in `out`, appending each point's record as it finishes.

    `out` must not exist, unless `resume`, which continues that file (refused when it was
    recorded under another torch, thread count, grid or settings). `threads` fixes torch's
    CPU threads (default `timing.default_threads()`); `peak` measures (or reads the cached)
    matmul peak of each device and dtype swept, for "% of peak". A point that raises is
    recorded as failed and the sweep goes on. KeyboardInterrupt propagates once the file is
    closed: every finished point is in it, and `resume=True` continues from there.
    """
    observer = observer or SweepObserver()
    out = Path(out)
    threads = set_threads(threads)
    points = grid.points()
    # Fail on the file before spending seconds on the peak (Writer checks again, atomically).
    if resume:
        load(out)
    elif out.exists():
        raise ResultsError(f"{out}: already exists; pass --resume to continue that sweep, or choose another "
                           f"--out (results are never overwritten)")
    env = environment(threads=threads)
    runnable = [p for p in points if skip_reason(p) is None]
    details = peak_details({(p.device, p.dtype) for p in runnable}, threads, points=runnable) if peak else {}
    env["matmul_peak_gflops"] = {k: v.gflops for k, v in details.items()}
    env["matmul_peak"] = {k: v.to_json() for k, v in details.items()}
    counts = {"ok": 0, "failed": 0, "skipped": 0, "resumed": 0}
    with Writer(out, make_header(env, grid_dict(grid), settings.as_dict()), resume=resume) as writer:
        todo = [p for p in points if p.key not in writer.done]
        counts["resumed"] = len(points) - len(todo)
        reasons = [skip_reason(p) for p in todo]
        plan = SweepPlan(out, points, todo, reasons, threads, settings)
        clock = TimeLeft([0.0 if r else point_cost(p, settings, _gflops(details, p)) for p, r in zip(todo, reasons)])
        observer.started(plan)
        try:
            for i, (point, reason) in enumerate(zip(todo, reasons)):
                if reason is None:
                    observer.measuring(i, point, clock.seconds_left())
                record = writer.point(_measure(point, reason, threads, settings, details))
                counts[record.status] += 1
                clock.advance(i)
                observer.measured(i, record, clock.seconds_left())
        except KeyboardInterrupt:
            observer.finished(interrupted=True)
            raise
        observer.finished(interrupted=False)
    return SweepOutcome(load(out), counts)


def _gflops(details: dict[str, Peak], point: Point) -> float | None:
    peak = details.get(header_key(point.device, point.dtype))
    return peak.gflops if peak is not None else None


def _measure(point: Point, reason: str | None, threads: int, settings: SweepSettings,
             details: dict[str, Peak] | None = None) -> PointRecord:
    """The record of one point: skipped with its reason, ok with its measurement, or failed with the error.

    A measurement faster than the matmul peak allows is failed as impossible, after the
    peak was measured once more (a peak measured under load reads low)."""
    if reason is not None:
        return PointRecord(point, "skipped", reason=reason)
    try:
        m = measure_point(point, threads=threads, repeats=settings.repeats, warmup=settings.warmup,
                          seed=settings.seed, accuracy=settings.accuracy, memory=settings.memory,
                          instructions=settings.instructions and _instructions_ok(point))
    except KeyboardInterrupt:
        raise
    except Exception as err:  # OOM or a broken implementation: record it and go on
        _release_memory(point.device)
        return PointRecord(point, "failed", error=f"{type(err).__name__}: {err}".strip())
    details = details if details is not None else {}
    if impossible_reason(point, m, _gflops(details, point)):
        key = header_key(point.device, point.dtype)
        details[key] = matmul_peak(point.device, point.dtype, threads=threads, refresh=True)
        impossible = impossible_reason(point, m, details[key].gflops)
        if impossible:
            return PointRecord(point, "failed", error=impossible)
    return PointRecord(point, "ok", dataclasses.replace(m, peak_gflops=_gflops(details, point)))


def _instructions_ok(point: Point) -> bool:
    from .instructions import ineligible_reason, unavailable_reason

    return unavailable_reason() is None and ineligible_reason(point) is None
