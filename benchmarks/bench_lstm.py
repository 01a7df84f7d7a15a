"""asv suites over `lstm_bench.bench.grid.ASV_GRID` (LSTM_BENCH_GRID=bench, =quick or =study for the others)
and `ASV_CONFIG_GRID` (LSTM_BENCH_CONFIG_GRID=configs for the whole CONFIG_GRID).

Every point of the grid on a device this machine has is one parameter combination (a
device it lacks is left out of the parameters: each of its points would cost a forked
process to say n/a). A point that does not run here (an implementation that is not
registered, a row of the grid's EXCLUSIONS table) raises NotImplementedError in `setup`,
which asv records as skipped; the reason is `lstm_bench.bench.grid.skip_reason(point)`.

- `TimeStep`: wall time of the forward half and of forward+backward (the callables
  of `lstm_bench.machine.timing.step_fn`, which synchronise on CUDA), and the process peak RSS.
- `TrackStep`: figures that do not depend on the machine's noise (saved bytes, peak
  allocated bytes, FLOPs, max relative error against float64) and achieved GFLOP/s.
- `TimeConfigStep`, `TrackConfigStep`: the same over `ASV_CONFIG_GRID`, nn.LSTM's other
  configurations (2 layers, bidirectional, a projection, variable lengths) at T = 100 in float32;
  LSTM_BENCH_CONFIG_GRID=configs adds T = 10 and bfloat16.
- `TrackInstructions`: CPU instructions of one forward+backward under callgrind at one small
  CPU point of `vectorised` (`$LSTM_BENCH_INSTRUCTION_IMPLS` for others;
  `lstm_bench.bench.instructions`): deterministic to ~0.1-0.3 %, so a 1 % overhead regression
  shows without any timing noise. Without valgrind each point is skipped with the reason
  (NotImplementedError in setup, shown with --show-stderr).
"""
from __future__ import annotations

import os
import statistics
import sys

from lstm_bench.bench import instructions
from lstm_bench.bench.grid import Grid, Point, Variant, grid_from_env, skip_reason
from lstm_bench.bench.measure import max_rel_error
from lstm_bench.core.devices import available_devices
from lstm_bench.core.registry import get_impl
# Imported as a module: asv would collect a bare `time_fn` name here as a benchmark.
from lstm_bench.machine import timing
from lstm_bench.machine.memory import peak_bytes, saved_bytes, warm_profiler
from lstm_bench.machine.timing import set_threads, step_fn

warm_profiler()  # once in asv's forkserver, not in each of the ~800 forked memory benchmarks
# The thread count from the machine's load, sampled (0.1 s) once in asv's forkserver and inherited by
# every fork (timing.default_threads caches it per process): one count for the whole run, as a results
# header has, where sampling in each fork took 1.2 min of `asv run --quick` (0.1 s x ~700 forks).
timing.default_threads()
GRID = grid_from_env("LSTM_BENCH_GRID", "asv")  # every named grid has I = H, as PARAMS assume
CONFIG_GRID = grid_from_env("LSTM_BENCH_CONFIG_GRID", "asv-configs")


def _axes(grid: Grid) -> list[list]:
    """The grid's axes in PARAM_NAMES' order, its devices limited to this machine's (0.07 s of asv's
    fork for each point of a missing device and benchmark: 1 min of `asv run --quick` on a CPU machine)."""
    devices = [d for d in grid.devices if d in available_devices()]
    return [list(grid.impls), devices, list(grid.dtypes), list(grid.T), list(grid.B), list(grid.H)]


PARAMS = _axes(GRID)
PARAM_NAMES = ["impl", "device", "dtype", "T", "B", "H"]

# Repeats kept small so that a full `asv run` of one commit of ASV_GRID is meant to fit
# in 20 minutes on a 2-core CPU (docs/benchmarks.md has what was measured).
TIMING_REPEATS = 2  # for track_gflops, through lstm_bench.machine.timing.time_fn


# nn.LSTM's configurations (layers, bidirectional, projection, variable lengths) are their own
# suites over CONFIG_GRID, so that adding them left the plain suites' parameters, and so their
# asv history, as they were.
VARIANTS = {v.label: v for v in CONFIG_GRID.variants}
CONFIG_PARAMS = _axes(CONFIG_GRID) + [list(VARIANTS)]
CONFIG_PARAM_NAMES = PARAM_NAMES + ["config"]


def _point(impl: str, device: str, dtype: str, T: int, B: int, H: int, config: str = "plain") -> Point:
    v: Variant = VARIANTS[config]
    point = Point(impl, T, B, H, H, device, dtype, v.num_layers, v.bidirectional, v.proj_size, v.lengths)
    reason = skip_reason(point)
    if reason is not None:
        raise NotImplementedError(reason)
    return point


class TimeStep:
    """Seconds per call of the forward half and of forward+backward; process peak memory."""

    params = PARAMS
    param_names = PARAM_NAMES
    repeat = (1, 5, 8.0)  # (min, max repeats, stop after this many seconds)
    rounds = 2
    warmup_time = 0.0  # setup makes one untimed call instead
    timeout = 600.0

    def setup(self, *params):
        point = _point(*params)
        self.threads = set_threads()
        case = point.case()
        self.forward = step_fn(get_impl(point.impl), case, backward=False)
        self.forward_backward = step_fn(get_impl(point.impl), case, backward=True)
        self.forward_backward()  # warm-up: caches, allocator, cuDNN algorithm choice

    def time_forward(self, *args):
        self.forward()

    def time_forward_backward(self, *args):
        self.forward_backward()

    def peakmem_forward_backward(self, *args):
        self.forward_backward()


class TrackStep:
    """Memory, FLOPs, GFLOP/s and accuracy of one forward+backward at each point."""

    params = PARAMS
    param_names = PARAM_NAMES
    timeout = 600.0

    def setup(self, *params):
        self.point = _point(*params)
        self.threads = set_threads()
        self.impl = get_impl(self.point.impl)

    @property
    def case(self):
        # made on first use: track_flops and track_threads need none
        if not hasattr(self, "_case"):
            self._case = self.point.case()
        return self._case

    def track_saved_bytes(self, *args):
        return saved_bytes(self.impl, self.case)

    track_saved_bytes.unit = "bytes"

    def track_peak_bytes(self, *args):
        return peak_bytes(self.impl, self.case)

    track_peak_bytes.unit = "bytes"

    def track_flops(self, *args):
        return self.point.flops

    track_flops.unit = "FLOP"

    def track_gflops(self, *args):
        p = self.point
        seconds = timing.time_fn(step_fn(self.impl, self.case, backward=True), device=p.device,
                                 repeats=TIMING_REPEATS, warmup=1)
        return p.flops / statistics.median(seconds) / 1e9

    track_gflops.unit = "GFLOP/s"

    def track_max_rel_error(self, *args):
        return max_rel_error(self.impl, self.point, case=self.case)[0]

    track_max_rel_error.unit = "relative"


class TimeConfigStep(TimeStep):
    """TimeStep in nn.LSTM's other configurations (2 layers, bidirectional, a projection, variable
    lengths, each beside the plain LSTM)."""

    params = CONFIG_PARAMS
    param_names = CONFIG_PARAM_NAMES


class TrackConfigStep(TrackStep):
    """TrackStep over CONFIG_GRID."""

    params = CONFIG_PARAMS
    param_names = CONFIG_PARAM_NAMES


# Small CPU points whose instructions are counted. One by default: a count is one valgrind
# process that imports torch under callgrind (~1 min on a quiet 2-core EPYC; 271 s at load 8.7,
# `count_instructions(Point("vectorised", 5, 1, 8, 8))`), and three of them put `asv run --quick`
# over 5 minutes (2 min 51 s without them). $LSTM_BENCH_INSTRUCTION_IMPLS (comma-separated, e.g.
# "vectorised,autograd,nn_lstm") counts others at the same size; "none" counts nothing.
INSTRUCTION_SIZE = (10, 1, 64)  # T, B, H
INSTRUCTION_IMPLS = [name for name in os.environ.get("LSTM_BENCH_INSTRUCTION_IMPLS", "vectorised").split(",")
                     if name.strip() and name.strip() != "none"]
INSTRUCTION_POINTS = [(impl.strip(), *INSTRUCTION_SIZE) for impl in INSTRUCTION_IMPLS]


class TrackInstructions:
    """CPU instructions per forward+backward call (median of 3 callgrind collections, one thread).

    What was counted (the backend; the C library's -march under callgrind) is printed to stderr
    (`asv run --show-stderr`)."""

    params = [[f"{impl}-T{T}-B{B}-H{H}" for impl, T, B, H in INSTRUCTION_POINTS]]
    param_names = ["point"]
    timeout = 900.0

    def setup(self, name):
        impl, T, B, H = next(p for p in INSTRUCTION_POINTS if f"{p[0]}-T{p[1]}-B{p[2]}-H{p[3]}" == name)
        self.point = Point(impl, T, B, H, H, "cpu", "float32")
        reason = instructions.unavailable_reason() or instructions.ineligible_reason(self.point) or skip_reason(self.point)
        if reason is not None:
            raise NotImplementedError(reason)

    def track_instructions(self, name):
        count = instructions.count_instructions(self.point)
        print(f"{name}: counted {count.counted}", file=sys.stderr)
        return count.per_call

    track_instructions.unit = "instructions"
