"""Side-by-side studies behind the figures in docs/benchmarks.md (not an asv suite).

    python -m studies.quality target   # vectorised vs nn_lstm at T=100, B=64, I=H=512, CPU
    python -m studies.quality ratios [T,B,H ...]   # the same ratio, and saved bytes, at every CPU grid point
    python -m studies.quality techniques [T,B,H ...]   # each route of the vectorised path vs nn_lstm
    python -m studies.quality gemm     # the machine: CPU model, GFLOP/s of MKL (torch.mm/addmm) and oneDNN
    python -m studies.quality spread RESULTS.json...   # CoV of repeated runs (pytest-benchmark JSON)

Implementations are timed interleaved (a, b, a, b, ...) with `lstm_bench.machine.timing.time_fn`
so that drift in the machine's speed hits both alike; ratios are of medians. Before
each point the study waits (at most 2 min) until other processes use less than 0.3 of
a core ($LSTM_BENCH_QUIET; 0 to not wait) and prints what they used ("others' CPU"):
on a shared 2-core VM a job holding one core stalls every 2-thread parallel region.
`target`, `ratios` and `techniques` start with the machine's header (`gemm`): the
vectorised path's speed depends on which GEMM is fast on this CPU. The first call of
a point (untimed) builds or loads the C kernels and runs the route probe; their times
are printed separately (build seconds, and each probe's seconds and choice).
"""
from __future__ import annotations

import dataclasses
import json
import os
import statistics
import sys
import time

import torch

from lstm_bench.bench.grid import BENCH_GRID, Point, skip_reason
from lstm_bench.core.registry import get_impl
from lstm_bench.impls import vectorised
from lstm_bench.impls.vectorised import fused, gemm, routes
from lstm_bench.machine import timing  # as a module: asv collects bare time_* names as benchmarks
from lstm_bench.machine.environment import cpu_name
from lstm_bench.machine.memory import saved_bytes
from lstm_bench.machine.timing import set_threads, step_fn


def interleaved(points: list[Point], repeats: int) -> dict[str, list[float]]:
    """Forward+backward seconds of each point, `repeats` rounds of one call each, interleaved."""
    fns = {p.key: step_fn(get_impl(p.impl), p.case(), backward=True) for p in points}
    for fn in fns.values():
        fn()  # warm-up
    return rounds(fns, repeats)


def rounds(fns: dict, repeats: int) -> dict[str, list[float]]:
    """Seconds of each callable, `repeats` rounds of one timed call each (a, b, a, b, ...), no warm-up."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            times[key] += timing.time_fn(fn, device="cpu", repeats=1, warmup=0)
    return times


QUIET_ENV = "LSTM_BENCH_QUIET"  # "0": don't wait; else the most cores others may use (default 0.3)


def others_cpu(window: float = 1.0) -> float:
    """Cores' worth of CPU time used by other processes over `window` seconds (Linux; 0 elsewhere)."""
    def busy() -> tuple[float, float]:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        total_busy = sum(v) - v[3] - v[4]  # all but idle and iowait
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return total_busy, int(fields[11]) + int(fields[12])  # utime + stime of this process
    try:
        b0, s0 = busy()
        time.sleep(window)
        b1, s1 = busy()
    except OSError:
        return 0.0
    return max(0.0, ((b1 - b0) - (s1 - s0)) / os.sysconf("SC_CLK_TCK") / window)


def wait_for_quiet(timeout: float | None = None) -> float:
    """Wait (at most `timeout` s, default $LSTM_BENCH_QUIET_TIMEOUT or 120) until other processes use less than $LSTM_BENCH_QUIET cores
    (default 0.3), so a point is not timed while another job holds a core: with 2 threads on a
    2-core VM, that stalls every parallel region. Returns the others' use when the point starts."""
    limit = float(os.environ.get(QUIET_ENV, "0.3"))
    if timeout is None:
        timeout = float(os.environ.get("LSTM_BENCH_QUIET_TIMEOUT", "120"))
    if limit <= 0:
        return others_cpu(0.2)
    deadline = time.monotonic() + timeout
    load = others_cpu()
    while load > limit and time.monotonic() < deadline:
        load = others_cpu()
    return load


GEMM_SHAPES = [(1, 64, 256), (32, 256, 1024), (64, 512, 2048), (32, 1024, 4096), (6400, 512, 2048)]


def cpu_details() -> str:
    """Family, model and AVX-512 from /proc/cpuinfo (a VM's model name may say little)."""
    info = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                info.setdefault(key.strip(), value.strip())
    except OSError:
        return ""
    flags = info.get("flags", "").split()
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{info.get('vendor_id', '?')} family {info.get('cpu family', '?')} model {info.get('model', '?')}, {isa}"


def header() -> None:
    """CPU model, load, torch, the C kernels' build, and the GEMM figures of this machine."""
    threads = set_threads()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    st = fused.status()
    ok, why = gemm.onednn_status(torch.float32)
    print(f"CPU: {cpu_name()} ({cpu_details()}); torch {torch.__version__}; threads={threads}; load average {load}")
    build = (f"built in {st['build_seconds']:.2f} s" if st["build_seconds"] else "loaded from cache") \
        if st["available"] else f"unavailable ({st['why']})"
    print(f"C kernels (lstm_bench.impls.vectorised.fused): {build}; oneDNN GEMM: {'usable' if ok else why}")
    others = wait_for_quiet()
    print(f"float32 GEMM, x (M, K) @ W^T -> (M, N), GFLOP/s, median of 7 interleaved, threads={threads}, "
          f"others' CPU {others:.2f} cores:")
    print("| M | K | N | torch.mm (MKL) | torch.addmm (MKL) | oneDNN (packed weight) |")
    print("|---|---|---|---|---|---|")
    for row in gemm.figures(GEMM_SHAPES):
        dnn = row["onednn"]["gflops"]
        print(f"| {row['M']} | {row['K']} | {row['N']} | {row['mm']['gflops']:.0f} | {row['addmm']['gflops']:.0f} "
              f"| {'n/a' if dnn is None else f'{dnn:.0f}'} |", flush=True)
    print()


def print_probes() -> None:
    log = routes.probe_log()
    if not log:
        return
    print("\nroute probes run (untimed, at each point's first call):")
    for e in log:
        secs = ", ".join(f"{k} {v * 1e6:.1f} us" for k, v in e["seconds"].items())
        print(f"- B={e['B']} H={e['H']} {e['dtype']}: {secs} per step (from {e['steps']} steps) -> {e['chosen']} "
              f"(probe took {e['probe_seconds']:.2f} s)")


def techniques(points: list[tuple[int, int, int]] | None = None, repeats: int = 5) -> None:
    """Forward+backward of each route of the vectorised path and of nn_lstm, interleaved, per point."""
    header()
    points = points or [(100, 1, 64), (500, 1, 64), (100, 32, 64), (100, 32, 256), (100, 1, 1024),
                        (100, 64, 512)]
    print(f"each route of the vectorised path vs nn_lstm (oneDNN), median of {repeats} interleaved, I = H")
    print("| T | B | H | route | ms | vs nn_lstm | others' CPU |")
    print("|---|---|---|---|---|---|---|")
    for T, B, H in points:
        case = Point("vectorised", T, B, H, H).case()
        fns = {}
        for route in routes.available_routes(case.device, case.dtype):
            def call(route=route):
                with routes.using_route(*route):
                    return vectorised.run(case)
            fns[f"{route[0]}-gemm+{route[1]}"] = call
        fns["nn_lstm"] = step_fn(get_impl("nn_lstm"), case, backward=True)
        for fn in fns.values():
            fn()
        others = wait_for_quiet()
        times = rounds(fns, repeats)
        others = max(others, others_cpu(0.5))
        med = {k: statistics.median(v) for k, v in times.items()}
        for k, v in med.items():
            print(f"| {T} | {B} | {H} | {k} | {v * 1e3:.2f} | {v / med['nn_lstm']:.2f} | {others:.2f} |",
                  flush=True)


def target(repeats: int = 7) -> None:
    header()
    threads = set_threads()
    T, B, H = 100, 64, 512
    impls = ("vectorised", "nn_lstm", "nn_lstm_native")
    points = [Point(i, T, B, H, H) for i in impls]
    others = wait_for_quiet()
    times = interleaved(points, repeats)
    others = max(others, others_cpu(0.5))
    med = {p.impl: statistics.median(times[p.key]) for p in points}
    print(f"T={T} B={B} I=H={H} float32 cpu, threads={threads}, {repeats} interleaved repeats, "
          f"others' CPU {others:.2f} cores")
    print("| impl | median fwd+bwd (s) | min (s) | vs nn_lstm | saved bytes | vs nn_lstm_native |")
    print("|---|---|---|---|---|---|")
    saved = {p.impl: saved_bytes(p.impl, p.case()) for p in points}
    for p in points:
        print(f"| {p.impl} | {med[p.impl]:.3f} | {min(times[p.key]):.3f} | {med[p.impl] / med['nn_lstm']:.2f}x "
              f"| {saved[p.impl]:,} | {saved[p.impl] / saved['nn_lstm_native']:.2f}x |")
    print(f"\nvectorised ran {get_impl('vectorised')(points[0].case()).backend}")
    print_probes()


def ratios(repeats: int = 3, only: list[tuple[int, int, int]] | None = None) -> None:
    """Every CPU point of BENCH_GRID, or only the (T, B, H) points given."""
    header()
    threads = set_threads()
    print(f"vectorised / nn_lstm, forward+backward medians of {repeats} interleaved repeats, "
          f"cpu float32, threads={threads}")
    print("| T | B | H | vectorised (s) | nn_lstm (s) | nn_lstm_native (s) | vec / nn_lstm | vec / native "
          "| saved vec / native | vectorised route | others' CPU |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    impls = ("vectorised", "nn_lstm", "nn_lstm_native")
    for first in BENCH_GRID.replace(impls=impls[:1], devices=("cpu",)).points():
        pts = [dataclasses.replace(first, impl=i) for i in impls]
        T, B, H = first.T, first.B, first.H
        if only and (T, B, H) not in only:
            continue
        reason = next(filter(None, map(skip_reason, pts)), None)
        if reason:
            print(f"| {T} | {B} | {H} | skipped: {reason} | | | | | | | |")
            continue
        others = wait_for_quiet()
        times = interleaved(pts, repeats)
        others = max(others, others_cpu(0.5))
        v, n, a = (statistics.median(times[p.key]) for p in pts)
        case = first.case()  # all three points share sizes, hence the case
        sv, sa = saved_bytes("vectorised", case), saved_bytes("nn_lstm_native", case)
        route = routes.choose_route(case.device, case.dtype, B, H, vectorised.plain_step)
        print(f"| {T} | {B} | {H} | {v:.4f} | {n:.4f} | {a:.4f} | {v / n:.2f} | {v / a:.2f} "
              f"| {sv / sa:.2f} | {route[0]}-gemm+{route[1]} | {others:.2f} |", flush=True)
    print_probes()


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
        ratios(only=[tuple(int(v) for v in a.split(",")) for a in sys.argv[2:]] or None)
    elif cmd == "techniques":
        techniques([tuple(int(v) for v in a.split(",")) for a in sys.argv[2:]] or None)
    elif cmd == "gemm":
        header()
    elif cmd == "spread":
        spread(sys.argv[2:])
    else:
        raise SystemExit(f"unknown study {cmd!r}; expected target, ratios, techniques, gemm or spread")
