"""How the vectorised implementation runs a plain layer: its route, the same in every process.

A route is (the step GEMM, the loop): "mkl"/"blas"/"cublas" (torch's BLAS) or "onednn"
(`gemm.py`, float32 only), and one of
- `fused-loop`: the whole recurrence in one compiled C call (`fused.py`, `fused.c`), the step GEMM
  being torch's own BLAS. No Python per step: the small-size route, and float64's.
- `fused-cell`: a Python loop whose step GEMM is oneDNN's and whose elementwise work is one
  compiled C call a step.
- `torch-ops`: the same loop in torch operations only (the route without a C compiler, on
  CUDA, and for layers with a projection or variable lengths, which the C kernels do not do).

The route is a deterministic function of the machine, the shape and the settings (issue 20):
1. `using_route(gemm, loop)` (tests, studies), else `$LSTM_BENCH_VECTORISED_ROUTE`
   (e.g. "onednn-gemm+fused-cell"; "rule" = the fixed rule below, never a probe), wherever it can run;
2. below B * H * 4H = `PROBE_MIN_MACS` multiply-adds a step, or with one candidate: the fixed
   rule (`default_route`): the fused loop below `ONEDNN_MIN_MACS`, oneDNN's GEMM with the
   fused cell from there on;
3. above it: the decision stored for this machine, shape and candidates (`decisions.py`, in the
   harness's cache folder), else the probe's, stored for every later process.
The probe (`probe`) times the routes on short synthetic sequences of the same (B, H): the
cost per step, from 2- and 8-step calls, 15 interleaved repeats, minima, so that some calls
land in a quiet slice of a shared machine; the cheapest replaces the default if it costs at
most 0.9 of it and the figures are reliable (each run's median within 1.5x of its minimum).
Measured on an AMD EPYC: docs/vectorised.md.
"""
from __future__ import annotations

import contextlib
import os
import time
from typing import Callable, Iterator

import torch

from . import decisions, fused, gemm

# step(route, x, h0, c0, weight_ih, weight_hh, bias, d_output, d_h_n, d_c_n): one forward+backward
Step = Callable[..., object]

FUSED_LOOP, FUSED_CELL, TORCH_OPS = "fused-loop", "fused-cell", "torch-ops"
ROUTES = (FUSED_LOOP, FUSED_CELL, TORCH_OPS)
PROBE_MIN_MACS = 1 << 18  # B * H * 4H of the step GEMM below which no probe is run
ONEDNN_MIN_MACS = 1 << 20  # from here on, oneDNN's step GEMM is the default (no reliable probe)
PROBE_MARGIN = 0.9  # the probe overrides the default only with a route at most this fraction of its cost
PROBE_NOISE = 1.5  # a probe whose median run is above this multiple of its minimum is not trusted
PROBE_STEPS = (2, 8)  # the probe's two sequence lengths
ROUTE_ENV = "LSTM_BENCH_VECTORISED_ROUTE"  # e.g. "onednn-gemm+fused-cell": skip the probe
RULE = "rule"  # $LSTM_BENCH_VECTORISED_ROUTE=rule: the fixed rule (`default_route`) at every size

_chosen: dict[tuple, tuple[str, str]] = {}  # (device type, dtype, B, H, threads) -> (gemm, loop)
_probe_log: list[dict] = []
_forced: list[tuple[str, str]] = []  # innermost `using_route` last
_clock = time.perf_counter  # the probe's clock (a test replaces it)


def available_routes(device: torch.device, dtype: torch.dtype) -> list[tuple[str, str]]:
    """Every (gemm, loop) pair that can run for `device` and `dtype` here; the default (no probe) first."""
    blas = gemm.blas_name(device)
    if device.type != "cpu":
        return [(blas, TORCH_OPS)]
    have_c = fused.supports_dtype(dtype) and fused.library() is not None
    dnn = gemm.onednn_status(dtype, device)[0]
    routes = [(blas, FUSED_LOOP)] if have_c else []
    routes.append((blas, TORCH_OPS))
    if dnn:
        routes += [("onednn", FUSED_CELL)] if have_c else []
        routes.append(("onednn", TORCH_OPS))
    return routes


def _candidates(routes: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The routes worth probing: with the C kernels, their two routes (the torch-ops loop does
    the same work in more calls); without them, the torch-ops loop on each GEMM."""
    fused_routes = [r for r in routes if r[1] != TORCH_OPS]
    return fused_routes or routes


@contextlib.contextmanager
def using_route(gemm_name: str, loop: str) -> Iterator[None]:
    """Run every call inside the block on route (gemm_name, loop), e.g. ("onednn", "fused-cell"),
    instead of the chosen one (tests and the per-technique study). A plain layer for which that
    route cannot run raises ValueError; a layer with a projection or variable lengths keeps the
    torch-ops loop on torch's BLAS whatever is forced (`vectorised._route`)."""
    if loop not in ROUTES:
        raise ValueError(f"unknown loop {loop!r}; expected one of {ROUTES}")
    _forced.append((gemm_name, loop))
    try:
        yield
    finally:
        _forced.pop()


def choose_route(device: torch.device, dtype: torch.dtype, B: int, H: int, step: Step) -> tuple[str, str]:
    """The (gemm, loop) to run for this device, dtype and step size (module docstring: forced,
    pinned, fixed rule, stored decision, probe). `step` runs one forward+backward of a plain
    layer on a given route (what `probe` times)."""
    if _forced:
        return resolve(_forced[-1], device, dtype, B, H, step)
    key = (device.type, dtype, B, H, torch.get_num_threads())  # threads: part of the machine identity too
    pinned = os.environ.get(ROUTE_ENV)
    if pinned and pinned != RULE:
        gemm_name, sep, loop = pinned.partition("-gemm+")
        if not sep:
            raise ValueError(f"${ROUTE_ENV} must look like 'onednn-gemm+fused-cell' or be {RULE!r}, got {pinned!r}")
        if (gemm_name, loop) in available_routes(device, dtype):
            return gemm_name, loop  # where it cannot run (float64 on oneDNN), the choice below holds
    if pinned == RULE:
        return default_route(_candidates(available_routes(device, dtype)), B, H)
    if key not in _chosen:
        candidates = _candidates(available_routes(device, dtype))
        default = default_route(candidates, B, H)
        if len(candidates) > 1 and B * H * 4 * H >= PROBE_MIN_MACS:
            _chosen[key] = _decide(device, dtype, B, H, candidates, step, default)
        else:
            _chosen[key] = default
    return _chosen[key]


def _decide(device: torch.device, dtype: torch.dtype, B: int, H: int, candidates: list[tuple[str, str]],
            step: Step, default: tuple[str, str]) -> tuple[str, str]:
    """The stored decision for this machine and shape, else the probe's, stored; the fixed rule
    where the decision cannot be stored (so that every process still runs the same route)."""
    k = decisions.key(device, dtype, B, H, candidates)
    stored = decisions.lookup(k, candidates)
    if stored is not None:
        return stored
    chosen = probe(device, dtype, B, H, candidates, step, default=default)
    kept = decisions.keep(k, chosen, candidates, _probe_log[-1])
    _probe_log[-1]["kept"] = decisions.route_name(kept) if kept else f"not stored ({decisions.path()} unwritable)"
    return kept if kept is not None else default


def default_route(candidates: list[tuple[str, str]], B: int, H: int) -> tuple[str, str]:
    """The route taken without a (reliable) measurement: oneDNN's step GEMM with the fused cell
    from B * H * 4H >= `ONEDNN_MIN_MACS` on (where a oneDNN call's ~15 us from Python is paid
    back), else the first candidate (the fused C loop where it can run). Measured on an AMD
    EPYC: see docs/vectorised.md."""
    dnn = ("onednn", FUSED_CELL) if ("onednn", FUSED_CELL) in candidates else ("onednn", TORCH_OPS)
    if dnn in candidates and B * H * 4 * H >= ONEDNN_MIN_MACS:
        return dnn
    return candidates[0]


def probe(device: torch.device, dtype: torch.dtype, B: int, H: int,
          candidates: list[tuple[str, str]], step: Step, *, default: tuple[str, str] | None = None,
          steps: tuple[int, int] = PROBE_STEPS, repeats: int = 15) -> tuple[str, str]:
    """Measure each candidate's cost per step at (B, H) and return the route to keep: the
    cheapest if it costs at most `PROBE_MARGIN` of `default`'s, else `default` (the first
    candidate if None). If the machine was too busy for the figures to mean anything (a run's
    median above `PROBE_NOISE` times its minimum, or a non-positive cost per step), `default`.

    Each candidate's forward+backward runs on synthetic sequences of `steps[0]` and
    `steps[1]` steps, all interleaved, `repeats` times; the cost per step is the difference
    of the two minima over the difference of the lengths, so fixed costs (a call's set-up,
    the first call's GEMM start-up) do not decide a route that will mostly run long
    sequences. Minima, not medians: on a shared machine a repeat is only ever slowed by
    others' load, and short calls give it more chances to land in a quiet slice.
    Logged in `probe_log()`."""
    start = _clock()
    g = torch.Generator().manual_seed(0)
    rnd = lambda *s: (torch.rand(*s, generator=g, dtype=torch.float64) - 0.5).to(dtype)  # noqa: E731
    n = max(steps)
    x, h0, c0 = rnd(n, B, H), rnd(B, H), rnd(B, H)
    w_ih, w_hh, bias = rnd(4 * H, H), rnd(4 * H, H) / H ** 0.5, rnd(4 * H)
    d_out, d_hn, d_cn = rnd(n, B, H), rnd(B, H), rnd(B, H)

    def call(route, T):
        return step(route, x[:T], h0, c0, w_ih, w_hh, bias, d_out[:T], d_hn, d_cn)

    runs = [(r, T) for r in candidates for T in steps]
    times: dict[tuple, list[float]] = {run: [] for run in runs}
    for run in runs:
        call(*run)  # warm-up: packs weights, primes oneDNN's primitive cache
    for _ in range(repeats):
        for run in runs:
            t0 = _clock()
            call(*run)
            times[run].append(_clock() - t0)
    short, long_ = min(steps), max(steps)
    per_step = {r: (min(times[(r, long_)]) - min(times[(r, short)])) / (long_ - short) for r in candidates}
    default = default or candidates[0]
    noisy = max(sorted(v)[len(v) // 2] / min(v) for v in times.values())
    reliable = noisy <= PROBE_NOISE and min(per_step.values()) > 0
    cheapest = min(per_step, key=per_step.get)
    chosen = cheapest if reliable and per_step[cheapest] <= PROBE_MARGIN * per_step[default] else default
    _probe_log.append({"device": device.type, "dtype": str(dtype), "B": B, "H": H, "steps": steps,
                       "seconds": {f"{g_}-gemm+{l_}": s for (g_, l_), s in per_step.items()},
                       "median_over_min": noisy, "reliable": reliable,
                       "default": f"{default[0]}-gemm+{default[1]}",
                       "chosen": f"{chosen[0]}-gemm+{chosen[1]}", "probe_seconds": _clock() - start})
    return chosen


def probe_log() -> list[dict]:
    """Every probe run in this process: sizes, each candidate's seconds per step, the choice."""
    return list(_probe_log)


def reset_routes() -> None:
    """Forget the routes chosen so far in this process (tests and studies); the decisions stored on
    disk stay (`decisions.clear()` forgets those)."""
    _chosen.clear()


def resolve(route: tuple[str, str] | None, device: torch.device, dtype: torch.dtype, B: int, H: int,
            step: Step) -> tuple[str, str]:
    """`route` checked against what can run here, or the chosen one when None."""
    if route is None:
        return choose_route(device, dtype, B, H, step)
    gemm_name, loop = route
    if loop not in ROUTES:
        raise ValueError(f"unknown loop {loop!r}; expected one of {ROUTES}")
    if (gemm_name, loop) not in available_routes(device, dtype):
        raise ValueError(f"route {gemm_name}-gemm+{loop} cannot run on {device.type} {dtype} here; "
                         f"available: {available_routes(device, dtype)}")
    return gemm_name, loop
