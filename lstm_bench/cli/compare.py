"""`lstm-bench compare BASE NEW`: per point NEW/BASE time ratio, its CI and a verdict; exit 1 on a regression.

The analysis is `lstm_bench.comparison.compare_runs`; this module prints its result.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..comparison import Comparison, compare_runs, load_side
from .args import EXIT_FAIL, EXIT_OK, fraction, probability, warn
from .output import human_duration, table


def report(c: Comparison, base: str, new: str) -> str:
    """The comparison as the command prints it: a line, the notes, the table, what was not compared, a summary."""
    rows = []
    for v in c.verdicts:
        p = c.points[v.key]
        verdict = v.verdict + ("  REGRESSION" if v.regression else "")
        rows.append([p.impl, p.T, p.B, p.I, p.H, p.device, p.dtype, human_duration(v.base_median),
                     human_duration(v.new_median), f"{v.ratio:.3f}", f"[{v.ci_low:.3f}, {v.ci_high:.3f}]",
                     f"{v.p_adjusted:.2g}", verdict])
    pooled = f" ({c.base_runs} vs {c.new_runs} runs pooled)" if c.base_runs + c.new_runs > 2 else ""
    lines = [f"{c.metric.replace('_', '+')} time, NEW {new} / BASE {base}{pooled}"]
    lines += [f"  {note}" for note in c.notes]
    lines.append(table(["impl", "T", "B", "I", "H", "device", "dtype", "base", "new", "new/base", "95% CI",
                        "p (Holm)" if c.correction == "holm" else "p", "verdict"], rows, left=(0, 5, 6, -1)))
    lines += [f"not compared (not measured in both): {key}" + ("  FAILED in NEW" if key in c.broken else "")
              for key in c.missing]
    counts = c.counts()
    lines.append(f"{len(c.verdicts)} points: {counts['faster']} faster, {counts['slower']} slower, "
                 f"{counts['no change']} no change (Mann-Whitney U, alpha={c.alpha}); "
                 f"{len(c.regressions)} significantly slower by more than {100 * c.threshold:.0f}%"
                 + (f"; {len(c.broken)} measured in BASE but failed in NEW" if c.broken else ""))
    return "\n".join(lines)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="NEW/BASE per point with CI and verdict; exit 1 on a regression")
    p.add_argument("base", help="results file, a directory of them, or a comma-separated list (runs pooled)")
    p.add_argument("new", help="the same for the change under test")
    p.add_argument("--threshold", type=fraction, default=0.10,
                   help="a significant slowdown larger than this fails (default 0.10 = 10%%)")
    p.add_argument("--alpha", type=probability, default=0.05, help="significance level (default 0.05)")
    p.add_argument("--correction", choices=["holm", "none"], default="holm",
                   help="multiple-comparison correction over the points (default holm)")
    p.add_argument("--metric", choices=["forward_backward", "forward"], default="forward_backward")
    p.add_argument("--force", action="store_true",
                   help="compare even across torch versions, thread counts, machines or grids (warns)")
    p.add_argument("--json", help="also write the verdicts to this JSON file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    c = compare_runs(load_side(args.base), load_side(args.new), metric=args.metric, threshold=args.threshold,
                     alpha=args.alpha, correction=args.correction, force=args.force)
    for problem in c.problems:
        warn(problem + " (compared anyway: --force)")
    if c.underpowered:
        warn(c.underpowered)
    print(report(c, args.base, args.new))
    if args.json:
        Path(args.json).write_text(json.dumps([v.to_dict() for v in c.verdicts], indent=1))
    return EXIT_FAIL if c.failed else EXIT_OK
