"""Side-by-side studies behind the figures in docs/benchmarks.md (not an asv suite).

    python -m benchmarks.quality target   # vectorised vs nn_lstm at T=100, B=64, I=H=512, CPU
    python -m benchmarks.quality ratios   # the same ratio, and saved bytes, at every CPU grid point
    python -m benchmarks.quality spread RESULTS.json...   # CoV of repeated runs (pytest-benchmark JSON)

Implementations are timed interleaved (a, b, a, b, ...) with `lstm_bench.timing.time_fn`
so that drift in the machine's speed hits both alike; ratios are of medians.
"""
from __future__ import annotations

import dataclasses
import json
import statistics
import sys

from lstm_bench.grid import BENCH_GRID, Point, skip_reason
from lstm_bench.memory import saved_bytes
from lstm_bench.registry import get_impl
from lstm_bench import timing  # as a module: asv collects bare time_* names as benchmarks
from lstm_bench.timing import set_threads, step_fn


def interleaved(points: list[Point], repeats: int) -> dict[str, list[float]]:
    """Forward+backward seconds of each point, `repeats` rounds of one call each, interleaved."""
    fns = {p.key: step_fn(get_impl(p.impl), p.case(), backward=True) for p in points}
    for fn in fns.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            times[key] += timing.time_fn(fn, device="cpu", repeats=1, warmup=0)
    return times


def target(repeats: int = 7) -> None:
    threads = set_threads()
    T, B, H = 100, 64, 512
    impls = ("vectorised", "nn_lstm", "nn_lstm_native")
    points = [Point(i, T, B, H, H) for i in impls]
    times = interleaved(points, repeats)
    med = {p.impl: statistics.median(times[p.key]) for p in points}
    print(f"T={T} B={B} I=H={H} float32 cpu, threads={threads}, {repeats} interleaved repeats")
    print("| impl | median fwd+bwd (s) | min (s) | vs nn_lstm | saved bytes | vs nn_lstm_native |")
    print("|---|---|---|---|---|---|")
    saved = {p.impl: saved_bytes(p.impl, p.case()) for p in points}
    for p in points:
        print(f"| {p.impl} | {med[p.impl]:.3f} | {min(times[p.key]):.3f} | {med[p.impl] / med['nn_lstm']:.2f}x "
              f"| {saved[p.impl]:,} | {saved[p.impl] / saved['nn_lstm_native']:.2f}x |")


def ratios(repeats: int = 3) -> None:
    threads = set_threads()
    print(f"vectorised / nn_lstm, forward+backward medians of {repeats} interleaved repeats, "
          f"cpu float32, threads={threads}")
    print("| T | B | H | vectorised (s) | nn_lstm (s) | nn_lstm_native (s) | vec / nn_lstm | vec / native "
          "| saved vec / native |")
    print("|---|---|---|---|---|---|---|---|---|")
    impls = ("vectorised", "nn_lstm", "nn_lstm_native")
    for first in BENCH_GRID.replace(impls=impls[:1], devices=("cpu",)).points():
        pts = [dataclasses.replace(first, impl=i) for i in impls]
        T, B, H = first.T, first.B, first.H
        reason = next(filter(None, map(skip_reason, pts)), None)
        if reason:
            print(f"| {T} | {B} | {H} | skipped: {reason} | | | | | |")
            continue
        times = interleaved(pts, repeats)
        v, n, a = (statistics.median(times[p.key]) for p in pts)
        case = first.case()  # all three points share sizes, hence the case
        sv, sa = saved_bytes("vectorised", case), saved_bytes("nn_lstm_native", case)
        print(f"| {T} | {B} | {H} | {v:.4f} | {n:.4f} | {a:.4f} | {v / n:.2f} | {v / a:.2f} "
              f"| {sv / sa:.2f} |", flush=True)


def spread(paths: list[str]) -> None:
    """Run-to-run coefficient of variation of each benchmark's median over saved pytest-benchmark runs."""
    medians: dict[str, list[float]] = {}
    for path in paths:
        with open(path) as f:
            for b in json.load(f)["benchmarks"]:
                medians.setdefault(b["fullname"], []).append(b["stats"]["median"])
    for name, ms in medians.items():
        cov = statistics.stdev(ms) / statistics.mean(ms) if len(ms) > 1 else float("nan")
        print(f"{name}: runs={len(ms)} mean median={statistics.mean(ms):.4f}s CoV={cov:.2%}")


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else "target"
    if cmd == "target":
        target()
    elif cmd == "ratios":
        ratios()
    elif cmd == "spread":
        spread(sys.argv[2:])
    else:
        raise SystemExit(f"unknown study {cmd!r}; expected target, ratios or spread")
