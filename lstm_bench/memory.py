"""Memory of one training step, counted from the allocator, not from the process RSS.

Both figures are allocation accounting over the step, relative to what was already
allocated when it started (the case, the weights, anything an implementation caches
across calls), after one untimed warm-up step so that such caches already exist:

- `saved_bytes`: bytes the forward half allocates and still holds when it returns,
  i.e. what is kept alive between forward and backward: the activations a path saves
  (its cache, or the tensors autograd saved), outputs included, because a manual path
  keeps its outputs inside its cache (vectorised's h_0..h_T). Each storage counts once,
  and views of the case's own tensors cost nothing, since no allocation happens.
- `peak_bytes`: the highest number of bytes held above that starting level at any
  moment of one forward+backward (saved activations + temporaries + gradients).

On CUDA both come from the caching allocator's counters (`torch.cuda.memory_allocated`,
`torch.cuda.max_memory_allocated` after `reset_peak_memory_stats`). On CPU they come
from the profiler's memory events (`profile_memory=True`): every allocation and free of
the CPU allocator, in time order, summed into a running total whose end value after
the forward is `saved_bytes` and whose maximum over the step is `peak_bytes`.
"""
from __future__ import annotations

import os
from typing import Any, Callable

# The profiler's kineto backend logs two lines to stderr per use ("profiler_start/stop");
# they would bury progress bars and asv's output. Read when kineto starts, so set before
# the first profile; the user's own setting wins.
os.environ.setdefault("KINETO_LOG_LEVEL", "6")

import torch  # noqa: E402

from .contract import Case
from .registry import Impl, get_impl


def _impl(impl: str | Impl) -> Impl:
    return get_impl(impl) if isinstance(impl, str) else impl


def _cpu_events(fn: Callable[[], Any]) -> tuple[Any, list[int]]:
    """Run `fn` under the profiler; its return value and the CPU allocations/frees in bytes, in time order."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = fn()
    events = [e for e in prof.profiler.kineto_results.events()
              if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU]
    events.sort(key=lambda e: e.start_ns())
    return out, [e.nbytes() for e in events]


def warm_profiler() -> None:
    """Pay the profiler's one-time start-up (about a second) now, not inside a measurement.

    asv's forkserver imports the suite once and forks per benchmark: called at import,
    every forked benchmark inherits a started profiler instead of starting its own.
    """
    _cpu_events(lambda: None)


def _running(nbytes: list[int]) -> tuple[int, int]:
    """(final, peak) of the running total of signed allocation sizes, starting at 0."""
    total = peak = 0
    for n in nbytes:
        total += n
        peak = max(peak, total)
    return total, peak


def _warm_up(impl: Impl, case: Case) -> None:
    forward, backward = impl.split()
    backward(case, forward(case))
    if case.device.type == "cuda":
        torch.cuda.synchronize(case.device)


def saved_bytes(impl: str | Impl, case: Case) -> int:
    """Bytes the forward half of `impl` keeps alive for the backward, for `case`.

    Raises NotImplementedError when the implementation has no forward/backward split.
    """
    impl = _impl(impl)
    impl.check_case(case)
    forward, _ = impl.split()
    _warm_up(impl, case)
    if case.device.type == "cuda":
        torch.cuda.synchronize(case.device)
        before = torch.cuda.memory_allocated(case.device)
        saved = forward(case)
        torch.cuda.synchronize(case.device)
        held = torch.cuda.memory_allocated(case.device) - before
        del saved
        return int(held)
    saved, nbytes = _cpu_events(lambda: forward(case))
    held, _ = _running(nbytes)
    del saved
    return int(held)


def peak_bytes(impl: str | Impl, case: Case) -> int:
    """Peak bytes allocated above the starting level during one forward+backward of `case`."""
    impl = _impl(impl)
    impl.check_case(case)
    forward, backward = impl.split()
    _warm_up(impl, case)
    if case.device.type == "cuda":
        torch.cuda.synchronize(case.device)
        torch.cuda.reset_peak_memory_stats(case.device)
        before = torch.cuda.memory_allocated(case.device)
        result = backward(case, forward(case))
        torch.cuda.synchronize(case.device)
        peak = torch.cuda.max_memory_allocated(case.device) - before
        del result
        return int(peak)
    result, nbytes = _cpu_events(lambda: backward(case, forward(case)))
    _, peak = _running(nbytes)
    del result
    return int(peak)
