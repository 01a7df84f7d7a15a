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
from ..bench.grid import BENCH_GRID, NAMED_GRIDS, QUICK_GRID, Grid, Variant
from ..bench.instructions import unavailable_reason
from ..bench.records import PointRecord
from ..bench.results import ResultsFile, check_appendable, check_new_output, load
from ..bench.spread import NOISY_SPREAD, is_noisy, plus_minus
from ..bench.suites import FREE_AXES, SUITES, SuiteGrid, describe_suites, suite_grid
from ..bench.sweep import DEFAULT_REPEATS, SweepOutcome, SweepSettings, run_sweep
from ..core.devices import available_devices
from ..core.registry import resolve_impls
from ..machine.gpu_timing import cache_mode
from ..machine.peak import header_key
from .args import (AXIS_FLAGS, EXIT_FAIL, EXIT_INTERRUPTED, EXIT_NOTHING, EXIT_OK, UsageError, add_impls, add_sizes,
                   add_threads, arg_type, axes_from_args, check_devices, flatten, list_of, non_negative_int,
                   positive_int)
from .output import ProgressBar, human_bytes, human_duration, point_columns, table
from .report import leaderboard_text


def grid_from_args(args: argparse.Namespace) -> Grid | SuiteGrid:
    """BENCH_GRID (QUICK_GRID with --quick, the --grid named, or the --suite's shapes) with the axes the
    flags name replaced; a suite fixes its shapes, so -T -B -I -H --config with --suite are refused."""
    suites = flatten(getattr(args, "suite", None))
    if suites and (args.quick or args.grid):
        raise UsageError(f"--suite and {'--quick' if args.quick else '--grid'} both name the grid; give one")
    base = NAMED_GRIDS[args.grid] if getattr(args, "grid", None) else QUICK_GRID if args.quick else BENCH_GRID
    if suites:
        try:
            base = suite_grid(suites)
        except ValueError as err:
            raise UsageError(f"--suite: {err}") from None
    axes: dict[str, Any] = axes_from_args(args)
    impls = resolve_impls(flatten(args.impl) or [])
    if impls:
        axes["impls"] = tuple(impls)
    fixed = [a for a in axes if a not in FREE_AXES]
    if suites and fixed:
        flags = {axis: "-" + flag if len(flag) == 1 else "--" + flag for flag, axis in AXIS_FLAGS}
        raise UsageError(f"--suite fixes the shapes: {', '.join(flags[a] for a in fixed)} cannot be given with it "
                         f"(only --impl, --device, --dtype)")
    return base.replace(**axes) if axes else base


def sweep_table(results: ResultsFile) -> str:
    """The sweep's table (one row per point that was not skipped), then what each empty cell means.

    The point's columns are those of every table (`output.point_columns`); err/bound is the
    verdict (the tolerance policy's largest err/bound, <= 1 passes); a time taken while the
    machine was oversubscribed is marked OVERSUBSCRIBED, with the reason below the table."""
    peaks = results.env.get("matmul_peak_gflops", {})
    rows, no_halves, forward_only = [], [], []
    noisy = above = 0
    oversubscribed: list[str] = []
    unjudged: dict[str, int] = {}
    records = list(results.by_key().values())
    has_instructions = any(r.measurement is not None and (r.measurement.instructions is not None
                                                          or r.measurement.instructions_note) for r in records)
    counted_notes: dict[str, list[str]] = {}  # instructions_note -> the points it is about
    has_compile = any(r.measurement is not None and r.measurement.compile_s is not None for r in records)
    headers, point_cells, left = point_columns([r.point for r in records])
    for rec in records:
        p = rec.point
        head = point_cells(p)
        if rec.status == "skipped":
            continue
        if rec.status != "ok":
            bound = f"{rec.worst_err_bound:.3g}" if rec.worst_err_bound is not None else "-"
            rows.append(head + ["-"] * 7 + [bound, "-"] + ["-"] * (has_instructions + has_compile)
                        + [f"{rec.status.upper()}: {rec.error}"])
            continue
        m = rec.measurement
        if m.forward_only:
            forward_only += [p.impl] * (p.impl not in forward_only)
        elif not m.has_halves and p.impl not in no_halves:
            no_halves.append(p.impl)
        peak = m.peak_gflops or peaks.get(header_key(p.device, p.dtype))
        pct = "-"
        if peak:
            if rec.gflops <= peak:
                pct = f"{100 * rec.gflops / peak:.0f}%"
            else:  # only a file recorded before the check (lstm-bench 0.1's one-library peak)
                above += 1
        err = m.max_rel_error
        spread = plus_minus(m.forward_backward_s)
        noisy_point = is_noisy(m.forward_backward_s)
        noisy += noisy_point
        load = m.load.load_max if m.load is not None else None
        # files of lstm-bench 0.2 hold the load but no mark: the rule of machine.load, applied now
        over = m.oversubscribed or (m.load.oversubscribed_reason() if m.load is not None else None)
        if over:
            oversubscribed.append(over)
        if m.unjudged_reason:
            unjudged[m.unjudged_reason] = unjudged.get(m.unjudged_reason, 0) + 1
        flags = (" FWD ONLY" if m.forward_only else "") + (" NOISY" if noisy_point else "") + (
            " OVERSUBSCRIBED" if over else "")
        bound = (f"{m.worst_err_bound:.3g}" if m.worst_err_bound is not None
                 else "not judged" if m.unjudged_reason else "-")
        row = head + [f"{human_duration(m.forward_backward_median_s)} {spread}" + flags,
                      human_duration(m.forward_median_s), f"{rec.gflops:.1f}", pct,
                      human_bytes(m.saved_bytes), human_bytes(m.peak_bytes),
                      f"{err:.1e}" if err is not None else "-", bound, f"{load:.1f}" if load is not None else "-"]
        if has_instructions:
            row.append(f"{m.instructions:,}" if m.instructions is not None else "-")
            if m.instructions_note:
                counted_notes.setdefault(m.instructions_note, []).append(f"{p.impl} T={p.T} B={p.B} H={p.H}")
        if has_compile:
            row.append(human_duration(m.compile_s) if m.compile_s is not None else "-")
        rows.append(row + ["ok"])
    headers = headers + ["fwd+bwd (median ±IQR/2)", "fwd", "GFLOP/s", "% peak", "saved", "peak mem",
                         "max rel err", "err/bound", "load"] + (["instructions"] if has_instructions else []) + (
                         ["compile"] if has_compile else []) + ["status"]
    out = table(headers, rows, left=left + (-1,)) if rows else "(no point was measured or failed)"
    notes = []
    if no_halves:
        notes.append(f"fwd, saved, peak mem are '-' for {', '.join(no_halves)}: registered without forward/"
                     f"backward halves, so only the whole call is timed (give register_impl forward= and "
                     f"backward=, or set .forward and .backward on the function, to measure them)")
    if forward_only:
        notes.append(f"FWD ONLY: {', '.join(forward_only)} declared forward-only (gradients=False): the timed call "
                     f"is the forward, GFLOP/s counts the forward's FLOPs, err/bound judges output, h_n and c_n")
    settings = results.settings
    if not settings.get("memory", True):
        notes.append("saved, peak mem: not measured (--no-memory)")
    if not settings.get("accuracy", True):
        notes.append("max rel err, err/bound: not measured (--no-accuracy): these points were timed, not judged")
    elif rows:
        notes.append("err/bound: the verdict, the tolerance policy's largest error over its bound across outputs and "
                     "gradients of the first call and of the last timed call (<= 1 passes, as in lstm-bench check)")
    for why, n in unjudged.items():
        notes.append(f"err/bound: {n} point(s) {why}")
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
    if oversubscribed:
        notes.append(f"OVERSUBSCRIBED: {len(oversubscribed)} point(s) measured while the machine was oversubscribed "
                     f"(e.g. {oversubscribed[0]}): their times read high and may be garbage; rerun them on a quieter "
                     f"machine")
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
    p.add_argument("--grid", choices=sorted(NAMED_GRIDS), help="start from this named grid (default: BENCH_GRID, or QUICK_GRID with --quick)")
    p.add_argument("--suite", type=list_of(str), action="append", metavar="NAME[,NAME...]|list",
                   help=f"the shapes of a benchmark of the field instead of a grid (default: none, the grid): "
                        f"{', '.join(SUITES)} (docs/leaderboard.md has their sources); 'list' prints them. Sizes "
                        f"too big for this machine are kept and skipped with the reason")
    p.add_argument("--leaderboard", action="store_true",
                   help="print the leaderboard instead of the per-point table: per point, the implementations ranked "
                        "by time among those that pass the tolerance policy (also `lstm-bench report --leaderboard "
                        "FILE` later)")
    p.add_argument("--out", help="results file (default lstm-bench-YYYYmmdd-HHMMSS.jsonl; an existing file is refused "
                                 "before anything runs, unless --resume)")
    p.add_argument("--resume", action="store_true", help="continue --out, skipping the points already in it")
    p.add_argument("--repeats", type=positive_int, default=DEFAULT_REPEATS,
                   help=f"timed calls per point, of the forward and of forward+backward (default {DEFAULT_REPEATS}: "
                        f"enough for compare's exact test over the grid)")
    p.add_argument("--warmup", type=non_negative_int, default=1,
                   help="untimed calls before the timed ones (default 1)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the timed case (default 0); the first, judged call runs on seed + 1")
    add_threads(p)
    p.add_argument("--no-accuracy", action="store_true",
                   help="time without a verdict: no max rel err, no err/bound (default: every point is judged "
                        "under the tolerance policy, and a wrong result fails it)")
    p.add_argument("--no-memory", action="store_true", help="skip the saved/peak memory measurement")
    p.add_argument("--no-peak", action="store_true", help="do not measure the matmul peak")
    p.add_argument("--instructions", action="store_true",
                   help="also count CPU instructions of one forward+backward under callgrind (small CPU points; "
                        "needs valgrind)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=run)


def exit_code(outcome: SweepOutcome) -> int:
    """The sweep's part of the exit-code contract: 1 when a point of the file failed, 5 when no
    point of it was measured (everything skipped), else 0."""
    return EXIT_FAIL if outcome.failed else EXIT_OK if outcome.measured else EXIT_NOTHING


NOTHING_MEASURED = f"lstm-bench: nothing was measured: every point was skipped (reasons above); exit {EXIT_NOTHING}"


def run(args: argparse.Namespace) -> int:
    if flatten(args.suite) == ["list"]:
        print(describe_suites())
        return EXIT_OK
    if args.resume and not args.out:
        raise UsageError("--resume needs --out FILE, the results file of the sweep to continue")
    if args.quick and args.grid:
        raise UsageError("--quick and --grid both name the grid; give one")
    out = Path(args.out or time.strftime("lstm-bench-%Y%m%d-%H%M%S.jsonl"))
    # the output first: a sweep is never run to find that its file cannot be written
    if args.resume:
        check_appendable(out)
    else:
        check_new_output(out, hint="pass --resume to continue that sweep, or choose another --out")
    grid = grid_from_args(args)
    check_devices(flatten(args.device), grid.points())
    if any(p.device == "cuda" for p in grid.points()) and "cuda" in available_devices():
        cache_mode()  # a bad $LSTM_BENCH_CUDA_CACHE: one line and exit 2, not every CUDA point failed
    if args.instructions:
        why = unavailable_reason()
        if why:
            raise UsageError(f"--instructions: {why}")
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
    print(leaderboard_text(results) if args.leaderboard else sweep_table(results))
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
    code = exit_code(outcome)
    if code == EXIT_NOTHING:
        print(NOTHING_MEASURED, file=sys.stderr)
    return code
