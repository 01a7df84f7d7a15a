"""CPU instruction counts of one forward+backward: a timing-free metric for CPU-side overhead.

Wall time on a shared machine moves by tens of percent; the number of instructions a
step executes does not depend on the load at all. `count_instructions(point)` runs the
step under valgrind's callgrind through `torch.utils.benchmark.Timer.collect_callgrind`
(in a separate process, which imports this installation of lstm-bench), `repeats`
times `number` calls, and reports instructions per call: an overhead regression of
~1 % in the Python or dispatcher work of a small point is visible in it, where no
timing could show it. (The same idea as CodSpeed's instruction-count mode.)

Only for small CPU points (`eligible`): callgrind runs the code ~50-100x slower, and on
large points the count is dominated by the GEMM kernels' own loops, which a timing sees
well anyway. Always one thread: OpenMP worker threads spin-wait for a varying number
of instructions, which would make the count as noisy as a timing.

Where valgrind (Debian's `valgrind` package: valgrind, callgrind_control,
callgrind_annotate) is missing, `unavailable_reason()` says so and callers skip with that reason.
"""
from __future__ import annotations

import shutil
import statistics
from dataclasses import dataclass
from pathlib import Path

from .grid import Point

TOOLS = ("valgrind", "callgrind_control", "callgrind_annotate")
MAX_FLOPS = 50e6  # forward+backward GEMM FLOPs of the largest point counted (T=100, B=1, H=64: 19.7e6)
MAX_T = 100
DEFAULT_NUMBER = 1
DEFAULT_REPEATS = 3
WARMUP = 3
PACKAGE_ROOT = Path(__file__).resolve().parent.parent


class InstructionsUnavailable(RuntimeError):
    """Instruction counting cannot run here or for this point; the message says why."""


def unavailable_reason() -> str | None:
    """Why instructions cannot be counted on this machine, or None when they can."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return f"valgrind is not installed ({', '.join(missing)} not found; on Debian/Ubuntu: apt-get install valgrind)"
    try:
        import torch

        if not torch._C._valgrind_supported_platform():
            return "this torch build has no valgrind support (torch._C._valgrind_supported_platform() is False)"
    except AttributeError:
        return "this torch has no callgrind bindings (torch.utils.benchmark.Timer.collect_callgrind)"
    return None


def ineligible_reason(point: Point) -> str | None:
    """Why `point` is not instruction-counted, or None when it is (small CPU points only; module docstring)."""
    from ..impls import BUILTIN

    if point.device != "cpu":
        return f"instruction counts are for CPU points, not {point.device}"
    if point.flops > MAX_FLOPS or point.T > MAX_T:
        return (f"too big to count under callgrind: {point.flops / 1e6:.0f} MFLOP a step (limit "
                f"{MAX_FLOPS / 1e6:.0f}), T={point.T} (limit {MAX_T})")
    if point.impl not in BUILTIN:
        return f"instruction counts run the built-in implementations only, not {point.impl!r}"
    return None


@dataclass(frozen=True)
class InstructionCount:
    """Instructions per forward+backward call of one point, one figure per repeat."""

    point: Point
    repeats: tuple[int, ...]
    number: int

    @property
    def per_call(self) -> int:
        """The median over the repeats."""
        return int(statistics.median(self.repeats))

    @property
    def spread(self) -> float:
        """(max - min) / median over the repeats: the run-to-run variation of the count."""
        return (max(self.repeats) - min(self.repeats)) / self.per_call if self.per_call else 0.0


def _setup(point: Point, seed: int) -> str:
    # The callgrind process is a fresh interpreter: it imports this very installation (not
    # whatever `import lstm_bench` would find there) and rebuilds the step.
    return "\n".join([
        "import sys",
        f"sys.path.insert(0, {str(PACKAGE_ROOT)!r})",
        "import torch",
        "torch.set_num_threads(1)",
        "from lstm_bench.bench.grid import Point",
        "from lstm_bench.core.registry import get_impl",
        "from lstm_bench.machine.timing import step_fn",
        f"point = Point.from_dict({point.as_dict()!r})",
        f"fn = step_fn(get_impl(point.impl), point.case({seed}), backward=True)",
        # warm-up: first-call allocations and lazy initialisation are not the step's cost;
        # then no garbage collection inside the counted calls (when it runs depends on history)
        f"for _ in range({WARMUP}):",
        "    fn()",
        "import gc",
        "gc.collect()",
        "gc.disable()",
    ])


def count_instructions(point: Point, *, seed: int = 0, number: int = DEFAULT_NUMBER,
                       repeats: int = DEFAULT_REPEATS) -> InstructionCount:
    """Instructions per forward+backward call at `point` (one thread), `repeats` collections of `number` calls.

    InstructionsUnavailable naming the reason when valgrind is missing or the point is not eligible."""
    from ..core.values import check_int

    check_int("number", number, 1)
    check_int("repeats", repeats, 1)
    reason = unavailable_reason() or ineligible_reason(point)
    if reason:
        raise InstructionsUnavailable(reason)
    import torch
    from torch.utils.benchmark import Timer

    # collect_callgrind checks the statement once in this process first: one thread here too
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        stats = Timer("fn()", setup=_setup(point, seed)).collect_callgrind(number=number, repeats=repeats)
    finally:
        torch.set_num_threads(before)
    counts = tuple(int(round(s.counts(denoise=True) / number)) for s in stats)
    return InstructionCount(point, counts, number)
