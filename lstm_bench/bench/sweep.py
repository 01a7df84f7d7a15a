"""Running a sweep: every point of a grid measured and appended to a results file.

    run_sweep(grid, out) ─┬─ set_threads(threads)               lstm_bench.machine.timing
                          ├─ environment() + peak_details()     lstm_bench.machine.environment, lstm_bench.machine.peak
                          ├─ Writer(out, header, resume)        lstm_bench.bench.results
                          └─ for each point not yet in `out`:
                               skip_reason(point)               lstm_bench.bench.grid
                               measure_point(point, ...)        lstm_bench.bench.measure -> timing.time_fn,
                                                                conformance.judge (a wrong result: failed)
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
from .instructions import ineligible_reason, unavailable_reason
from .measure import WrongResult, impossible_reason, measure_point
from .records import PointRecord
from .results import ResultsFile, Writer, check_appendable, check_new_output, load, make_header

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

    @property
    def measured(self) -> bool:
        """A point of the file (this sweep's or an earlier one's) was measured and judged ok."""
        return any(r.status == "ok" for r in self.results.by_key().values())


# The time-left estimate: a cost model of each point before anything is measured, then
# corrected per implementation by how far off it was on that implementation's points.
STEP_OVERHEAD_S = 1e-4  # per time step of a forward+backward: ~20 small ops launched from Python
FALLBACK_GFLOPS = 20.0  # achieved rate assumed where no matmul peak is known
EFFICIENCY = 0.3  # achieved share of the matmul peak assumed for an LSTM step
POINT_OVERHEAD_S = 0.05  # per point: making the case, the first call's allocations
TRUTH_COST = 2.0  # one float64 autograd run, in calls of the point: twice the bytes, no fused path
SENSITIVITY_RUNS = 2  # further float64 runs of the judge's sensitivity (conformance.policy.PERTURBATIONS)


def point_cost(point: Point, settings: SweepSettings, peak_gflops: float | None) -> float:
    """Modelled seconds to measure `point`: calls x (GEMM FLOPs / rate + steps x per-step overhead).

    Calls: warm-up and repeats of the forward (a third of the work) and of forward+backward,
    three for memory, and the verdict: the first call, and the float64 truth and its
    sensitivity of the two draws judged (each float64 run about twice a call;
    `judge.reference_of`). Without accuracy, the one validating call."""
    rate = (peak_gflops * EFFICIENCY if peak_gflops else FALLBACK_GFLOPS) * 1e9
    steps = point.T * point.num_layers * (2 if point.bidirectional else 1)  # sequential steps run
    one = point.flops / rate + steps * STEP_OVERHEAD_S
    calls = (settings.warmup + settings.repeats) * (1 + 1 / 3)
    calls += 3 if settings.memory else 0
    calls += 1 + (2 * TRUTH_COST * (1 + SENSITIVITY_RUNS) if settings.accuracy else 0)  # two draws judged
    return POINT_OVERHEAD_S + calls * one


def lower_median(values: Sequence[float]) -> float:
    """The median, or of an even count the lower of the two middle values (so that one slow
    first point, which pays for imports and lazy initialisation, is outvoted by the second)."""
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]


class TimeLeft:
    """Seconds left: each point's modelled cost times its implementation's correction.

        left = sum over the points not done of f(impl) * model(point)
        f(impl) = lower median of measured / modelled seconds over impl's points done so far;
                  for an implementation not seen yet, the lower median of 1 (the model) and
                  every seen implementation's f: one outlier (a Python loop per gate runs
                  5-10x the model) does not move the others, a machine slower than the model
                  throughout does once two implementations say so

    The correction is per implementation because the model's error is (a Python loop per
    gate costs far more per step than the model's constant; a fused kernel less), and a
    median because the first point of an implementation also pays its one-time set-up.
    The estimate it replaces, one sweep-wide correction shrunk towards 1 by a prior of 2 s,
    read "~569 ms left" in a main job that then took 15 s: the prior outweighed the few
    seconds measured, while the reference ran 4-10x the model (tests/test_sweep.py replays
    the ratios measured).
    Points that cost 0 (skipped) do not count, nor does the sweep's first measured point while
    there is no other: it also pays for the process's own set-up (thread pool, first float64
    truth, compiled kernels loaded), so after it the model alone is the better guess."""

    def __init__(self, costs: Sequence[float], groups: Sequence[str] | None = None, *,
                 clock=time.perf_counter) -> None:
        self.costs = list(costs)
        self.groups = list(groups) if groups is not None else [""] * len(self.costs)
        if len(self.groups) != len(self.costs):
            raise ValueError(f"TimeLeft: {len(self.groups)} groups for {len(self.costs)} costs")
        self.clock = clock
        self.last = clock()
        self.done: set[int] = set()
        self.ratios: dict[str, list[float]] = {}
        self.first: tuple[str, float] | None = None  # the sweep's first measured point: (group, ratio)

    def advance(self, index: int) -> None:
        """Point `index` finished now: its measured seconds are the time since the previous one finished."""
        now = self.clock()
        spent, self.last = now - self.last, now
        self.done.add(index)
        if self.costs[index] <= 0:
            return
        if self.first is None:
            self.first = (self.groups[index], spent / self.costs[index])
            return
        if self.first[0] not in self.ratios and self.first[0] == self.groups[index]:
            self.ratios[self.first[0]] = [self.first[1]]  # its group has a second figure now: both count
        self.ratios.setdefault(self.groups[index], []).append(spent / self.costs[index])

    def factor(self, group: str) -> float:
        """The correction of `group`'s modelled seconds (class docstring)."""
        if group in self.ratios:
            return lower_median(self.ratios[group])
        # not seen yet: the lower median of the seen groups' corrections and of the model's own 1
        return lower_median([1.0] + [lower_median(r) for r in self.ratios.values()])

    def seconds_left(self) -> float:
        return sum(self.factor(g) * c for i, (c, g) in enumerate(zip(self.costs, self.groups)) if i not in self.done)


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
    CPU threads (default: the file's count when resuming, else `timing.default_threads()`); `peak` measures (or reads the cached)
    matmul peak of each device and dtype swept, for "% of peak". A point that raises is
    recorded as failed and the sweep goes on. KeyboardInterrupt propagates once the file is
    closed: every finished point is in it, and `resume=True` continues from there.
    """
    observer = observer or SweepObserver()
    out = Path(out)
    # Fail on the file before spending seconds on the peak (Writer checks again, atomically).
    if resume:
        recorded = load(check_appendable(out)).env.get("threads")
        if threads is None and isinstance(recorded, int) and recorded > 0:
            threads = recorded  # the default follows the load, a resumed sweep its file's count
    else:
        check_new_output(out, hint="pass --resume to continue that sweep, or choose another --out")
    threads = set_threads(threads)
    points = grid.points()
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
        clock = TimeLeft([0.0 if r else point_cost(p, settings, _gflops(details, p)) for p, r in zip(todo, reasons)],
                         [p.impl for p in todo])
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
    except WrongResult as err:  # the verdict: a wrong result is a failed point, with its err/bound
        _release_memory(point.device)
        return PointRecord(point, "failed", error=str(err), worst_err_bound=err.worst)
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
    return unavailable_reason() is None and ineligible_reason(point) is None
