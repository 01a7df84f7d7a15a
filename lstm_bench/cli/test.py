"""`lstm-bench test --impl MODULE:FUNCTION [-- PYTEST ARGS]`: the whole conformance suite on a kernel.

The same as `pytest --pyargs lstm_bench.conformance --lstm-impl MODULE:FUNCTION ...`; the
exit status is pytest's (0 everything passed, 1 tests failed, 2 interrupted, 3 internal error,
4 usage error, 5 no tests collected), except that a run in which every test was skipped — a
CUDA-only kernel on a machine without a GPU, say — exits 5 as well: nothing was judged, so
nothing passed (the contract of cli/args.py).
"""
from __future__ import annotations

import argparse
import sys

import pytest

from ..conformance.cases import DEPTHS
from ..core.devices import KNOWN_DEVICES
from .args import EXIT_NOTHING, list_of, positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("test", help="the conformance suite on your kernel (pytest's exit status)",
                       description="Run lstm-bench's whole conformance suite (pytest) on the kernels named. "
                                   "Arguments after -- go to pytest, e.g. -- -x -n auto -k random.")
    p.add_argument("--impl", type=list_of(str), action="append", required=True, metavar="NAME|MODULE:FUNCTION",
                   help="kernel(s) to test: module:function, path/file.py:function or a registered name")
    p.add_argument("--depth", choices=DEPTHS, default="default",
                   help="quick, default, or nightly (more and longer cases, 300 random ones)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random cases (default 0)")
    p.add_argument("--examples", type=positive_int, help="random cases per kernel and device")
    p.add_argument("--device", action="append", choices=KNOWN_DEVICES, help="devices (default: every one)")
    p.add_argument("--threads", type=positive_int, default=1, help="torch's CPU threads (default 1)")
    p.add_argument("pytest_args", nargs="*", metavar="-- PYTEST ARGS", help="passed on to pytest")
    p.set_defaults(func=run)


def pytest_argv(args: argparse.Namespace) -> list[str]:
    """The pytest command line that `lstm-bench test` runs."""
    argv = ["--pyargs", "lstm_bench.conformance", "-p", "lstm_bench.conformance.plugin", "-p", "no:cacheprovider",
            "-m", "",  # every gate, the PT2 family too, whatever a project's addopts deselect
            "--lstm-depth", args.depth, "--lstm-seed", str(args.seed), "--lstm-threads", str(args.threads)]
    for group in args.impl:
        for spec in group:
            argv += ["--lstm-impl", spec]
    for device in args.device or []:
        argv += ["--lstm-device", device]
    if args.examples:
        argv += ["--lstm-examples", str(args.examples)]
    return argv + list(args.pytest_args)


class _Judged:
    """A pytest plugin that counts the tests that ran to a verdict (passed or failed, in any phase)."""

    def __init__(self) -> None:
        self.judged = 0

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # xdist replays its workers' reports on the controller, so this counts them too
        if report.when == "call" and (report.passed or report.failed) or report.failed:
            self.judged += 1


def run(args: argparse.Namespace) -> int:
    judged = _Judged()
    code = int(pytest.main(pytest_argv(args), plugins=[judged]))
    if code == pytest.ExitCode.OK and judged.judged == 0:
        print("lstm-bench test: nothing was judged: every test was skipped (see the reasons above)", file=sys.stderr)
        return EXIT_NOTHING
    return code
