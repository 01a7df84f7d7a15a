"""The catalogue of cases a kernel is judged on: the sizes, scales and sequence lengths where
real LSTM kernels have had their bugs.

A `CaseSpec` is a case's recipe (the arguments of `make_case`), so it can be named in a
test id, cached, drawn at random, and printed as the `lstm-bench check` command that
reproduces it. `catalogue(depth)` is the fixed part of the conformance suite and of
`lstm-bench check`'s default run:

- boundary    sizes on both sides of the tile boundaries kernels switch code paths at
              (multiples of 8, 16, 32, 64, 128, 256 in H, I and B; non-powers of two;
              I < H and I > H), at T = 2: a covering design in which every value of
              every axis appears, not the whole product.
- long memory a forget gate near 1 (forget bias 3 or 5: f ≈ 0.95 or 0.993; Gers et al.
              2000, Jozefowicz et al. 2015) over up to T = 300 steps, so the gradient
              from hundreds of steps back is a visible part of the total. With PyTorch's
              default init (f ≈ 0.5) it is ~1e-12 of it 40 steps back, and a BPTT that
              drops everything older than a window of 40 steps passes in float32 (and of
              100 steps even in float64); here every window up to 200 steps fails by a
              factor of over 1000 (tests/test_gate_can_fail.py).
- stress      saturated gates (weights x10), forget bias 1, I != H, T = B = 1, T = 200.
- configurations  nn.LSTM's other axes (2 and 3 layers, bidirectional, a projection,
              batch_first, variable lengths incl. lengths 1 and T), as a strength-2
              covering array: every pair of two axes' values appears in some case.
- low precision   bfloat16 and float16 cases (judged against the vendor's own error, see
              `lstm_bench.conformance.policy`), up to T = 100, where bfloat16 sums drift.

`depth` is "quick" (what `check` runs by default, a few dozen cases), "default" (the
suite) or "nightly" (more and longer cases).
"""
from __future__ import annotations

import dataclasses
import math
import shlex
from dataclasses import dataclass

import torch

from ..core.contract import Case, LSTMConfig, check_dtype, check_lengths, make_case
from ..core.support import dtype_name
from ..core.values import check_positive_int

DEPTHS = ("quick", "default", "nightly")


@dataclass(frozen=True)
class CaseSpec:
    """The recipe of one case: the arguments of `make_case`, lengths as a tuple."""

    T: int
    B: int
    I: int
    H: int
    dtype: str = "float32"
    seed: int = 0
    weight_scale: float = 1.0
    forget_bias: float | None = None
    num_layers: int = 1
    bidirectional: bool = False
    proj_size: int = 0
    batch_first: bool = False
    lengths: tuple[int, ...] | None = None
    label: str = ""  # why the case is in the catalogue

    def __post_init__(self) -> None:
        for name in ("T", "B", "I", "H"):
            check_positive_int(name, getattr(self, name))
        object.__setattr__(self, "dtype", dtype_name(check_dtype(self.dtype)))
        if not math.isfinite(self.weight_scale):
            raise ValueError(f"weight_scale must be finite, got {self.weight_scale!r}")
        if self.forget_bias is not None and not math.isfinite(self.forget_bias):
            raise ValueError(f"forget_bias must be finite or None, got {self.forget_bias!r}")
        if self.lengths is not None:
            object.__setattr__(self, "lengths", tuple(int(n) for n in self.lengths))
        self.config  # checks the configuration (proj_size < H, ...)
        check_lengths(self.lengths_tensor, self.T, self.B)

    @property
    def config(self) -> LSTMConfig:
        return LSTMConfig(self.I, self.H, self.num_layers, self.bidirectional, self.proj_size, self.batch_first)

    @property
    def lengths_tensor(self) -> torch.Tensor | None:
        return None if self.lengths is None else torch.tensor(self.lengths, dtype=torch.int64)

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)

    def make(self, device: str = "cpu") -> Case:
        return make_case(self.T, self.B, self.I, self.H, num_layers=self.num_layers,
                         bidirectional=self.bidirectional, proj_size=self.proj_size, batch_first=self.batch_first,
                         lengths=self.lengths_tensor, dtype=self.torch_dtype, device=device, seed=self.seed,
                         weight_scale=self.weight_scale, forget_bias=self.forget_bias)

    @property
    def id(self) -> str:
        """A short stable name, e.g. "T300-B2-I4-H8-float32-fb5-s3" or "T7-B4-I5-H6-float64-L2-bi-P3-len7.3.1.5-s2"."""
        parts = [f"T{self.T}", f"B{self.B}", f"I{self.I}", f"H{self.H}", self.dtype]
        if self.weight_scale != 1.0:
            parts.append(f"ws{self.weight_scale:g}")
        if self.forget_bias is not None:
            parts.append(f"fb{self.forget_bias:g}")
        if self.config.label:
            parts.append(self.config.label)
        if self.lengths is not None:
            parts.append("len" + ".".join(map(str, self.lengths)))
        return "-".join(parts + [f"s{self.seed}"])

    def command(self, impl: str, device: str = "cpu") -> str:
        """The `lstm-bench check` command that runs `impl` on exactly this case."""
        cmd = (f"lstm-bench check --impl {shlex.quote(impl)} -T {self.T} -B {self.B} -I {self.I} -H {self.H} "
               f"--dtype {self.dtype} --seed {self.seed}")
        if self.weight_scale != 1.0:
            cmd += f" --weight-scale {self.weight_scale:g}"
        if self.forget_bias is not None:
            cmd += f" --forget-bias {self.forget_bias:g}"
        if self.num_layers > 1:
            cmd += f" --layers {self.num_layers}"
        if self.bidirectional:
            cmd += " --bidirectional"
        if self.proj_size:
            cmd += f" --proj {self.proj_size}"
        if self.batch_first:
            cmd += " --batch-first"
        if self.lengths is not None:
            cmd += " --lengths " + ",".join(map(str, self.lengths))
        return cmd + (f" --device {device}" if device != "cpu" else "")

    def replace(self, **changes) -> "CaseSpec":
        return dataclasses.replace(self, **changes)


# Both sides of the boundaries at which kernels change tiles or vector widths.
BOUNDARY_H = (1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257)
BOUNDARY_I = BOUNDARY_H
BOUNDARY_B = (1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65)


def boundary(dtypes: tuple[str, ...] = ("float32", "float64")) -> list[CaseSpec]:
    """A covering design over the boundary sizes: case k pairs H[k] with I[5k+3] and B[3k]
    (indices modulo the axis), so every value of every axis appears and both I < H and
    I > H occur."""
    out = []
    for k in range(len(BOUNDARY_H)):
        H, I, B = BOUNDARY_H[k], BOUNDARY_I[(5 * k + 3) % len(BOUNDARY_I)], BOUNDARY_B[(3 * k) % len(BOUNDARY_B)]
        out += [CaseSpec(2, B, I, H, dtype, seed=k, label="size boundary") for dtype in dtypes]
    return out


def long_memory(depth: str) -> list[CaseSpec]:
    """Forget gates near 1 over long sequences, where a truncated BPTT cannot hide."""
    specs = [CaseSpec(300, 2, 4, 8, "float32", seed=1, forget_bias=5.0, label="long memory"),
             CaseSpec(300, 2, 4, 8, "float64", seed=2, forget_bias=3.0, label="long memory")]
    if depth != "quick":
        specs += [CaseSpec(257, 3, 5, 16, "float32", seed=3, forget_bias=3.0, label="long memory"),
                  CaseSpec(129, 2, 9, 7, "float64", seed=4, forget_bias=5.0, label="long memory"),
                  CaseSpec(65, 4, 3, 12, "float32", seed=5, forget_bias=5.0, label="long memory")]
    if depth == "nightly":
        specs += [CaseSpec(1000, 2, 4, 8, dtype, seed=6, forget_bias=6.0, label="long memory")
                  for dtype in ("float32", "float64")]
    return specs


# Stress presets, by name (also `lstm-bench check --stress NAME`): make_case's scale arguments.
STRESS = {
    "saturated": {"weight_scale": 10.0},
    "forget-bias-1": {"forget_bias": 1.0},
    "long-memory": {"forget_bias": 5.0},
}


def stress(depth: str) -> list[CaseSpec]:
    specs = [
        CaseSpec(40, 4, 8, 16, "float32", seed=5, weight_scale=10.0, label="saturated gates"),
        CaseSpec(40, 4, 8, 16, "float64", seed=5, forget_bias=1.0, label="forget bias 1"),
        CaseSpec(7, 3, 19, 6, "float32", seed=5, label="I > H"),
        CaseSpec(1, 1, 5, 4, "float64", seed=5, label="T = B = 1"),
    ]
    if depth != "quick":
        specs += [
            CaseSpec(40, 4, 8, 16, "float64", seed=5, weight_scale=10.0, label="saturated gates"),
            CaseSpec(40, 4, 8, 16, "float32", seed=5, forget_bias=1.0, label="forget bias 1"),
            CaseSpec(1, 1, 1, 1, "float32", seed=5, label="every size 1"),
            CaseSpec(200, 2, 6, 8, "float64", seed=7, label="long sequence"),
            CaseSpec(200, 2, 6, 8, "float64", seed=7, weight_scale=10.0, label="long sequence, saturated"),
        ]
    return specs


# A strength-2 orthogonal array OA(8, 2^7): in any two columns, each of the four pairs of
# values appears in 2 of the 8 rows. Columns: layers (1 or 2), bidirectional, projection,
# batch_first, lengths, dtype (float32 or float64); the 7th is unused.
OA8 = ("0000000", "0001111", "0110011", "0111100", "1010101", "1011010", "1100110", "1101001")


def configurations(depth: str) -> list[CaseSpec]:
    """nn.LSTM's configuration axes: the covering array above at T = 7, B = 4 (lengths 7, 3, 1,
    5: the full length, 1, and two between), then one case with everything at once (3 layers)
    and a long-memory bidirectional case with lengths, where a reverse direction that does not
    start at each sequence's own last step cannot hide."""
    specs = []
    for k, row in enumerate(OA8):
        layers, bi, proj, bf, lengths, f64 = (bit == "1" for bit in row[:6])
        specs.append(CaseSpec(7, 4, 5, 6, "float64" if f64 else "float32", seed=20 + k, num_layers=2 if layers else 1,
                              bidirectional=bi, proj_size=3 if proj else 0, batch_first=bf,
                              lengths=(7, 3, 1, 5) if lengths else None, label="configuration"))
    if depth == "quick":
        return specs[:4]
    specs += [CaseSpec(6, 3, 4, 5, dtype, seed=30, num_layers=3, bidirectional=True, proj_size=2, batch_first=True,
                       lengths=(6, 1, 4), label="every axis at once") for dtype in ("float32", "float64")]
    specs.append(CaseSpec(129, 3, 4, 8, "float32", seed=31, forget_bias=5.0, bidirectional=True,
                          lengths=(129, 40, 100), label="long memory, bidirectional, lengths"))
    return specs


# Each feature of nn.LSTM's configuration alone, at the covering array's sizes: a kernel that
# declares one feature (FlashRNN's, Flax's and Keras' native layout is batch_first alone) meets
# no case of the covering array that it runs, only these.
FEATURE_ALONE = {"layers": {"num_layers": 2}, "bidirectional": {"bidirectional": True}, "projection": {"proj_size": 3},
                 "batch_first": {"batch_first": True}, "lengths": {"lengths": (7, 3, 1, 5)}}


def features_alone(depth: str) -> list[CaseSpec]:
    """One case per feature with no other feature (float32; float64 too beyond quick)."""
    dtypes = ("float32",) if depth == "quick" else ("float32", "float64")
    return [CaseSpec(7, 4, 5, 6, dtype, seed=50 + k, label=f"{feature} alone", **kwargs)
            for k, (feature, kwargs) in enumerate(FEATURE_ALONE.items()) for dtype in dtypes]


def low_precision(depth: str) -> list[CaseSpec]:
    """bfloat16 and float16 cases (only kernels that declare these dtypes run them), judged
    against the vendor's own error (`lstm_bench.conformance.policy`). T = 300: a kernel that sums its
    weight gradients over the steps in the low dtype drifts from the vendor with T, and is
    caught here by a factor of about 2 where at T <= 40 it is not."""
    specs = [CaseSpec(300, 8, 32, 64, "bfloat16", seed=40, label="low precision")]
    if depth != "quick":
        specs += [CaseSpec(300, 8, 32, 64, "float16", seed=40, label="low precision"),
                  CaseSpec(40, 4, 8, 16, "bfloat16", seed=41, num_layers=2, bidirectional=True,
                           lengths=(40, 9, 25, 1), label="low precision, configuration"),
                  CaseSpec(40, 4, 8, 16, "float16", seed=41, num_layers=2, bidirectional=True,
                           lengths=(40, 9, 25, 1), label="low precision, configuration"),
                  CaseSpec(60, 4, 16, 24, "bfloat16", seed=42, num_layers=3, proj_size=12, batch_first=True,
                           label="low precision, projection")]
    return specs


def catalogue(depth: str = "default") -> list[CaseSpec]:
    """The fixed cases of a run at `depth` ("quick", "default" or "nightly"), in a stable order."""
    if depth not in DEPTHS:
        raise ValueError(f"depth must be one of {DEPTHS}, got {depth!r}")
    sizes = boundary(("float32",)) if depth == "quick" else boundary()
    return (sizes + long_memory(depth) + stress(depth) + configurations(depth) + features_alone(depth)
            + low_precision(depth))
