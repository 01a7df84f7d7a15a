"""`lstm-bench compare BASE NEW`: per point NEW/BASE time ratio, its CI and an outcome.

The analysis is `lstm_bench.comparison.runs.compare_runs` (a `SpeedVerdict`); this module
prints it with the one renderer of speed verdicts (`output.verdict_report`). Exit 1 on a
regression, a point that failed in NEW, or a point measured in BASE that NEW lacks (unless
--allow-missing); 3 when a point is inconclusive (the noise hid a slowdown of the
threshold's size, or it was measured under load); 5 when nothing was compared; 2 on bad
input (--json is checked before anything is read).
"""
from __future__ import annotations

import argparse

from ..comparison.runs import compare_runs, load_side
from ..core import strict_json
from ..machine.fingerprint import check_same_machine
from ..report.markdown import write_markdown
from .args import check_new_file, fraction, probability, warn
from .output import verdict_exit_code, verdict_report


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="NEW/BASE per point with CI and outcome; exit 1 on a regression, 3 inconclusive",
                       description="Judge NEW's recorded runs against BASE's, point by point. Exit 0 no change "
                                   "(or faster), 1 a regression or a point failed in or missing from NEW, 3 "
                                   "inconclusive (the noise, or load, hid a slowdown of the threshold's size), 5 "
                                   "nothing compared, 2 bad input.")
    p.add_argument("base", help="results file, a directory of them, or a comma-separated list (one run each)")
    p.add_argument("new", help="the same for the change under test")
    p.add_argument("--threshold", type=fraction, default=0.05,
                   help="a significant slowdown estimated above this fails (default 0.05 = 5%%)")
    p.add_argument("--alpha", type=probability, default=0.05, help="significance level (default 0.05)")
    p.add_argument("--correction", choices=["holm", "none"], default="holm",
                   help="multiple-comparison correction over the points (default holm)")
    p.add_argument("--metric", choices=["forward_backward", "forward"], default="forward_backward",
                   help="which recorded time to compare (default forward_backward)")
    p.add_argument("--allow-missing", action="store_true",
                   help="do not fail when NEW lacks points that BASE measured (they are still listed)")
    p.add_argument("--force", action="store_true",
                   help="compare even across torch versions, thread counts, machines or grids (warns)")
    p.add_argument("--json", help="also write the verdict to this new JSON file (checked before anything is read; "
                                  "never overwritten)")
    p.add_argument("--across-machines", action="store_true",
                   help="compare BASE and NEW although their hardware fingerprints differ (labelled as such)")
    p.add_argument("--markdown", metavar="FILE", help="also write a markdown report to this new file (a pull-request "
                                                      "comment; checked first, never overwritten)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    for flag, path in (("--json", args.json), ("--markdown", args.markdown)):
        if path:
            check_new_file(path, flag)
    base_runs, new_runs = load_side(args.base), load_side(args.new)
    across = check_same_machine([r.fingerprint for r in base_runs], [r.fingerprint for r in new_runs],
                                across_machines=args.across_machines)
    verdict = compare_runs(base_runs, new_runs, metric=args.metric, threshold=args.threshold,
                           alpha=args.alpha, correction=args.correction, force=args.force or across is not None,
                           allow_missing=args.allow_missing)
    if across:
        print(f"ACROSS MACHINES (--across-machines): {across}")
    for warning in verdict.warnings:
        warn(warning)
    print(verdict_report(verdict))
    doc = {**verdict.to_json(), "across_machines": across,
           "machines": {"base": base_runs[0].fingerprint, "new": new_runs[0].fingerprint}}
    if args.json:
        strict_json.write_new(args.json, doc)
    if args.markdown:
        write_markdown(args.markdown, doc)
    return verdict_exit_code(verdict)
