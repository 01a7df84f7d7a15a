"""Memory of one training step, counted from the allocator, not from the process RSS.

Both figures are allocation accounting over the step, relative to what was already
allocated when it started (the case, the weights, anything an implementation caches
across calls), after one untimed warm-up step so that such caches already exist:

- `saved_bytes`: bytes the forward half allocates and still holds when it returns,
  i.e. what is kept alive between forward and backward: the activations an implementation saves
  (its cache, or the tensors autograd saved), outputs included, because a manual
  implementation keeps its outputs inside its cache (vectorised's h_0..h_T). Each storage counts once,
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

from ..core.contract import Case
from ..core.registry import Impl, get_impl
from .timing import step_fn, synchronize


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


def _allocated_during(fn: Callable[[], Any], device: torch.device) -> tuple[int, int]:
    """(bytes still held when `fn` returns, peak bytes held while it ran), above the level at its start.

    Measured while `fn`'s return value is alive, so what it returns (a forward's saved
    activations) counts as held."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        out = fn()
        synchronize(device)
        held = torch.cuda.memory_allocated(device) - before
        peak = torch.cuda.max_memory_allocated(device) - before
        del out
        return int(held), int(peak)
    out, nbytes = _cpu_events(fn)
    del out
    return _running(nbytes)


def _prepared(impl: str | Impl, case: Case) -> tuple[Callable, Callable]:
    """The halves of `impl`, after one untimed step (caches an implementation keeps across calls exist by now)."""
    impl = _impl(impl)
    impl.check_case(case)
    step_fn(impl, case, backward=True)()  # ends in a synchronisation on CUDA
    return impl.split()


def saved_bytes(impl: str | Impl, case: Case) -> int:
    """Bytes the forward half of `impl` keeps alive for the backward, for `case`.

    Raises NotImplementedError when the implementation has no forward/backward split.
    """
    forward, _ = _prepared(impl, case)
    return _allocated_during(lambda: forward(case), case.device)[0]


def peak_bytes(impl: str | Impl, case: Case) -> int:
    """Peak bytes allocated above the starting level during one forward+backward of `case`."""
    forward, backward = _prepared(impl, case)
    return _allocated_during(lambda: backward(case, forward(case)), case.device)[1]
