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

What is counted is said with the count (`InstructionCount.counted`), because it is not always
what was timed:
- valgrind 3.19 cannot decode AVX-512, which `-march=native` puts in the vectorised path's
  C library on an AVX-512 CPU (the count died with "unhandled instruction"). The callgrind
  process builds that library with `-march=x86-64-v3` (AVX2, FMA) instead (`COUNT_MARCH`,
  through `$LSTM_BENCH_FUSED_MARCH`): the same C, in AVX2 instructions.
- The vectorised path runs the route it was timed on (`backend`, pinned through
  `$LSTM_BENCH_VECTORISED_ROUTE`), else its fixed rule: never a timing probe under callgrind.
- MKL and oneDNN choose their kernels by CPUID, which valgrind reports without AVX-512: their
  AVX2 code paths are counted.

torch's `collect_callgrind` starts `valgrind ... python script.py`, `python` taken from PATH,
and fails unless it is this interpreter: `_this_python_first_on_path` puts it there (a
virtualenv's interpreter run from outside the activated environment found another `python`,
without torch, under `asv run --python=same`).
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..core.values import check_int
from ..impls import BUILTIN
from .grid import Point

TOOLS = ("valgrind", "callgrind_control", "callgrind_annotate")
MAX_FLOPS = 50e6  # forward+backward GEMM FLOPs of the largest point counted (T=100, B=1, H=64: 19.7e6)
MAX_T = 100
DEFAULT_NUMBER = 1
DEFAULT_REPEATS = 3
WARMUP = 3
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
# -march for the vectorised path's C library under callgrind: x86-64 with AVX2 and FMA, no AVX-512,
# which valgrind 3.19 cannot decode (module docstring). Only on x86-64; elsewhere -march=native stays.
COUNT_MARCH = "x86-64-v3" if platform.machine().lower() in ("x86_64", "amd64") else None
FUSED_MARCH_ENV = "LSTM_BENCH_FUSED_MARCH"  # read by lstm_bench.impls.vectorised.fused
ROUTE_ENV = "LSTM_BENCH_VECTORISED_ROUTE"  # read by lstm_bench.impls.vectorised.routes


class InstructionsUnavailable(RuntimeError):
    """Instruction counting cannot run here or for this point; the message says why."""


class InstructionsFailed(RuntimeError):
    """The callgrind run failed; the message is one line saying why (valgrind's output condensed)."""


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
    counted: str = ""  # what ran under callgrind: the backend, and the C library's -march where it was changed

    @property
    def per_call(self) -> int:
        """The median over the repeats."""
        return int(statistics.median(self.repeats))

    @property
    def spread(self) -> float:
        """(max - min) / median over the repeats: the run-to-run variation of the count."""
        return (max(self.repeats) - min(self.repeats)) / self.per_call if self.per_call else 0.0


def _route_pin(backend: str | None) -> str:
    """The vectorised route to count: the plain layers' route in `backend` ("vectorised[a]" or
    "vectorised[a|b]", a layer with a projection or lengths being on torch-ops), else the fixed rule."""
    m = re.fullmatch(r"vectorised\[(.+)\]", backend or "")
    if not m:
        return "rule"
    ran = m.group(1).split("|")
    fused = [r for r in ran if not r.endswith("+torch-ops")]
    return (fused or ran)[0]


def _setup(point: Point, seed: int, report: Path, backend: str | None) -> str:
    # The callgrind process is a fresh interpreter: it imports this very installation (not
    # whatever `import lstm_bench` would find there) and rebuilds the step. collect_callgrind
    # also runs this setup once in this process (a check of the statement): the settings and
    # the report are for the callgrind process only, told apart by its process id.
    env = {ROUTE_ENV: _route_pin(backend)}
    if COUNT_MARCH:
        env[FUSED_MARCH_ENV] = COUNT_MARCH
    return "\n".join([
        "import json, os, sys",
        f"counting = os.getpid() != {os.getpid()}",
        "if counting:",
        f"    os.environ.update({env!r})",
        f"sys.path.insert(0, {str(PACKAGE_ROOT)!r})",
        "import torch",
        "torch.set_num_threads(1)",
        "from lstm_bench.bench.grid import Point",
        "from lstm_bench.core.registry import get_impl",
        "from lstm_bench.machine.timing import step_fn",
        f"point = Point.from_dict({point.as_dict()!r})",
        f"case = point.case({seed})",
        "if counting:",  # what runs, said with the count
        f"    with open({str(report)!r}, 'w') as f:",
        "        json.dump({'backend': get_impl(point.impl)(case).backend}, f)",
        "fn = step_fn(get_impl(point.impl), case, backward=True)",
        # warm-up: first-call allocations and lazy initialisation are not the step's cost;
        # then no garbage collection inside the counted calls (when it runs depends on history)
        f"for _ in range({WARMUP}):",
        "    fn()",
        "import gc",
        "gc.collect()",
        "gc.disable()",
    ])


@contextlib.contextmanager
def _this_python_first_on_path() -> Iterator[None]:
    """PATH with a `python` that is this interpreter first, for collect_callgrind's subprocess."""
    here = Path(sys.executable)
    old = os.environ.get("PATH", "")
    with tempfile.TemporaryDirectory(prefix="lstm-bench-python-") as tmp:
        if (here.parent / "python").exists() and (here.parent / "python").resolve() == here.resolve():
            first = str(here.parent)  # a virtualenv's bin: its `python` keeps the environment's packages
        else:  # e.g. only python3.11 there: a `python` link to it
            (Path(tmp) / "python").symlink_to(here)
            first = tmp
        os.environ["PATH"] = os.pathsep.join([first, old]) if old else first
        try:
            yield
        finally:
            os.environ["PATH"] = old


def _one_line(err: BaseException) -> str:
    """collect_callgrind's error (30 lines of valgrind output) as one line saying why."""
    text = str(err)
    if "unhandled instruction" in text or "Illegal opcode" in text or "SIGILL" in text:
        return ("valgrind cannot decode an instruction of this code (valgrind 3.19 does not know AVX-512: "
                f"is there code built with -march=native that {FUSED_MARCH_ENV} does not reach?)")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("==")]
    errors = [ln for ln in lines if re.match(r"\w*(Error|Exception)\b", ln)]
    return (errors or lines or [type(err).__name__])[-1][:300]


def count_instructions(point: Point, *, seed: int = 0, number: int = DEFAULT_NUMBER,
                       repeats: int = DEFAULT_REPEATS, backend: str | None = None) -> InstructionCount:
    """Instructions per forward+backward call at `point` (one thread), `repeats` collections of `number` calls.

    `backend`: the `Result.backend` of the timed run, whose vectorised route is then counted
    (module docstring). InstructionsUnavailable naming the reason when valgrind is missing or the
    point is not eligible; InstructionsFailed with a one-line reason when the callgrind run fails."""
    check_int("number", number, 1)
    check_int("repeats", repeats, 1)
    reason = unavailable_reason() or ineligible_reason(point)
    if reason:
        raise InstructionsUnavailable(reason)
    import torch
    from torch.utils.benchmark import Timer

    # collect_callgrind checks the statement once in this process first: one thread here too
    before = torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="lstm-bench-count-") as tmp, _this_python_first_on_path():
        report = Path(tmp) / "counted.json"
        try:
            torch.set_num_threads(1)
            stats = Timer("fn()", setup=_setup(point, seed, report, backend)).collect_callgrind(
                number=number, repeats=repeats)
        except (OSError, RuntimeError, AssertionError) as err:  # torch raises OSError with valgrind's output
            raise InstructionsFailed(_one_line(err)) from err
        finally:
            torch.set_num_threads(before)
        ran = json.loads(report.read_text())["backend"] if report.exists() else "?"
    ran = ran if ran.startswith(point.impl) else f"{point.impl} ({ran})"  # e.g. "nn_lstm (onednn)"
    counted = ran + (f", C library built with -march={COUNT_MARCH} (no AVX-512)"
                     if COUNT_MARCH and ran.startswith("vectorised[") and "+fused-" in ran else "")
    counts = tuple(int(round(s.counts(denoise=True) / number)) for s in stats)
    return InstructionCount(point, counts, number, counted)
