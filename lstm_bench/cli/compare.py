"""`lstm-bench compare BASE NEW`: per point NEW/BASE time ratio, its CI and a verdict; exit 1 on a regression.

The analysis is `lstm_bench.comparison.runs.compare_runs`; this module prints its result.
Exit 1 on a regression, on a point that failed in NEW, or on a point measured in BASE
that NEW lacks (unless --allow-missing); 2 on bad input.
"""
from __future__ import annotations

import argparse
import os

from ..bench.spread import NOISY_SPREAD
from ..comparison.runs import Comparison, compare_runs, load_side
from ..core import strict_json
from ..machine.fingerprint import check_same_machine
from ..report.markdown import write_markdown
from .args import EXIT_FAIL, EXIT_OK, UsageError, fraction, probability, warn
from .output import percent, sensitivity_line, table, verdict_rows


def report(c: Comparison, base: str, new: str) -> str:
    """The comparison as the command prints it: a line, the notes, the table, what was not compared, a summary."""
    pooled = f" ({c.base_runs} vs {c.new_runs} runs)" if c.base_runs + c.new_runs > 2 else ""
    lines = [f"{c.metric.replace('_', '+')} time, NEW {new} / BASE {base}{pooled}"]
    lines += [f"  {note}" for note in c.notes]
    if c.load is not None:
        lines.append(("  TAKEN UNDER LOAD: " if c.under_load else "  load: ") + c.load.describe()
                     + (" (separate runs do not share it: alternate runs, or use `lstm-bench ab`)"
                        if c.under_load else ""))
    headers, rows = verdict_rows(c.verdicts, c.points, show_method=True)
    if rows:
        lines.append(table(headers, rows, left=(0, 5, 6, -2, -1) + ((7,) if "config" in headers else ())))
    for key in c.missing:
        tag = ("  FAILED in NEW" if key in c.broken else
               "  MISSING in NEW" + (" (allowed)" if c.allow_missing else "") if key in c.missing_in_new else "")
        lines.append(f"not compared (not measured on both sides): {key}{tag}")
    noisy = sum(v.noisy for v in c.verdicts)
    if noisy:
        lines.append(f"{noisy} point(s) NOISY: a run's repeats spread by more than {100 * NOISY_SPREAD:.0f}% "
                     f"(IQR/median)")
    line = sensitivity_line([v for v in c.verdicts if v.method == "runs"], "runs a side")
    if line:
        lines.append(line)
    counts = c.counts()
    methods = sorted({v.method for v in c.verdicts})
    test = {"runs": "Welch's t on log run medians", "repeats": "Mann-Whitney U on repeats"}
    lines.append(f"{len(c.verdicts)} points: {counts['faster']} faster, {counts['slower']} slower, "
                 f"{counts['no change']} no change ({' / '.join(test[m] for m in methods) or 'no test'}, "
                 f"{c.correction}, alpha={c.alpha}); "
                 f"{len(c.regressions)} significantly slower by more than {percent(c.threshold, 0)}"
                 + _broken_text(c)
                 + (f"; {len(c.missing_in_new)} measured in BASE but missing in NEW"
                    + (" (allowed)" if c.allow_missing else "") if c.missing_in_new else ""))
    return "\n".join(lines)


def _broken_text(c: Comparison) -> str:
    was_ok = sum(k in c.base_ok for k in c.broken)
    both = len(c.broken) - was_ok
    return ((f"; {was_ok} measured in BASE but failed in NEW" if was_ok else "")
            + (f"; {both} failed in NEW (and not measured in BASE)" if both else ""))


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="NEW/BASE per point with CI and verdict; exit 1 on a regression")
    p.add_argument("base", help="results file, a directory of them, or a comma-separated list (one run each)")
    p.add_argument("new", help="the same for the change under test")
    p.add_argument("--threshold", type=fraction, default=0.05,
                   help="a significant slowdown estimated above this fails (default 0.05 = 5%%)")
    p.add_argument("--alpha", type=probability, default=0.05, help="significance level (default 0.05)")
    p.add_argument("--correction", choices=["holm", "none"], default="holm",
                   help="multiple-comparison correction over the points (default holm)")
    p.add_argument("--metric", choices=["forward_backward", "forward"], default="forward_backward")
    p.add_argument("--allow-missing", action="store_true",
                   help="do not fail when NEW lacks points that BASE measured (they are still listed)")
    p.add_argument("--force", action="store_true",
                   help="compare even across torch versions, thread counts, machines or grids (warns)")
    p.add_argument("--json", help="also write the verdicts to this new JSON file (never overwritten)")
    p.add_argument("--across-machines", action="store_true",
                   help="compare BASE and NEW although their hardware fingerprints differ (labelled as such)")
    p.add_argument("--markdown", metavar="FILE", help="also write a markdown report to this new file (a PR comment)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    for flag, path in (("--json", args.json), ("--markdown", args.markdown)):
        if path and os.path.exists(path):
            raise UsageError(f"{flag} {path}: already exists (results are never overwritten)")
    base_runs, new_runs = load_side(args.base), load_side(args.new)
    across = check_same_machine([r.fingerprint for r in base_runs], [r.fingerprint for r in new_runs],
                                across_machines=args.across_machines)
    c = compare_runs(base_runs, new_runs, metric=args.metric, threshold=args.threshold,
                     alpha=args.alpha, correction=args.correction, force=args.force or across is not None,
                     allow_missing=args.allow_missing)
    if across:
        print(f"ACROSS MACHINES (--across-machines): {across}")
    for problem in c.problems:
        warn(problem + " (compared anyway: --force)")
    if c.underpowered:
        warn(c.underpowered)
    print(report(c, args.base, args.new))
    if args.json:
        strict_json.write_new(args.json, [v.to_dict() for v in c.verdicts])
    if args.markdown:
        write_markdown(args.markdown, {"kind": "lstm-bench-compare", "verdicts": [v.to_dict() for v in c.verdicts],
                                       "threshold": c.threshold, "alpha": c.alpha, "broken": c.broken,
                                       "missing_in_new": c.missing_in_new, "across_machines": across,
                                       "machines": {"base": base_runs[0].fingerprint,
                                                    "new": new_runs[0].fingerprint}})
    return EXIT_FAIL if c.failed else EXIT_OK
