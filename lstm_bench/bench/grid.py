"""The one benchmark grid, used by asv, pytest-benchmark and the command line.

A `Point` is one measurement: an implementation on one case size, device and dtype, in
one of nn.LSTM's configurations (a `Variant`: layers, directions, projection, variable
lengths; the plain single-layer LSTM by default). A `Grid` is the product of its axes.
Points that cannot or should not run are not dropped: `skip_reason(point)` says why,
from the explicit `EXCLUSIONS` table below (too slow to be worth running) or because
the device, the implementation or its support for the configuration is missing.
"""
from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import Callable

import torch

from ..core.contract import Case, LSTMConfig, check_dtype, make_case
from ..core.devices import KNOWN_DEVICES
from ..core.registry import all_impls, get_impl
from ..core.support import dtype_name, needed_features
from ..core.values import check_int, check_positive_int, from_env, parse_number
from ..impls import BUILTIN, COMPILING
from ..impls.slowdown import SLOWED_IMPL, register_slowed, register_slowed_from_env
from .flops import lstm_flops
from .lengths import DISTRIBUTIONS, draw_lengths


@dataclass(frozen=True)
class Variant:
    """One of nn.LSTM's configurations beyond the sizes: layers, directions, projection, and the
    name of a length distribution (`lstm_bench.bench.lengths`; "" when every sequence has T steps)."""

    num_layers: int = 1
    bidirectional: bool = False
    proj_size: int = 0
    lengths: str = ""

    def __post_init__(self) -> None:
        check_positive_int("num_layers", self.num_layers)
        check_int("proj_size", self.proj_size, 0)
        if not isinstance(self.bidirectional, bool):
            raise ValueError(f"bidirectional must be True or False, got {self.bidirectional!r}")
        if self.lengths not in ("",) + DISTRIBUTIONS:
            raise ValueError(f"unknown length distribution {self.lengths!r}; known: {', '.join(DISTRIBUTIONS)}")

    @property
    def label(self) -> str:
        """"plain", or the non-default parts, e.g. "L=2", "bi", "P=64", "len=padded-batch", "L=2+bi"."""
        parts = ([f"L={self.num_layers}"] if self.num_layers != 1 else []) + (["bi"] if self.bidirectional else []) \
            + ([f"P={self.proj_size}"] if self.proj_size else []) + ([f"len={self.lengths}"] if self.lengths else [])
        return "+".join(parts) or "plain"

    @classmethod
    def from_label(cls, label: str) -> "Variant":
        """The variant of a `label` ("plain", "L=2+bi+P=64+len=padded-batch", ...); ValueError naming the bad part."""
        fields: dict = {}
        for part in label.strip().split("+"):
            name, _, value = part.partition("=")
            try:
                if part == "bi":
                    fields["bidirectional"] = True
                elif name == "L" and value:
                    fields["num_layers"] = int(value)
                elif name == "P" and value:
                    fields["proj_size"] = int(value)
                elif name == "len" and value:
                    fields["lengths"] = value
                elif part != "plain" or label.strip() != "plain":
                    raise ValueError
            except ValueError:
                raise ValueError(f"configuration {label!r}: cannot read {part!r}; give 'plain' or parts joined by "
                                 f"'+' of L=<layers>, bi, P=<proj_size>, len=<{'|'.join(DISTRIBUTIONS)}>") from None
        return cls(**fields)


PLAIN = Variant()


@dataclass(frozen=True)
class Point:
    """One benchmark point: `impl` on x (T, B, I), hidden size H, on `device` in `dtype`."""

    impl: str
    T: int
    B: int
    I: int
    H: int
    device: str = "cpu"
    dtype: str = "float32"
    num_layers: int = 1
    bidirectional: bool = False
    proj_size: int = 0
    lengths: str = ""  # a distribution of lstm_bench.bench.lengths, or "": every sequence T steps

    def __post_init__(self) -> None:
        if not isinstance(self.impl, str) or not self.impl:
            raise ValueError(f"Point.impl must be a non-empty string, got {self.impl!r}")
        for name in ("T", "B", "I", "H"):
            check_positive_int(f"Point.{name}", getattr(self, name))
        if self.device not in KNOWN_DEVICES:
            raise ValueError(f"Point.device must be one of {KNOWN_DEVICES}, got {self.device!r}")
        if not isinstance(self.dtype, str):
            raise ValueError(f"Point.dtype must be a dtype name such as 'float32', got {self.dtype!r}")
        # The canonical name ("float" -> "float32"), so that one point has one key.
        object.__setattr__(self, "dtype", dtype_name(check_dtype(self.dtype)))
        _ = self.variant, self.config  # built once to validate: a known length distribution, proj_size < H

    @property
    def variant(self) -> Variant:
        return Variant(self.num_layers, self.bidirectional, self.proj_size, self.lengths)

    @property
    def config(self) -> LSTMConfig:
        return LSTMConfig(self.I, self.H, self.num_layers, self.bidirectional, self.proj_size)

    @property
    def key(self) -> str:
        """Stable id, e.g. "vectorised|T=100|B=32|I=256|H=256|cpu|float32", with "|" + the variant's
        label after it when it is not the plain LSTM (so keys of plain points never changed)."""
        key = f"{self.impl}|T={self.T}|B={self.B}|I={self.I}|H={self.H}|{self.device}|{self.dtype}"
        return key if self.variant == PLAIN else f"{key}|{self.variant.label}"

    def sequence_lengths(self) -> "torch.Tensor | None":
        """The lengths (B,) of this point's case, or None when every sequence has T steps."""
        return draw_lengths(self.lengths, self.T, self.B) if self.lengths else None

    def gemm_flops(self, backward: bool = True) -> int:
        """GEMM FLOPs of one forward (+backward) at this point (`lstm_bench.bench.flops`); with variable
        lengths, of the real steps only (the sum of the lengths), the work a packed kernel does."""
        lengths = self.sequence_lengths()
        return lstm_flops(self.T, self.B, self.I, self.H, backward=backward, num_layers=self.num_layers,
                          bidirectional=self.bidirectional, proj_size=self.proj_size,
                          steps=None if lengths is None else int(lengths.sum()))

    @property
    def flops(self) -> int:
        """GEMM FLOPs of one forward+backward at this point."""
        return self.gemm_flops(backward=True)

    @property
    def features(self) -> list[str]:
        """The features of `lstm_bench.core.support.FEATURES` this point's case uses."""
        return needed_features(self.config, self.sequence_lengths())

    @property
    def torch_dtype(self) -> torch.dtype:
        return check_dtype(self.dtype)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Point":
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - fields
        if unknown:
            raise ValueError(f"Point.from_dict: unknown keys {sorted(unknown)}, expected some of {sorted(fields)}")
        return cls(**d)

    def case(self, seed: int = 0) -> Case:
        """`make_case` with this point's sizes, configuration, lengths, dtype and device."""
        return make_case(self.T, self.B, self.I, self.H, num_layers=self.num_layers,
                         bidirectional=self.bidirectional, proj_size=self.proj_size,
                         lengths=self.sequence_lengths(), dtype=self.torch_dtype, device=self.device, seed=seed)


AXES = ("impls", "T", "H", "B", "devices", "dtypes", "I", "variants")


@dataclass(frozen=True)
class Grid:
    """Axes of a benchmark sweep; `I` is None for I = H (the input size follows H)."""

    impls: tuple[str, ...]
    T: tuple[int, ...]
    H: tuple[int, ...]
    B: tuple[int, ...]
    devices: tuple[str, ...] = ("cpu",)
    dtypes: tuple[str, ...] = ("float32",)
    I: tuple[int, ...] | None = None
    variants: tuple[Variant, ...] = (PLAIN,)

    def __post_init__(self) -> None:
        for name in AXES:
            value = getattr(self, name)
            if value is None and name == "I":
                continue
            if isinstance(value, (str, int, Variant)):
                value = (value,)
            try:
                value = tuple(value)
            except TypeError:
                raise ValueError(f"Grid.{name} must be a sequence, got {value!r}") from None
            if not value:
                raise ValueError(f"Grid.{name} must not be empty")
            object.__setattr__(self, name, value)

    def points(self) -> list[Point]:
        """Every combination, including the ones `skip_reason` will skip."""
        out = []
        for impl, device, dtype, v, T, B, H in itertools.product(
                self.impls, self.devices, self.dtypes, self.variants, self.T, self.B, self.H):
            for I in (self.I or (H,)):
                out.append(Point(impl, T, B, I, H, device, dtype, v.num_layers, v.bidirectional, v.proj_size,
                                 v.lengths))
        return out

    def runnable(self) -> list[Point]:
        """The points that run here (skip_reason is None)."""
        return [p for p in self.points() if skip_reason(p) is None]

    def replace(self, **axes) -> "Grid":
        """A sub-grid, e.g. `BENCH_GRID.replace(impls=("vectorised",), T=(100,))`."""
        unknown = set(axes) - set(AXES)
        if unknown:
            raise ValueError(f"Grid.replace: unknown axes {sorted(unknown)}, expected some of {list(AXES)}")
        return dataclasses.replace(self, **axes)


BENCH_GRID = Grid(
    impls=BUILTIN,
    T=(10, 100, 500),
    H=(64, 256, 1024),
    B=(1, 32),
    devices=("cpu", "cuda"),
    dtypes=("float32",),
)

# Small enough that every implementation runs in a few seconds on a 2-core CPU:
# for `lstm-bench` with no arguments and for CI smoke runs.
QUICK_GRID = Grid(
    impls=tuple(name for name in BUILTIN if name not in COMPILING),
    T=(10, 100),
    H=(64,),
    B=(1, 32),
    devices=("cpu", "cuda"),
    dtypes=("float32",),
)

# What `asv run` sweeps by default: BENCH_GRID at B=32 only, and the paths whose speed is tracked:
# not `reference` (the textbook spec, there to be read and judged; its per-gate Python loop was 30 %
# of the suite's work) nor the paths that compile, which compile again in every process asv forks
# (3.8 s for `compiled` at T=10, B=32, H=64 in a fresh process, against 0.13 s for `vectorised`).
# asv forks one process per (benchmark, point); `asv run --quick` must stay within 5 minutes on a
# 2-core machine (docs/benchmarks.md has what was measured). LSTM_BENCH_GRID=bench sweeps the
# full grid, every built-in included.
ASV_GRID = BENCH_GRID.replace(B=(32,), impls=tuple(name for name in BUILTIN
                                                   if name not in COMPILING and name != "reference"))

# One fixed point for measurement-quality studies (run-to-run spread, smallest slowdown
# flagged): `lstm_bench.impls.slowdown.register_slowed` registers its implementation.
STUDY_GRID = Grid(impls=("vectorised_slowed",), T=(100,), H=(256,), B=(32,), devices=("cpu",),
                  dtypes=("float32",))

# What CI compares on every pull request (`lstm-bench ab`, .github/workflows/benchmarks.yml):
# three implementations x T {10, 100} x H {64, 256} at B = 32 on the CPU, 12 points from
# ~1 ms to ~100 ms a step, sized so that `ab` with its default pairs takes a few minutes
# on a 2-core machine (README, "Comparing on a noisy machine", has what was measured).
CI_GRID = Grid(impls=("vectorised", "nn_lstm", "nn_lstm_native"), T=(10, 100), H=(64, 256), B=(32,),
               devices=("cpu",), dtypes=("float32",))

# nn.LSTM's configurations, one axis at a time, at one mid-sized point in float32 and bfloat16:
# what a drop-in replacement's speed is compared on beyond the plain LSTM (asv's TimeConfigStep and
# TrackConfigStep, `lstm-bench bench --grid configs`). H = 128 keeps 2 layers and 2 directions of
# every path under the CPU's GFLOP limit below.
CONFIG_VARIANTS = (PLAIN, Variant(num_layers=2), Variant(bidirectional=True), Variant(proj_size=64),
                   Variant(lengths="padded-batch"))
CONFIG_GRID = Grid(impls=BUILTIN, T=(10, 100), H=(128,), B=(32,), devices=("cpu", "cuda"),
                   dtypes=("float32", "bfloat16"), variants=CONFIG_VARIANTS)

# What asv's TimeConfigStep and TrackConfigStep sweep by default: CONFIG_GRID at T = 100 in float32,
# for the project's fast path and the vendor's beside it (what a configuration costs each).
# The whole CONFIG_GRID took 10.5 min of `asv run --quick` alone (8 benchmarks x 200 points; its
# bfloat16 CPU points 72 % of the work, T = 10 adds 12 %), on a quiet 2-core AMD EPYC:
# `asv run --python=same --quick -b ConfigStep --durations all`. LSTM_BENCH_CONFIG_GRID=configs sweeps it.
ASV_CONFIG_GRID = CONFIG_GRID.replace(T=(100,), dtypes=("float32",), impls=("vectorised", "nn_lstm"))

# The pytest-benchmark suite's default: every implementation once at the smallest sizes, so that the
# plain test command smoke-runs each benchmark in seconds.
SMOKE_GRID = BENCH_GRID.replace(T=(10,), H=(64,), B=(1,))

# What $LSTM_BENCH_GRID, $LSTM_BENCH_CONFIG_GRID (asv) and $LSTM_BENCH_PYTEST_GRID (pytest-benchmark) may name.
NAMED_GRIDS = {"asv": ASV_GRID, "bench": BENCH_GRID, "quick": QUICK_GRID, "smoke": SMOKE_GRID, "study": STUDY_GRID,
               "ci": CI_GRID, "configs": CONFIG_GRID, "asv-configs": ASV_CONFIG_GRID}


@dataclass(frozen=True)
class Exclusion:
    """A rule that marks points too slow to be worth running: `reason(point)` says why, or None."""

    reason: Callable[[Point], str | None]


# Forward+backward GEMM work (GFLOP, lstm_bench.bench.flops) above which a CPU point is skipped:
# sized so that a full `asv run` of the grid fits in 20 minutes on a 2-core CPU. Raise it
# with $LSTM_BENCH_CPU_GFLOP_LIMIT on a bigger machine (read each time a point is judged).
CPU_GFLOP_LIMIT_ENV = "LSTM_BENCH_CPU_GFLOP_LIMIT"
DEFAULT_CPU_GFLOP_LIMIT = 20.0


def cpu_gflop_limit() -> float:
    """$LSTM_BENCH_CPU_GFLOP_LIMIT, else 20; ValueError naming the variable for a bad value."""
    return from_env(CPU_GFLOP_LIMIT_ENV, lambda t: parse_number(t, positive=True, what="a positive number of "
                                                                 "GFLOP such as 20"), DEFAULT_CPU_GFLOP_LIMIT)


def _too_big_for_cpu(point: Point) -> str | None:
    limit = cpu_gflop_limit()
    if point.device == "cpu" and point.flops / 1e9 > limit:
        return (f"too slow: more than {limit:g} GFLOP per forward+backward on cpu "
                f"(see ${CPU_GFLOP_LIMIT_ENV}); run it on cuda")
    return None


# The table of exclusions. Each row was measured on a 2-core CPU (docs/benchmarks.md);
# a point it matches is reported as skipped with the row's reason, never silently dropped.
EXCLUSIONS: tuple[Exclusion, ...] = (
    Exclusion(lambda p: f"too slow: reference (per-gate, per-step textbook BPTT) at T={p.T}, H={p.H} (from T=500, "
              f"H=1024 up) is not worth timing" if p.impl == "reference" and p.T >= 500 and p.H >= 1024 else None),
    Exclusion(_too_big_for_cpu),
)


def device_missing_reason(point: Point) -> str | None:
    """Why `point`'s device is not on this machine, or None."""
    if point.device == "cuda" and not torch.cuda.is_available():
        return "device cuda not available here: torch.cuda.is_available() is False"
    return None


def excluded_reason(point: Point) -> str | None:
    """The reason of the first row of `EXCLUSIONS` that matches `point`, or None."""
    for rule in EXCLUSIONS:
        reason = rule.reason(point)
        if reason is not None:
            return reason
    return None


def skip_reason(point: Point) -> str | None:
    """Why `point` is not run here, or None when it runs."""
    if point.impl not in all_impls():
        return f"impl {point.impl!r} is not registered (known: {sorted(all_impls())})"
    missing = device_missing_reason(point)
    if missing is not None:
        return missing
    declared = get_impl(point.impl).support.reason(device=point.device, dtype=point.dtype,
                                                   sizes={"T": point.T, "B": point.B, "I": point.I, "H": point.H},
                                                   features=point.features)
    if declared is not None:
        return f"impl {point.impl!r} {declared}"
    return excluded_reason(point)


def grid_from_env(variable: str, default: str) -> Grid:
    """The grid of `NAMED_GRIDS` that $`variable` names (else `default`), ready to run.

    The study grid's implementation is registered too (`lstm_bench.impls.slowdown`): slowed by
    $LSTM_BENCH_INJECT_SLOWDOWN when that is set, else unslowed when the study grid is asked for.
    """
    name = from_env(variable, str.strip, default)
    if name not in NAMED_GRIDS:
        raise ValueError(f"${variable} must be one of {sorted(NAMED_GRIDS)}, got {name!r}")
    register_slowed_from_env()
    if name == "study" and SLOWED_IMPL not in all_impls():
        register_slowed(0.0)
    return NAMED_GRIDS[name]
