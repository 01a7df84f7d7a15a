"""`lstm-bench ab --base PYTHON --new PYTHON`: interleaved A/B comparison of two environments.

The runner is `lstm_bench.comparison.ab.run_ab`; this module parses the flags, shows progress and
prints the verdicts. Exit 0: no regression; 1: a regression, or a point that failed
in NEW; 2: bad input (flags, a Python that cannot be run, a worker that dies).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys

from ..bench.grid import NAMED_GRIDS, Grid
from ..bench.spread import NOISY_SPREAD
from ..comparison import ab
from ..core import strict_json
from ..core.values import parse_number
from ..machine.environment import environment
from ..machine.fingerprint import check_same_machine, side_fingerprints
from ..report.markdown import write_markdown
from .args import (EXIT_FAIL, EXIT_OK, EXIT_USAGE, UsageError, add_impls, add_sizes, arg_type, error, flatten, fraction,
                   list_of, non_negative_int, positive_int, probability, warn)
from .bench import axes_from_args, check_devices
from .output import ABProgress, human_duration, percent, point_label, sensitivity_line, table, verdict_rows

DEFAULT_GRID = "ci"
# One thread a worker: measured on a shared 2-core VM under load average ~5, two OpenMP
# threads per worker spread a 2 ms point's repeats over 2 ms-600 ms (IQR/median 100-300 %),
# one thread kept it to 5-25 % (README, "Comparing on a noisy machine").
DEFAULT_THREADS = 1
seconds = arg_type(lambda t: parse_number(t, positive=True, what="a positive number of seconds"), "seconds")


def grid_from_args(args: argparse.Namespace) -> tuple[Grid, dict[str, str]]:
    """The named grid (`--grid`) with the axes the flags name replaced, and the module:function specs by name.

    Implementations are not looked up here: they only have to exist in the workers' environments."""
    grid = NAMED_GRIDS[args.grid]
    axes: dict = axes_from_args(args)
    specs: dict[str, str] = {}
    impls = []
    for spec in flatten(args.impl) or []:
        if ":" in spec:
            name, sep, target = spec.partition("=")
            name = name if sep else spec.rpartition(":")[2].split(".")[-1]
            specs[name] = spec
            spec = name
        if spec not in impls:
            impls.append(spec)
    if impls:
        axes["impls"] = tuple(impls)
    return (grid.replace(**axes) if axes else grid), specs


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ab", help="interleaved A/B timing of two Python environments; exit 1 on a regression",
                       description="Time every point of the grid in two environments, alternating them pair by "
                                   "pair, and judge NEW against BASE. Exit 0 no regression, 1 a regression or a "
                                   "point that failed in NEW, 2 bad input.")
    p.add_argument("--base", required=True, metavar="PYTHON", help="Python executable of the reference environment")
    p.add_argument("--new", required=True, metavar="PYTHON", help="Python executable of the environment under test")
    p.add_argument("--grid", choices=sorted(NAMED_GRIDS), default=DEFAULT_GRID,
                   help=f"the grid whose axes the flags below replace (default {DEFAULT_GRID})")
    add_impls(p, "the grid's")
    add_sizes(p, "default: the grid's axis; I defaults to H")
    p.add_argument("--device", type=list_of(str), action="append", help="devices (default: the grid's)")
    p.add_argument("--dtype", type=list_of(str), action="append", help="dtypes (default: the grid's)")
    p.add_argument("--pairs", type=positive_int, default=ab.DEFAULT_PAIRS,
                   help=f"pairs of repeats per point (default {ab.DEFAULT_PAIRS})")
    p.add_argument("--processes", type=positive_int, default=ab.DEFAULT_PROCESSES,
                   help=f"worker generations per side: the pairs are split over this many fresh worker "
                        f"processes, the unit of the test (default {ab.DEFAULT_PROCESSES})")
    p.add_argument("--threshold", type=fraction, default=0.05,
                   help="a significant slowdown estimated above this fails (default 0.05 = 5%%)")
    p.add_argument("--alpha", type=probability, default=0.05, help="significance level (default 0.05)")
    p.add_argument("--threads", type=positive_int, default=DEFAULT_THREADS,
                   help=f"torch threads in each worker (default {DEFAULT_THREADS})")
    p.add_argument("--warmup", type=non_negative_int, default=1, help="untimed calls per point and process")
    p.add_argument("--min-time", type=seconds, default=ab.DEFAULT_MIN_TIME,
                   help=f"a repeat makes as many calls as last this long (default {ab.DEFAULT_MIN_TIME} s)")
    p.add_argument("--seed", type=int, default=0, help="the cases' seed and the pairs' random order")
    p.add_argument("--timeout", type=seconds, default=ab.DEFAULT_TIMEOUT,
                   help=f"seconds a worker may take for one request before it is called hung "
                        f"(default {ab.DEFAULT_TIMEOUT:g})")
    p.add_argument("--base-env", action="append", metavar="NAME=VALUE", help="set in BASE's worker; repeatable")
    p.add_argument("--new-env", action="append", metavar="NAME=VALUE",
                   help="set in NEW's worker; repeatable (e.g. LSTM_BENCH_INJECT_SLOWDOWN=0.1 for a known slowdown)")
    p.add_argument("--json", help="also write every pair and verdict to this new file (never overwritten)")
    p.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    p.add_argument("--across-machines", action="store_true",
                   help="compare although the two sides' hardware fingerprints differ (e.g. another "
                        "CUDA_VISIBLE_DEVICES in --new-env); the result is labelled as such")
    p.add_argument("--markdown", metavar="FILE", help="also write a markdown report to this new file (a PR comment)")
    p.set_defaults(func=run)


def _python(flag: str, path: str) -> str:
    found = shutil.which(path) if os.sep not in path else (path if os.path.exists(path) else None)
    if not found:
        raise UsageError(f"{flag} {path}: no such Python executable")
    if not os.access(found, os.X_OK):
        raise UsageError(f"{flag} {path}: not executable")
    return found


def describe_side(name: str, info: dict) -> str:
    inject = info.get("inject") or 0
    return (f"{name}: {info.get('executable')} (Python {info.get('python')}), lstm-bench {info.get('lstm_bench')} "
            f"from {info.get('lstm_bench_file')}, torch {info.get('torch')}"
            + (f", injected slowdown {100 * inject:g}%" if inject else ""))


def report(result: ab.ABResult) -> str:
    """What the command prints: both sides, the load, the table, what was not compared, the summary."""
    s = result.settings
    lines = [describe_side("BASE", result.base), describe_side("NEW ", result.new)]
    if _identity(result.base) == _identity(result.new):
        lines.append("  (both sides run the same lstm-bench and torch: an A/A comparison)")
    lines.append(f"forward+backward time per call; {s.pairs} pairs a point over {s.processes} worker generation(s), "
                 f"{result.threads} thread(s), repeats of >= {s.min_time:g} s, {human_duration(result.seconds)} wall")
    load = result.load
    if load is not None:
        lines.append(("TAKEN UNDER LOAD: " if load.under_load else "load: ") + load.describe()
                     + (" (verdicts stay calibrated: both sides shared it; the detectable slowdown says what it "
                        "cost)" if load.under_load else ""))
    headers, rows = verdict_rows(result.verdicts, result.points)
    if rows:
        lines.append(table(headers, rows, left=(0, 5, 6, -1) + ((7,) if "config" in headers else ())))
    for r in result.runs:
        if r.new_error:
            lines.append(f"FAILED in NEW: {point_label(r.point)}: {r.new_error}"
                         + ("  (failed in BASE too)" if r.base_error else ""))
        elif r.base_error:
            lines.append(f"not compared, failed in BASE: {point_label(r.point)}: {r.base_error}")
    reasons: dict[str, int] = {}
    for r in result.skipped:
        reasons[r.skipped] = reasons.get(r.skipped, 0) + 1
    lines += [f"skipped {n} point(s): {reason}" for reason, n in reasons.items()]
    noisy = sum(v.noisy for v in result.verdicts)
    if noisy:
        lines.append(f"{noisy} point(s) NOISY: a side's repeats spread by more than {100 * NOISY_SPREAD:.0f}% "
                     f"(IQR/median); the pairing absorbs shared load, the detectable column what is left")
    line = sensitivity_line(result.verdicts, "pairs")
    if line:
        lines.append(line)
    counts = result.counts()
    methods = {v.method for v in result.verdicts}
    test = ("Student's t on the per-generation medians of ln(new/base)" if methods == {"batches"}
            else "Wilcoxon signed-rank on ln(new/base)" if methods == {"pairs"} else "per point")
    lines.append(f"{len(result.verdicts)} points: {counts['faster']} faster, {counts['slower']} slower, "
                 f"{counts['no change']} no change ({test}, Holm, alpha={result.alpha}); "
                 f"{len(result.regressions)} significantly slower by more than {percent(result.threshold, 0)}"
                 + (f"; {len(result.broken)} failed in NEW" if result.broken else ""))
    return "\n".join(lines)


def _identity(info: dict) -> tuple:
    return info.get("executable"), info.get("lstm_bench_file"), info.get("torch"), info.get("inject") or 0


def run(args: argparse.Namespace) -> int:
    base = ab.Side("BASE", _python("--base", args.base), ab.parse_env(args.base_env, "--base-env"))
    new = ab.Side("NEW", _python("--new", args.new), ab.parse_env(args.new_env, "--new-env"))
    grid, specs = grid_from_args(args)
    points = grid.points()
    check_devices(flatten(args.device), points)
    for flag, path in (("--json", args.json), ("--markdown", args.markdown)):
        if path and os.path.exists(path):
            raise UsageError(f"{flag} {path}: already exists (results are never overwritten)")
    fingerprints = side_fingerprints(environment(threads=args.threads), base.env, new.env)
    across = check_same_machine([fingerprints[0]], [fingerprints[1]], across_machines=args.across_machines)
    if args.processes > args.pairs:
        raise UsageError(f"--processes {args.processes} exceeds --pairs {args.pairs}")
    settings = ab.ABSettings(pairs=args.pairs, processes=args.processes, warmup=args.warmup, seed=args.seed,
                             threads=args.threads, min_time=args.min_time, timeout=args.timeout)
    try:
        result = ab.run_ab(base, new, points, specs=specs, settings=settings, threshold=args.threshold,
                           alpha=args.alpha, observer=ABProgress(enabled=not args.no_progress))
    except ab.WorkerError as err:
        error(str(err))
        return EXIT_USAGE
    if not result.verdicts and not result.broken:
        print(report(result))
        error("nothing was compared: every point was skipped or failed in BASE")
        return EXIT_USAGE
    why = ab.underpowered(result)
    if why:
        warn(why)
    if across:
        print(f"ACROSS MACHINES (--across-machines): {across}")
    print(report(result))
    if args.json:
        strict_json.write_new(args.json, result.to_json())
    if args.markdown:
        write_markdown(args.markdown, {**result.to_json(), "across_machines": across,
                                       "machines": {"base": fingerprints[0], "new": fingerprints[1]}})
    sys.stdout.flush()
    return EXIT_FAIL if result.failed else EXIT_OK
