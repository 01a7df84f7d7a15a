"""`lstm-bench ab --base PYTHON --new PYTHON`: interleaved A/B comparison of two environments.

The runner is `lstm_bench.comparison.ab.run_ab` (a `SpeedVerdict`); this module parses the
flags, shows progress and prints the verdict with the one renderer of speed verdicts
(`output.verdict_report`). Exit 0: no change (or faster) at every point compared; 1: a
regression, or a point NEW failed at (an error, NaN/Inf, a wrong or cached result); 3:
inconclusive (the noise hid a slowdown of the threshold's size: the summary says how many
more pairs would decide it); 5: nothing compared; 2: bad input (flags, --json, a Python
that cannot be run, a worker that dies); 130: interrupted (the table and --json of the
pairs that finished are still written).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys

from ..bench.grid import NAMED_GRIDS, Grid
from ..comparison import ab
from ..core import strict_json
from ..core.values import parse_number
from ..machine.environment import environment
from ..machine.fingerprint import check_same_machine, side_fingerprints
from ..report.markdown import write_markdown
from .args import (EXIT_USAGE, UsageError, add_impls, add_sizes, arg_type, axes_from_args, check_devices,
                   check_new_file, error, flatten, fraction, list_of, non_negative_int, positive_int, probability, warn)
from .output import ABProgress, verdict_exit_code, verdict_report

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
    p = sub.add_parser("ab", help="interleaved A/B timing of two Python environments; exit 1 on a regression, "
                                  "3 inconclusive",
                       description="Time every point of the grid in two environments, alternating them pair by "
                                   "pair, and judge NEW against BASE; both sides' results are judged under the "
                                   "tolerance policy before and after the timing. Exit 0 no change (or faster), 1 "
                                   "a regression or a point NEW failed at (error, NaN/Inf, wrong or cached result), "
                                   "3 inconclusive (the noise hid a slowdown of the threshold's size), 5 nothing "
                                   "compared, 2 bad input, 130 interrupted (what finished is still written).")
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
    p.add_argument("--warmup", type=non_negative_int, default=1,
                   help="untimed calls per point and worker process (default 1)")
    p.add_argument("--min-time", type=seconds, default=ab.DEFAULT_MIN_TIME,
                   help=f"a repeat makes as many calls as last this long (default {ab.DEFAULT_MIN_TIME} s)")
    p.add_argument("--seed", type=int, default=0,
                   help="the cases' seed (the check case after the timing: seed + 1) and the pairs' random order "
                        "(default 0)")
    p.add_argument("--timeout", type=seconds, default=ab.DEFAULT_TIMEOUT,
                   help=f"seconds a worker may take for one request before it is called hung "
                        f"(default {ab.DEFAULT_TIMEOUT:g})")
    p.add_argument("--base-env", action="append", metavar="NAME=VALUE", help="set in BASE's worker; repeatable")
    p.add_argument("--new-env", action="append", metavar="NAME=VALUE",
                   help="set in NEW's worker; repeatable (e.g. LSTM_BENCH_INJECT_SLOWDOWN=0.1 for a known slowdown)")
    p.add_argument("--json", help="also write every pair and the verdict to this new file (checked before the "
                                  "work; never overwritten; written on Ctrl-C too)")
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


def run(args: argparse.Namespace) -> int:
    base = ab.Side("BASE", _python("--base", args.base), ab.parse_env(args.base_env, "--base-env"))
    new = ab.Side("NEW", _python("--new", args.new), ab.parse_env(args.new_env, "--new-env"))
    grid, specs = grid_from_args(args)
    points = grid.points()
    check_devices(flatten(args.device), points)
    for flag, path in (("--json", args.json), ("--markdown", args.markdown)):
        if path:
            check_new_file(path, flag)
    fingerprints = side_fingerprints(environment(threads=args.threads), base.env, new.env)
    across = check_same_machine([fingerprints[0]], [fingerprints[1]], across_machines=args.across_machines)
    if args.processes > args.pairs:
        raise UsageError(f"--processes {args.processes} exceeds --pairs {args.pairs}")
    settings = ab.ABSettings(pairs=args.pairs, processes=args.processes, warmup=args.warmup, seed=args.seed,
                             threads=args.threads, min_time=args.min_time, timeout=args.timeout)
    try:
        verdict = ab.run_ab(base, new, points, specs=specs, settings=settings, threshold=args.threshold,
                            alpha=args.alpha, observer=ABProgress(enabled=not args.no_progress))
    except ab.WorkerError as err:
        error(str(err))
        return EXIT_USAGE
    for warning in verdict.warnings:
        warn(warning)
    if across:
        print(f"ACROSS MACHINES (--across-machines): {across}")
    print(verdict_report(verdict))
    doc = {**verdict.to_json(), "across_machines": across,
           "machines": {"base": fingerprints[0], "new": fingerprints[1]}}
    if args.json:
        strict_json.write_new(args.json, doc)
    if args.markdown:
        write_markdown(args.markdown, doc)
    sys.stdout.flush()
    if verdict.status == "nothing" and not verdict.interrupted:
        error("nothing was compared: every point was skipped, or failed or was wrong in BASE")
    return verdict_exit_code(verdict)
