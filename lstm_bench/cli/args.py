"""What every command shares: exit codes, the one-line usage error, and argument types.

The exit-code contract, the same for every command (README, "Exit codes"):

    0    at least one thing was judged or measured, and everything passed
    1    a check failed, a point failed, or a regression
    2    bad input: one line on stderr, never a traceback (LSTM_BENCH_DEBUG=1 for one)
    3    inconclusive: a speed comparison whose noise hid a slowdown of the threshold's size
    5    nothing was run, judged or measured (every case or point skipped), as pytest's 5
    130  interrupted (Ctrl-C)

When several apply, the most severe wins: 2 > 1 > 3 > 5 > 0 (`worst`).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from ..bench.results import ResultsError, check_new_output
from ..core.devices import available_devices
from ..core.support import parse_dtype
from ..core.values import parse_fraction, parse_int, parse_probability

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INCONCLUSIVE, EXIT_NOTHING, EXIT_INTERRUPTED = 0, 1, 2, 3, 5, 130
_SEVERITY = (EXIT_USAGE, EXIT_FAIL, EXIT_INCONCLUSIVE, EXIT_NOTHING, EXIT_OK)


def worst(*codes: int) -> int:
    """The exit code of a job made of parts: the most severe of theirs (2 > 1 > 3 > 5 > 0)."""
    return min(codes, key=_SEVERITY.index) if codes else EXIT_NOTHING


class UsageError(Exception):
    """Bad input on the command line: reported as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: `lstm-bench bench: argument -T: ... (see lstm-bench bench --help)`."""

    def error(self, message: str) -> None:
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def warn(msg: str) -> None:
    print(f"lstm-bench: warning: {msg}", file=sys.stderr)


def error(msg: str) -> None:
    print(f"lstm-bench: error: {msg}", file=sys.stderr)


def new_output_dir(path: str | os.PathLike, flag: str) -> Path:
    """Make the folder a command will write into, before the work (`results.check_new_output`, the one
    check of a new output): UsageError naming `flag` when it exists already or cannot be made."""
    try:
        path = check_new_output(path, what="folder", hint=f"name a new {flag}")
        path.mkdir(parents=True)
    except (ResultsError, OSError) as err:
        raise UsageError(f"{flag} {err}") from None
    return path


def arg_type(parse: Callable[[str], Any], name: str) -> Callable[[str], Any]:
    """An argparse type from a parser of `lstm_bench.core.values` (its ValueError becomes argparse's error)."""
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
    convert.__name__ = name
    return convert


positive_int = arg_type(parse_int, "positive_int")
non_negative_int = arg_type(lambda t: parse_int(t, minimum=0), "non_negative_int")
fraction = arg_type(parse_fraction, "fraction")
probability = arg_type(parse_probability, "probability")


def list_of(kind: Callable[[str], Any]) -> Callable[[str], list]:
    """A comma-separated list of `kind`: "10,100" -> [10, 100]; an empty list is an error, not the default."""
    def parse(text: str) -> list:
        parts = [part.strip() for part in text.split(",")]
        if not any(parts) or not all(parts):
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of values, got {text!r}")
        return [kind(part) for part in parts]
    parse.__name__ = getattr(kind, "__name__", "value")
    return parse


def flatten(values: Sequence[Sequence[Any]] | None) -> list | None:
    """`-T 10,100 -T 500` gives [10, 100, 500] (repeats dropped); None when the flag was not given."""
    if not values:
        return None
    out: list = []
    for group in values:
        for v in group:
            if v not in out:
                out.append(v)
    return out


def add_sizes(parser: argparse.ArgumentParser, what: str) -> None:
    """-T -B -I -H, each a comma list, repeatable."""
    for flag, name in (("T", "sequence length"), ("B", "batch size"), ("I", "input size"), ("H", "hidden size")):
        parser.add_argument(f"-{flag}", dest=flag, type=list_of(positive_int), action="append", metavar="N[,N...]",
                            help=f"{name} ({what})")


def add_impls(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument("--impl", type=list_of(str), action="append", metavar="NAME|module:function",
                        help=f"implementations, registered names or module:function / file.py:function "
                             f"(default: {default}); repeatable")


def add_threads(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=positive_int,
                        help="torch's CPU threads (default: $LSTM_BENCH_THREADS, else the CPUs that other processes "
                             "leave free when the command starts, 1 to 4; docs/measurement.md)")



def check_dtypes(dtypes) -> None:
    """UsageError naming the first dtype that no case can be made in (`core.support.parse_dtype`, the one
    parser of every command)."""
    for d in dtypes or ():
        try:
            parse_dtype(d)
        except ValueError as err:
            raise UsageError(f"--dtype {d}: {err}") from None


def check_devices(requested, points) -> None:
    """A CI job that asked for a device must not stay green when nothing was measured: UsageError when every
    point asked for is on a device missing here (only when --device was given)."""
    if requested and points and not any(p.device in available_devices() for p in points):
        raise UsageError(f"--device {','.join(requested)}: not available here (available: "
                         f"{', '.join(available_devices())}); nothing would be measured")


# The grid axes that a command's flags replace, flag -> axis (a command may lack some flags).
AXIS_FLAGS = (("T", "T"), ("H", "H"), ("B", "B"), ("I", "I"), ("device", "devices"), ("dtype", "dtypes"),
              ("config", "variants"))


def axes_from_args(args: argparse.Namespace) -> dict[str, tuple]:
    """The axes given on the command line (sizes, devices, dtypes, configurations), checked dtypes first."""
    check_dtypes(flatten(getattr(args, "dtype", None)))
    axes = {}
    for flag, axis in AXIS_FLAGS:
        values = flatten(getattr(args, flag, None))
        if values:
            axes[axis] = tuple(values)
    return axes


def check_new_file(path: str | os.PathLike, flag: str) -> Path:
    """Validate, before any work, a file a command will write at the end (`--json`, `--markdown`):
    `results.check_new_output`, with the error naming `flag` (UsageError, exit 2)."""
    try:
        path = check_new_output(path, what="output", hint=f"name a new {flag}")
    except ResultsError as err:
        raise UsageError(f"{flag} {err}") from None
    if not path.absolute().parent.is_dir():  # written whole at the end, into a folder that must exist
        raise UsageError(f"{flag} {path}: no such folder {path.absolute().parent}")
    return path
