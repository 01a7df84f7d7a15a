"""`lstm-bench bench`: a sweep of the grid, appended point by point to a JSON-lines file.

The axes default to `BENCH_GRID` (`--quick`: `QUICK_GRID`); each flag replaces one axis.
The sweep itself is `lstm_bench.bench.sweep.run_sweep`; this module parses the flags, shows
progress, and prints the table.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from ..bench.gpu_report import gpu_notes, gpu_rows
from ..bench.grid import BENCH_GRID, NAMED_GRIDS, PLAIN, QUICK_GRID, Grid, Variant
from ..bench.records import PointRecord
from ..bench.results import ResultsFile, load
from ..bench.spread import NOISY_SPREAD, is_noisy, quartiles
from ..bench.sweep import DEFAULT_REPEATS, SweepSettings, run_sweep
from ..core.devices import available_devices
from ..core.registry import resolve_impls
from ..machine.gpu_timing import cache_mode
from ..machine.peak import header_key
from .args import (EXIT_FAIL, EXIT_INTERRUPTED, EXIT_OK, UsageError, add_impls, add_sizes, add_threads, arg_type,
                   axes_from_args, check_devices, flatten, list_of, non_negative_int, positive_int)
from .output import ProgressBar, human_bytes, human_duration, table


def grid_from_args(args: argparse.Namespace) -> Grid:
    """BENCH_GRID (QUICK_GRID with --quick, or the --grid named) with the axes the flags name replaced."""
    base = NAMED_GRIDS[args.grid] if getattr(args, "grid", None) else QUICK_GRID if args.quick else BENCH_GRID
    axes: dict[str, Any] = axes_from_args(args)
    impls = resolve_impls(flatten(args.impl) or [])
    if impls:
        axes["impls"] = tuple(impls)
    return base.replace(**axes) if axes else base


def _spread(samples) -> float:
    """Half the interquartile range relative to the median (a robust ±)."""
    q1, med, q3 = quartiles(samples)
    return (q3 - q1) / 2 / med if med > 0 else float("nan")


def sweep_table(results: ResultsFile) -> str:
    """The sweep's table (one row per point that was not skipped), then what each empty cell means."""
    peaks = results.env.get("matmul_peak_gflops", {})
    rows, no_halves = [], []
    noisy = loaded = above = 0
    has_instructions = any(r.measurement is not None and (r.measurement.instructions is not None
                                                          or r.measurement.instructions_note)
                           for r in results.by_key().values())
    counted_notes: dict[str, list[str]] = {}  # instructions_note -> the points it is about
    has_configs = any(r.point.variant != PLAIN for r in results.by_key().values())
    has_compile = any(r.measurement is not None and r.measurement.compile_s is not None
                      for r in results.by_key().values())
    for rec in results.by_key().values():
        p = rec.point
        head = [p.impl, p.T, p.B, p.H, p.device] + ([p.dtype, p.variant.label] if has_configs else [])
        if rec.status == "skipped":
            continue
        if rec.status != "ok":
            rows.append(head + ["-"] * (8 + has_instructions + has_compile) + [f"{rec.status.upper()}: {rec.error}"])
            continue
        m = rec.measurement
        if not m.has_halves and p.impl not in no_halves:
            no_halves.append(p.impl)
        peak = m.peak_gflops or peaks.get(header_key(p.device, p.dtype))
        pct = "-"
        if peak:
            if rec.gflops <= peak:
                pct = f"{100 * rec.gflops / peak:.0f}%"
            else:  # only a file recorded before the check (lstm-bench 0.1's one-library peak)
                above += 1
        err = m.max_rel_error
        spread = f"±{100 * _spread(m.forward_backward_s):.0f}%"
        noisy_point = is_noisy(m.forward_backward_s)
        noisy += noisy_point
        load = m.load.load_max if m.load is not None else None
        loaded += bool(m.load is not None and m.load.under_load)
        row = head + [f"{human_duration(m.forward_backward_median_s)} {spread}" + (" NOISY" if noisy_point else ""),
                      human_duration(m.forward_median_s), f"{rec.gflops:.1f}", pct,
                      human_bytes(m.saved_bytes), human_bytes(m.peak_bytes),
                      f"{err:.1e}" if err is not None else "-", f"{load:.1f}" if load is not None else "-"]
        if has_instructions:
            row.append(f"{m.instructions:,}" if m.instructions is not None else "-")
            if m.instructions_note:
                counted_notes.setdefault(m.instructions_note, []).append(f"{p.impl} T={p.T} B={p.B} H={p.H}")
        if has_compile:
            row.append(human_duration(m.compile_s) if m.compile_s is not None else "-")
        rows.append(row + ["ok"])
    headers = ["impl", "T", "B", "H", "device"] + (["dtype", "config"] if has_configs else []) + [
               "fwd+bwd (median ±IQR/2)", "fwd", "GFLOP/s", "% peak",
               "saved", "peak mem", "max rel err", "load"] + (["instructions"] if has_instructions else []) + (
               ["compile"] if has_compile else []) + ["status"]
    out = table(headers, rows, left=(0, 4, -1) + ((5, 6) if has_configs else ()))
    notes = []
    if no_halves:
        notes.append(f"fwd, saved, peak mem are '-' for {', '.join(no_halves)}: registered without forward/"
                     f"backward halves, so only the whole call is timed (give register_impl forward= and "
                     f"backward=, or set .forward and .backward on the function, to measure them)")
    settings = results.settings
    if not settings.get("memory", True):
        notes.append("saved, peak mem: not measured (--no-memory)")
    if not settings.get("accuracy", True):
        notes.append("max rel err: not measured (--no-accuracy)")
    if not peaks and rows:
        notes.append("% peak: the matmul peak was not measured (--no-peak)")
    for key, detail in (results.env.get("matmul_peak") or {}).items():
        if detail.get("gflops") is None and detail.get("reason"):
            notes.append(f"% peak: no peak for {key}: {detail['reason']}")
    if above:
        notes.append(f"% peak: '-' at {above} point(s) faster than the file's recorded peak (recorded by an older "
                     f"lstm-bench, from one GEMM library); a new sweep measures the best GEMM and rejects such timings")
    if noisy:
        notes.append(f"NOISY: {noisy} point(s) whose repeats spread by more than {100 * NOISY_SPREAD:.0f}% of their "
                     f"median (IQR/median); rerun them on a quieter machine, or compare with `lstm-bench ab`")
    if loaded:
        notes.append(f"load: {loaded} point(s) measured under load (1-minute load average above the "
                     f"{results.env.get('cpu_count') or '?'} CPUs, or CPU steal above 2%): their times read high")
    if has_compile:
        notes.append("compile: a compiling implementation's cold first call less its warm median (the other "
                     "columns are warm); '-' for implementations that do not compile")
    if has_instructions:
        notes.append("instructions: CPU instructions of one forward+backward under callgrind, one thread "
                     "(small CPU points only; '-' elsewhere)")
        notes += [f"instructions at {', '.join(points)}: {note}" for note, points in counted_notes.items()]
    return "\n".join([out] + notes)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f}%"


def gpu_table(results: ResultsFile) -> str | None:
    """The CUDA points' own table (`lstm_bench.bench.gpu_report`), or None when the file has none."""
    rows = gpu_rows(results)
    if not rows:
        return None
    out = []
    for r in rows:
        p, ph = r.record.point, r.phases_s
        out.append([p.impl, p.T, p.B, p.H, p.dtype, r.cache, human_duration(r.eager_s), human_duration(r.graph_s),
                    _pct(None if r.launch_share is None else 100 * r.launch_share), human_duration(r.floor_s),
                    "-" if r.over_floor is None else f"{r.over_floor:.1f}x"]
                   + [f"{human_duration(ph[k])} {_pct(r.phase_pct.get(k))}" for k in
                      ("forward", "backward", "backward_data", "backward_weights")]
                   + ["-" if r.sm_clock_mhz is None else f"{r.sm_clock_mhz[0]}-{r.sm_clock_mhz[1]}",
                      "-" if r.temperature_c is None else r.temperature_c, r.throttled or "-"])
    headers = ["impl", "T", "B", "H", "dtype", "L2", "eager fwd+bwd", "graph", "launch share", "launch floor",
               "eager/floor", "fwd (% peak)", "bwd", "bwd-data", "bwd-wt", "SM MHz", "C", "throttled"]
    return "\n".join([table(headers, out, left=(0, 4, 5))] + gpu_notes(rows))


def skip_lines(records: list[PointRecord]) -> list[str]:
    """One line per distinct skip reason, with how many points it covers."""
    reasons: dict[str, int] = {}
    for r in records:
        if r.status == "skipped":
            reasons[r.reason] = reasons.get(r.reason, 0) + 1
    return [f"skipped {n} point(s): {reason}" for reason, n in reasons.items()]


def _libraries(detail: dict | None) -> str:
    """" (oneDNN; MKL 212.0)" from a peak's stored details."""
    if not detail or not detail.get("libraries"):
        return ""
    names = {"mkl": "MKL", "onednn": "oneDNN", "cublas": "cuBLAS"}
    best = detail.get("library")
    others = [f"{names.get(k, k)} {v:.1f}" for k, v in detail["libraries"].items() if k != best]
    return f" ({names.get(best, best)}" + (f"; {', '.join(others)}" if others else "") + ")"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="sweep the grid; results appended to a JSON-lines file point by point")
    add_impls(p, "the grid's")
    add_sizes(p, "default: the grid's axis; I defaults to H")
    p.add_argument("--device", type=list_of(str), action="append", help="devices (default cpu,cuda)")
    p.add_argument("--dtype", type=list_of(str), action="append", help="dtypes (default float32)")
    p.add_argument("--config", type=list_of(arg_type(Variant.from_label, "configuration")), action="append",
                   metavar="LABEL[,LABEL...]",
                   help="nn.LSTM configurations (default plain): 'plain' or parts joined by '+' of L=<layers>, bi, "
                        "P=<proj_size>, len=padded-batch (variable lengths), e.g. L=2,bi,P=64,L=2+bi")
    p.add_argument("--quick", action="store_true", help="start from QUICK_GRID instead of BENCH_GRID")
    p.add_argument("--grid", choices=sorted(NAMED_GRIDS), help="start from this named grid instead of BENCH_GRID")
    p.add_argument("--out", help="results file (default lstm-bench-YYYYmmdd-HHMMSS.jsonl; never overwritten)")
    p.add_argument("--resume", action="store_true", help="continue --out, skipping the points already in it")
    p.add_argument("--repeats", type=positive_int, default=DEFAULT_REPEATS)
    p.add_argument("--warmup", type=non_negative_int, default=1)
    p.add_argument("--seed", type=int, default=0)
    add_threads(p)
    p.add_argument("--no-accuracy", action="store_true", help="skip the max-rel-error measurement")
    p.add_argument("--no-memory", action="store_true", help="skip the saved/peak memory measurement")
    p.add_argument("--no-peak", action="store_true", help="do not measure the matmul peak")
    p.add_argument("--instructions", action="store_true",
                   help="also count CPU instructions of one forward+backward under callgrind (small CPU points; "
                        "needs valgrind)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.resume and not args.out:
        raise UsageError("--resume needs --out FILE, the results file of the sweep to continue")
    if args.quick and args.grid:
        raise UsageError("--quick and --grid both name the grid; give one")
    grid = grid_from_args(args)
    check_devices(flatten(args.device), grid.points())
    if any(p.device == "cuda" for p in grid.points()) and "cuda" in available_devices():
        cache_mode()  # a bad $LSTM_BENCH_CUDA_CACHE: one line and exit 2, not every CUDA point failed
    if args.instructions:
        from ..bench.instructions import unavailable_reason

        why = unavailable_reason()
        if why:
            raise UsageError(f"--instructions: {why}")
    out = Path(args.out or time.strftime("lstm-bench-%Y%m%d-%H%M%S.jsonl"))
    settings = SweepSettings(repeats=args.repeats, warmup=args.warmup, seed=args.seed,
                             accuracy=not args.no_accuracy, memory=not args.no_memory,
                             instructions=args.instructions)
    try:
        outcome = run_sweep(grid, out, settings=settings, threads=args.threads, peak=not args.no_peak,
                            resume=args.resume, observer=ProgressBar(enabled=not args.no_progress))
    except KeyboardInterrupt:
        done = len(load(out).records) if out.exists() else 0
        how = "--resume" if args.out else f"--out {out} --resume"
        print(f"lstm-bench: interrupted; {done} finished points are safe in {out}. Resume with the same "
              f"command plus {how}", file=sys.stderr)
        return EXIT_INTERRUPTED
    results, counts = outcome.results, outcome.counts
    print(sweep_table(results))
    gpu = gpu_table(results)
    if gpu:
        print("CUDA (L2 cold: flushed before each timed call, warm: not; graph: a CUDA-graph replay of the "
              "forward+backward; docs/gpu.md):")
        print(gpu)
    for line in skip_lines(results.records):
        print(line)
    details = results.env.get("matmul_peak") or {}
    peaks = {k: v for k, v in (results.env.get("matmul_peak_gflops") or {}).items() if v}
    if peaks:
        print("% peak: GFLOP/s (GEMM FLOPs of forward+backward, lstm_bench/bench/flops.py) over this machine's best "
              "measured GEMM: " + ", ".join(f"{k} {v:.1f} GFLOP/s" + _libraries(details.get(k))
                                          for k, v in peaks.items()))
    print(f"{counts['ok']} measured, {counts['failed']} failed, {counts['skipped']} skipped"
          + (f", {counts['resumed']} already in the file" if counts["resumed"] else "") + f"; results in {out}")
    return EXIT_FAIL if outcome.failed else EXIT_OK
