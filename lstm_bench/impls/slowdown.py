"""An implementation made slower by a known fraction, for measurement-quality studies.

`register_slowed(0.05)` registers `vectorised_slowed`: the vectorised implementation with each
half followed by a busy wait of 5% of that half's own duration, so a tool's verdict on
it can be checked against a slowdown that is known exactly. Run a suite once with the
fraction 0 and once with the slowdown, under the same name, and see whether the tool
flags it ($LSTM_BENCH_INJECT_SLOWDOWN sets the fraction for asv and pytest-benchmark).
"""
from __future__ import annotations

import time
from typing import Any, Callable

import torch

from ..core.registry import Impl, get_impl, register_impl
from ..core.values import from_env, parse_number

SLOWDOWN_ENV = "LSTM_BENCH_INJECT_SLOWDOWN"
SLOWED_IMPL = "vectorised_slowed"


def slowed(fn: Callable[..., Any], fraction: float) -> Callable[..., Any]:
    """`fn` followed by a busy wait of `fraction` times the time `fn` itself took."""
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


def _check_fraction(fraction: object) -> float:
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction < 10:
        raise ValueError(f"fraction must be a number in [0, 10), got {fraction!r}")
    return float(fraction)


def register_slowed(fraction: float, *, base: str = "vectorised", name: str = SLOWED_IMPL) -> Impl:
    """Register `name`: `base` with each half made slower by exactly `fraction` (0.05 = 5%)."""
    fraction = _check_fraction(fraction)
    b = get_impl(base)
    forward, backward = b.split()
    return register_impl(name, slowed(b.fn, fraction), devices=b.devices, replace=True,
                         forward=slowed(forward, fraction), backward=slowed(backward, fraction),
                         description=f"{base} slowed down by {fraction:.1%} (measurement-quality studies)")


def register_slowed_from_env() -> Impl | None:
    """`register_slowed($LSTM_BENCH_INJECT_SLOWDOWN)` when that variable is set, else None."""
    fraction = from_env(SLOWDOWN_ENV, lambda t: parse_number(t, minimum=0.0, maximum=9.99,
                                                             what="a fraction such as 0.05"), None)
    return None if fraction is None else register_slowed(fraction)
