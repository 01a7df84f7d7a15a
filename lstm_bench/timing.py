"""The one measuring routine: thread count, what a timed call is, and the timing loop.

asv and pytest-benchmark bring their own statistics loops; they time the callables
made here (`step_fn`), which end with a device synchronisation on CUDA, under the
thread count fixed here. `time_fn` is the loop used by `measure_point` and the CLI.
"""
from __future__ import annotations

import gc
import os
import time
from typing import Any, Callable

import torch

from .devices import check_device

THREADS_ENV = "LSTM_BENCH_THREADS"
MAX_DEFAULT_THREADS = 4


def default_threads() -> int:
    """$LSTM_BENCH_THREADS if set, else min(4, CPUs this process may run on).

    Capped at 4 so that results from bigger machines stay comparable with small ones,
    and fixed (not torch's default, which follows the machine's load-time settings).
    """
    env = os.environ.get(THREADS_ENV)
    if env:
        try:
            n = int(env)
        except ValueError:
            raise ValueError(f"${THREADS_ENV} must be a positive int, got {env!r}") from None
        if n <= 0:
            raise ValueError(f"${THREADS_ENV} must be a positive int, got {env!r}")
        return n
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(MAX_DEFAULT_THREADS, cpus))


def set_threads(n: int | None = None) -> int:
    """Fix torch's intra-op thread count to `n` (default: `default_threads()`) and return it."""
    if n is None:
        n = default_threads()
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ValueError(f"threads must be a positive int, got {n!r}")
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


def _check_count(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def time_fn(fn: Callable[[], object], *, device: str, repeats: int, warmup: int, number: int = 1) -> list[float]:
    """Seconds per call of `fn`, one figure per repeat (each the mean of `number` calls).

    `warmup` untimed calls first (cuDNN chooses algorithms and allocators fill their
    caches on first use). On CUDA the timed region is bracketed by CUDA events after a
    synchronisation, so asynchronous launches are not mistaken for work done; on CPU
    it is `time.perf_counter`. The garbage collector is off inside the timed region.
    """
    dev = check_device(device)
    repeats = _check_count("repeats", repeats, 1)
    warmup = _check_count("warmup", warmup, 0)
    number = _check_count("number", number, 1)
    if not callable(fn):
        raise ValueError(f"fn must be callable, got {type(fn).__name__}")
    for _ in range(warmup):
        fn()
    times: list[float] = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                for _ in range(number):
                    fn()
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end) / 1e3 / number)
            else:
                t0 = time.perf_counter()
                for _ in range(number):
                    fn()
                times.append((time.perf_counter() - t0) / number)
    finally:
        if gc_was_enabled:
            gc.enable()
    return times
