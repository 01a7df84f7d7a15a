"""The `lstm-bench` command (also `python -m lstm_bench`): one module per command.

    lstm-bench                      main_job.py  agreement check of every implementation, then a quick sweep
    lstm-bench check                check.py     agreement against a float64 reference, PASS/FAIL per tensor
    lstm-bench bench                bench.py     a sweep, appended point by point to a JSON-lines file
    lstm-bench plot RESULTS         plot.py      PNG charts of a sweep
    lstm-bench compare BASE NEW     compare.py   per point NEW/BASE ratio, CI and verdict; exit 1 on a regression
    lstm-bench ab --base PY --new PY ab.py       interleaved A/B timing of two environments; exit 1 on a regression
    lstm-bench info                 info.py      the environment a result is recorded with
    lstm-bench flow ...             flow.py      gradient flow through time (lstm_bench.flow)
    lstm-bench test --impl X        test.py      the conformance suite (pytest) on a kernel
    lstm-bench export RESULTS       export.py    a sweep as Bencher BMF, PyTorch v3 records or CSV; --machine: the fingerprint
    lstm-bench report RESULTS...    report.py    markdown (a PR comment) or HTML (plots embedded), per machine

Shared: args.py (exit codes, errors, argument types), output.py (tables, units, progress).
Exit codes, the same for every command (args.py): 0 something judged or measured and all
passed, 1 a check failed / a point failed / a regression, 2 bad input (one line on stderr,
never a traceback; set LSTM_BENCH_DEBUG=1 for one), 3 inconclusive, 5 nothing run, judged or
measured, 130 interrupted.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from . import ab, bench, check, compare, export, flow, info, main_job, plot, report, test
from .args import EXIT_INTERRUPTED, EXIT_USAGE, Parser, UsageError, error

COMMANDS = (check, test, bench, plot, compare, ab, info, flow, export, report)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="lstm-bench", formatter_class=argparse.RawDescriptionHelpFormatter,
                    description="A benchmark and regression harness for LSTM backpropagation through time: "
                                "are the gradients right, and did speed or memory regress?",
                    epilog="With no command: agreement check of every implementation, then a quick sweep. "
                           "Exit codes: 0 something judged or measured and all passed, 1 a check or point failed or "
                           "a regression, 2 bad input, 3 inconclusive, 5 nothing run or measured, 130 interrupted.")
    main_job.add_arguments(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script passes it to sys.exit)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["flow"]:  # everything after `flow` belongs to the flow command's own parser
            return flow.main(argv[1:])
        args = build_parser().parse_args(argv)
        return int(args.func(args))
    except KeyboardInterrupt:
        print("lstm-bench: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`lstm-bench check | head`): not an error of ours. Point
        # stdout at devnull so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (UsageError, ValueError, KeyError, OSError, ImportError) as err:  # ResultsError is a ValueError
        if os.environ.get("LSTM_BENCH_DEBUG"):
            raise
        msg = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        error(" ".join(str(msg).split()) or type(err).__name__)
        return EXIT_USAGE
