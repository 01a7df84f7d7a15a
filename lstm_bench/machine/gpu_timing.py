"""Timing on a GPU: CUDA events around each call, an L2 flush outside the window, CUDA-graph replays,
the empty-launch floor, and the backward's phases.

Eager timing (`event_times`, what `timing.time_fn` runs on CUDA): for each timed call,
    [flush]  start.record()  call()  end.record()
and one synchronisation per repeat; a repeat's figure is the sum of its calls' event
intervals over their number. The flush is a memset of `gpu.l2_flush_bytes` bytes enqueued
before the start event, so it runs before the window opens and the call finds a cold L2:
the method of `triton.testing.do_bench` (triton/testing.py: `cache.zero_()` before each
`start_event[i].record()`) and of NVIDIA nvbench's cold measurements (an L2-sized
cudaMemsetAsync before each sample). `warm` mode leaves the cache as the last call left it
(as nvbench's batch measurements, which launch back to back without a flush).
The mode comes from $LSTM_BENCH_CUDA_CACHE ("cold", the default, or "warm") unless a caller
passes one, and is recorded with every point (`GpuFigures.cache`).

Graph mode (`graph_times`): the forward+backward captured once into a `torch.cuda.CUDAGraph`
(after warm-up calls on a side stream, as torch's whole-network capture recipe does) and its
replays timed like eager calls. Eager minus graph is the per-launch CPU overhead of the
step (TritonBench's CUDA-graph mode). A kernel that cannot be captured (a host
synchronisation, a CPU tensor, any call the capture refuses) gets the reason, never an exception.

Launch floor (`empty_launch_seconds`): seconds between back-to-back launches, from Python,
of an empty kernel (`torch.cuda._sleep(0)`), timed with events over 200 launches. An LSTM
launched step by step runs at least 2 T L D launches per forward+backward (one per step per
layer and direction, each way), so it cannot beat `sequential_launches(...) x launch`;
a fused or persistent kernel (cuDNN's persistent RNN) launches fewer and may.

Not done, and why: nvbench holds the stream with a blocking kernel so that all launches
are queued before the start event fires; that would hide exactly the launch latency a
step-by-step LSTM pays, which graph mode measures instead. nvbench's stopping rule
(relative noise below 0.5 %) is replaced by the harness's fixed repeats, which `compare`'s
exact tests need.
"""
from __future__ import annotations

import gc
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from ..core.values import from_env
from .gpu import CACHE_MODES, ClockSampler, l2_flush_bytes

CACHE_ENV = "LSTM_BENCH_CUDA_CACHE"
LAUNCHES = 200  # empty launches per repeat of the launch-latency measurement
GRAPH_WARMUP = 3  # eager calls on a side stream before capture (torch's recipe uses 3)


def _parse_cache(text: str) -> str:
    text = text.strip().lower()
    if text not in CACHE_MODES:
        raise ValueError(f"expected one of {', '.join(CACHE_MODES)}, got {text!r}")
    return text


def cache_mode(cache: str | None = None) -> str:
    """`cache` checked, else $LSTM_BENCH_CUDA_CACHE, else "cold"; ValueError naming the bad value."""
    if cache is not None:
        return _parse_cache(cache)
    return from_env(CACHE_ENV, _parse_cache, "cold")


class L2Flush:
    """A device buffer of the L2's size, overwritten by one memset per call (`zero_`)."""

    def __init__(self, device: str | torch.device, nbytes: int | None = None) -> None:
        dev = torch.device(device)
        self.nbytes = nbytes if nbytes is not None else l2_flush_bytes(torch.cuda.get_device_properties(dev))
        self.buffer = torch.empty(self.nbytes, dtype=torch.int8, device=dev)

    def __call__(self) -> None:
        self.buffer.zero_()


def event_times(call: Callable[..., Any], *, repeats: int, number: int = 1, flush: Callable[[], None] | None = None,
                prepare: Callable[[], Any] | None = None, clock: ClockSampler | None = None,
                cuda: Any = None) -> list[float]:
    """Seconds per call, one figure per repeat (the mean of `number` event-timed calls).

    Per call: `prepare()` (untimed; its result is `call`'s argument), `flush()`, start event,
    `call`, end event; the events of a repeat are read after one synchronisation, and
    `clock.sample()` follows, outside every window. `cuda` is torch.cuda (a fake in tests)."""
    cuda = cuda or torch.cuda
    times = []
    for _ in range(repeats):
        pairs = []
        for _ in range(number):
            arg = prepare() if prepare is not None else None
            if flush is not None:
                flush()
            start, end = cuda.Event(enable_timing=True), cuda.Event(enable_timing=True)
            start.record()
            call(arg) if prepare is not None else call()
            end.record()
            pairs.append((start, end))
        pairs[-1][1].synchronize()
        times.append(sum(s.elapsed_time(e) for s, e in pairs) / 1e3 / number)
        if clock is not None:
            clock.sample()
    return times


def host_times(call: Callable[..., Any], *, repeats: int, prepare: Callable[[], Any] | None = None) -> list[float]:
    """`event_times` on the CPU: `time.perf_counter` around each call, `prepare()` outside."""
    times = []
    for _ in range(repeats):
        arg = prepare() if prepare is not None else None
        t0 = time.perf_counter()
        call(arg) if prepare is not None else call()
        times.append(time.perf_counter() - t0)
    return times


def capture(call: Callable[[], Any], *, cuda: Any = None, warmup: int = GRAPH_WARMUP) -> tuple[Any, str]:
    """(a CUDA graph of one `call`, "") or (None, why it could not be captured)."""
    cuda = cuda or torch.cuda
    try:
        side = cuda.Stream()
        side.wait_stream(cuda.current_stream())
        with cuda.stream(side):
            for _ in range(warmup):
                call()
        cuda.current_stream().wait_stream(side)
        graph = cuda.CUDAGraph()
        with cuda.graph(graph):
            call()
        return graph, ""
    except Exception as err:  # any failure of any kernel under capture is a reason, not a crash
        try:
            cuda.synchronize()
        except Exception:  # the context may refuse until the failed capture is gone
            pass
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        return None, f"cannot be captured in a CUDA graph: {type(err).__name__}: {first}"[:300]


def graph_times(call: Callable[[], Any], *, repeats: int, warmup: int = 1, flush: Callable[[], None] | None = None,
                clock: ClockSampler | None = None, cuda: Any = None) -> tuple[list[float], str]:
    """(seconds per replay of `call` captured once, "") or ([], why it could not be captured)."""
    graph, reason = capture(call, cuda=cuda)
    if graph is None:
        return [], reason
    try:
        for _ in range(warmup):
            graph.replay()
        return event_times(graph.replay, repeats=repeats, flush=flush, clock=clock, cuda=cuda), ""
    except Exception as err:  # a replay that fails is reported like a failed capture
        return [], f"graph replay failed: {type(err).__name__}: {str(err).strip()[:200]}"
    finally:
        del graph


def empty_launch_seconds(*, cuda: Any = None, launches: int = LAUNCHES, repeats: int = 5) -> float:
    """Median seconds per launch of an empty kernel (`cuda._sleep(0)`), launched back to back from Python."""
    cuda = cuda or torch.cuda

    def burst() -> None:
        for _ in range(launches):
            cuda._sleep(0)
    burst()  # first launch loads the kernel
    return statistics.median(event_times(burst, repeats=repeats, cuda=cuda)) / launches


_LAUNCH_S: dict[int, float] = {}


def launch_seconds(device: str | torch.device) -> float:
    """`empty_launch_seconds` of `device`, measured once per process."""
    dev = torch.device(device)
    index = torch.cuda.current_device() if dev.index is None else dev.index
    if index not in _LAUNCH_S:
        with torch.cuda.device(index):
            _LAUNCH_S[index] = empty_launch_seconds()
    return _LAUNCH_S[index]


def sequential_launches(T: int, num_layers: int = 1, bidirectional: bool = False, *, backward: bool = True) -> int:
    """The fewest launches of an LSTM run step by step: T L D for the forward, twice that with the backward."""
    steps = T * num_layers * (2 if bidirectional else 1)
    return 2 * steps if backward else steps


@dataclass(frozen=True)
class GpuFigures:
    """What a CUDA point adds to its `Measurement` (JSON: `to_json` / `from_json`).

    cache                 "cold" (L2 flushed before each timed call) or "warm"
    l2_flush_bytes        bytes overwritten before each timed call; 0 when warm
    graph_s               forward+backward per CUDA-graph replay, one per repeat; empty with `graph_reason`
    backward_s            the backward alone (the forward run untimed before each call)
    backward_data_s       the backward's data half (dx, dh0, dc0 and the recurrence), where the
                          kernel exposes it (`phase_halves`, or an autograd graph); else empty
    backward_weights_s    the weight half, where the kernel exposes it (`phase_halves`); empty with
                          `phases_reason` otherwise (WEIGHTS_DERIVED: the report shows bwd - bwd-data)
    launch_s              seconds per empty kernel launch (`empty_launch_seconds`)
    clock                 `ClockSampler.to_json()`: SM clock and temperature per repeat, throttled count
    """

    cache: str
    l2_flush_bytes: int
    graph_s: tuple[float, ...] = ()
    graph_reason: str = ""
    backward_s: tuple[float, ...] = ()
    backward_data_s: tuple[float, ...] = ()
    backward_weights_s: tuple[float, ...] = ()
    phases_reason: str = ""
    launch_s: float | None = None
    clock: dict = field(default_factory=dict)

    def launch_floor_s(self, T: int, num_layers: int = 1, bidirectional: bool = False) -> float | None:
        """The sequential-launch floor of a forward+backward at this point, or None."""
        if self.launch_s is None:
            return None
        return sequential_launches(T, num_layers, bidirectional) * self.launch_s

    def to_json(self) -> dict:
        return {"cache": self.cache, "l2_flush_bytes": self.l2_flush_bytes, "graph_s": list(self.graph_s),
                "graph_reason": self.graph_reason, "backward_s": list(self.backward_s),
                "backward_data_s": list(self.backward_data_s), "backward_weights_s": list(self.backward_weights_s),
                "phases_reason": self.phases_reason, "launch_s": self.launch_s, "clock": dict(self.clock)}

    @classmethod
    def from_json(cls, d: object) -> "GpuFigures":
        if not isinstance(d, dict) or d.get("cache") not in CACHE_MODES:
            raise ValueError(f"measurement.gpu must be an object with cache 'cold' or 'warm', got {d!r}")
        seconds = {k: tuple(float(x) for x in d.get(k) or ()) for k in
                   ("graph_s", "backward_s", "backward_data_s", "backward_weights_s")}
        if any(not x > 0 for v in seconds.values() for x in v):
            raise ValueError(f"measurement.gpu: every time must be a positive number of seconds, got {seconds}")
        return cls(d["cache"], int(d.get("l2_flush_bytes") or 0), graph_reason=str(d.get("graph_reason") or ""),
                   phases_reason=str(d.get("phases_reason") or ""),
                   launch_s=float(d["launch_s"]) if d.get("launch_s") is not None else None,
                   clock=dict(d.get("clock") or {}), **seconds)


def _gc_off(fn: Callable[[], Any]) -> Any:
    enabled = gc.isenabled()
    gc.disable()
    try:
        return fn()
    finally:
        if enabled:
            gc.enable()


def phase_halves(impl: Any) -> tuple[Callable, Callable] | None:
    """(backward_data, backward_weights) when the implementation's backward half exposes them as
    `backward.data(case, saved) -> partial` and `backward.weights(case, saved, partial)`, else None."""
    backward = getattr(impl, "backward", None)
    data, weights = getattr(backward, "data", None), getattr(backward, "weights", None)
    return (data, weights) if callable(data) and callable(weights) else None


def is_autograd_graph(saved: Any) -> bool:
    """Whether a forward half returned an autograd graph (`impls.autograd.Graph`: inputs x, h0, c0, then
    the weights; output, h_n, c_n), whose data half autograd can run alone."""
    return all(hasattr(saved, a) for a in ("inputs", "output", "h_n", "c_n")) and len(saved.inputs) >= 3


def autograd_data_half(case: Any, graph: Any) -> tuple[torch.Tensor, ...]:
    """dL/d(x, h0, c0) alone: `torch.autograd.grad` asked for the three states only, so every node
    computes just the outputs that lead to them (cuDNN's RNN backward gets the output mask
    [x, hx, cx, no weights] and runs cudnnRNNBackwardData only)."""
    return torch.autograd.grad((graph.output, graph.h_n, graph.c_n), tuple(graph.inputs[:3]),
                               (case.d_output, case.d_h_n, case.d_c_n))


WEIGHTS_DERIVED = ("the weight half is not timed alone: autograd computes weight gradients only together "
                   "with the data path, so bwd-wt is backward - backward-data")


def phase_times(impl: Any, case: Any, *, repeats: int, flush: Callable[[], None] | None = None,
                cuda: Any = None) -> tuple[dict[str, list[float]], str]:
    """({"backward": [...], "backward_data": [...], "backward_weights": [...]}, reason) for `impl` on `case`.

    Each phase is timed alone, what comes before it run untimed (before the start event on
    CUDA, outside perf_counter on the CPU). Without halves: {} and the reason. Halves with
    `backward.data` and `backward.weights` (`phase_halves`): all three. A forward half that
    returns an autograd graph: the backward and its data half (`autograd_data_half`), and
    `WEIGHTS_DERIVED` as the reason. Other halves: the backward alone, and the reason."""
    if impl.forward is None or impl.backward is None:
        return {}, f"implementation {impl.name!r} registered no forward/backward halves"
    forward, backward = impl.forward, impl.backward
    on_cuda = case.device.type == "cuda"

    def timed(call, prepare):
        if on_cuda:
            return _gc_off(lambda: event_times(call, repeats=repeats, flush=flush, prepare=prepare, cuda=cuda))
        return _gc_off(lambda: host_times(call, repeats=repeats, prepare=prepare))

    out = {"backward": timed(lambda saved: backward(case, saved), lambda: forward(case))}
    halves = phase_halves(impl)
    if halves is None:
        if is_autograd_graph(forward(case)):
            out["backward_data"] = timed(lambda graph: autograd_data_half(case, graph), lambda: forward(case))
            return out, WEIGHTS_DERIVED
        return out, (f"implementation {impl.name!r} does not expose backward.data and backward.weights, so the "
                     f"backward's data and weight halves are not timed apart")
    data, weights = halves

    def after_data():
        saved = forward(case)
        return saved, data(case, saved)
    out["backward_data"] = timed(lambda saved: data(case, saved), lambda: forward(case))
    out["backward_weights"] = timed(lambda pair: weights(case, *pair), after_data)
    return out, ""


def measure_gpu(impl: Any, case: Any, *, repeats: int, warmup: int, clock: ClockSampler | None = None,
                cache: str | None = None) -> GpuFigures:
    """The CUDA-only figures of `impl` on `case` (`GpuFigures`): graph replays, phases, launch latency, clocks."""
    mode = cache_mode(cache)
    flush = L2Flush(case.device) if mode == "cold" else None
    if impl.forward is not None and impl.backward is not None:
        forward, backward = impl.forward, impl.backward
        step = lambda: backward(case, forward(case))  # noqa: E731 (no synchronisation: it is captured)
    else:
        step = lambda: impl.fn(case)  # noqa: E731
    graph_s, graph_reason = graph_times(step, repeats=repeats, warmup=warmup, flush=flush, clock=clock)
    torch.cuda.synchronize(case.device)
    torch.cuda.empty_cache()  # the graph's private pool
    phases, phases_reason = phase_times(impl, case, repeats=repeats, flush=flush)
    return GpuFigures(mode, flush.nbytes if flush is not None else 0, tuple(graph_s), graph_reason,
                      tuple(phases.get("backward", ())), tuple(phases.get("backward_data", ())),
                      tuple(phases.get("backward_weights", ())), phases_reason, launch_seconds(case.device),
                      clock.to_json() if clock is not None else {})


__all__ = ["CACHE_ENV", "GpuFigures", "L2Flush", "WEIGHTS_DERIVED", "autograd_data_half", "cache_mode", "capture",
           "empty_launch_seconds", "event_times", "graph_times", "host_times", "is_autograd_graph", "launch_seconds",
           "measure_gpu", "phase_halves", "phase_times", "sequential_launches"]
