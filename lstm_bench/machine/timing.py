"""The one measuring routine: thread count, what a timed call is, and the timing loop.

asv and pytest-benchmark bring their own statistics loops; they time the callables
made here (`step_fn`), which end with a device synchronisation on CUDA, under the
thread count fixed here. `time_fn` is the loop used by `measure_point` and the CLI;
on CUDA it is `lstm_bench.machine.gpu_timing.event_times`: CUDA events around each call,
with the L2 flushed before each timed call outside the window ("cold", the default) or
not ("warm"; $LSTM_BENCH_CUDA_CACHE or `cache=`).
"""
from __future__ import annotations

import functools
import gc
import math
import os
import time
from typing import Any, Callable

import torch

from ..core.devices import check_device
from ..core.values import check_int, check_positive_int, from_env, parse_int
from . import load
from .gpu import ClockSampler
from .gpu_timing import L2Flush, cache_mode, event_times

THREADS_ENV = "LSTM_BENCH_THREADS"
MAX_DEFAULT_THREADS = 4


def cpus_available() -> int:
    """The CPUs this process may run on (its affinity mask), else the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_for(cpus: int, others: float | None) -> int:
    """The thread count for `cpus` CPUs of which other processes want `others` (None: unknown,
    taken as none): the CPUs left free, rounded to the nearest, at least 1, at most 4.

    Why not every CPU: an OpenMP parallel region ends at a barrier, so one of our threads
    descheduled for a neighbour stalls the others for a scheduler time slice (milliseconds)
    at every region. Beside one single-threaded busy loop on 2 CPUs, nn_lstm's forward+backward
    at T=100 B=1 I=H=64 took 85-156 ms with 2 threads and 1.4-1.7 ms with 1; beside a 2-thread
    matmul loop, 224-1922 ms and 1.6-9.7 ms (2-core AMD EPYC, load average 9-15 from other
    jobs; docs/measurement.md has the commands)."""
    free = cpus - (others or 0.0)
    return max(1, min(MAX_DEFAULT_THREADS, cpus, math.floor(free + 0.5)))


@functools.lru_cache(maxsize=1)
def _threads_by_demand() -> int:
    # Sampled once per process (0.1 s): a sweep keeps the count it started with, as its header says.
    return threads_for(cpus_available(), load.other_demand())


def default_threads() -> int:
    """$LSTM_BENCH_THREADS if set, else the CPUs not busy with other processes when this
    process first asked (`threads_for`: at least 1, at most 4).

    Capped at 4 so that results from bigger machines stay comparable with small ones,
    and fixed (not torch's default, which follows the machine's load-time settings).
    A loaded machine gets fewer threads than a quiet one: compare results recorded with
    the same thread count (the results header holds it), or pin it with --threads.
    """
    n = from_env(THREADS_ENV, parse_int, None)
    if n is not None:
        return n
    return _threads_by_demand()


def set_threads(n: int | None = None) -> int:
    """Fix torch's intra-op thread count to `n` (default: `default_threads()`) and return it."""
    n = default_threads() if n is None else check_positive_int("threads", n)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return torch.get_num_threads()


def synchronize(device: str | torch.device) -> None:
    """Wait for all queued work on `device` (a no-op on CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def step_fn(impl: Any, case: Any, *, backward: bool) -> Callable[[], object]:
    """The callable every tool times: the forward half alone, or forward+backward.

    `impl` is an `Impl`; its `split()` halves are called directly so that the timed
    region holds no validation. On CUDA the call ends with a synchronisation, so a
    host-side timer sees the kernels' time, not the launch time.
    """
    forward, backward_half = impl.split()
    device = case.device

    if backward:
        def call() -> object:
            out = backward_half(case, forward(case))
            synchronize(device)
            return out
    else:
        def call() -> object:
            out = forward(case)
            synchronize(device)
            return out
    return call


def time_fn(fn: Callable[[], object], *, device: str, repeats: int, warmup: int, number: int = 1,
            cache: str | None = None, clock: ClockSampler | None = None) -> list[float]:
    """Seconds per call of `fn`, one figure per repeat (each the mean of `number` calls).

    `warmup` untimed calls first (cuDNN chooses algorithms and allocators fill their
    caches on first use). On CUDA each call is bracketed by CUDA events; in `cache`
    mode "cold" (default: $LSTM_BENCH_CUDA_CACHE, else cold) an L2-sized buffer is
    overwritten before each call, outside the events (`gpu_timing.event_times`), and
    `clock` (a `gpu.ClockSampler`) reads the SM clock after each repeat. On CPU it is
    `time.perf_counter` and `cache`, `clock` do nothing. The garbage collector is off
    inside the timed region.
    """
    dev = check_device(device)
    repeats = check_int("repeats", repeats, 1)
    warmup = check_int("warmup", warmup, 0)
    number = check_int("number", number, 1)
    # the argument is checked everywhere; $LSTM_BENCH_CUDA_CACHE is read only where it applies
    mode = cache_mode(cache) if cache is not None or dev.type == "cuda" else None
    if not callable(fn):
        raise ValueError(f"fn must be callable, got {type(fn).__name__}")
    for _ in range(warmup):
        fn()
    flush = L2Flush(dev) if dev.type == "cuda" and mode == "cold" else None
    times: list[float] = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
            times = event_times(fn, repeats=repeats, number=number, flush=flush, clock=clock)
        else:
            for _ in range(repeats):
                t0 = time.perf_counter()
                for _ in range(number):
                    fn()
                times.append((time.perf_counter() - t0) / number)
    finally:
        if gc_was_enabled:
            gc.enable()
    return times
