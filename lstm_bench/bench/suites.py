"""Named shape suites: the LSTM problems of the field's benchmarks, as grids `lstm-bench bench --suite` runs.

A suite is the union of a few product grids (`Grid`), one per table or experiment of its
source, each with the path it comes from: a benchmark's list of shapes is rarely one product.
Every shape of the source is kept; what is too big for this machine stays in the suite and is
skipped with the reason of the grid's `EXCLUSIONS` (e.g. more than $LSTM_BENCH_CPU_GFLOP_LIMIT
GFLOP on the CPU), so that the same suite on a GPU runs it. The sources are quoted in each
suite's docstring (`SUITES[name].doc`) and in docs/leaderboard.md; the tests hold the values
typed from the sources, not from here.

    SUITES                 name -> Suite (deepbench, fastrnns, flashrnn, kernelbench)
    suite_grid(names)      the union of the named suites, for `run_sweep` (a `SuiteGrid`)
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..impls import BUILTIN
from .grid import AXES, Grid, Point, Variant, skip_reason

# What a suite's shapes are swept over unless the command line says otherwise: BENCH_GRID's.
SUITE_IMPLS = BUILTIN
SUITE_DEVICES = ("cpu", "cuda")
SUITE_DTYPES = ("float32",)
# The axes the command line may still replace: the suite fixes T, B, I, H and the configuration.
FREE_AXES = ("impls", "devices", "dtypes")


def _part(T: tuple[int, ...], B: tuple[int, ...], H: tuple[int, ...], I: tuple[int, ...] | None = None,
          variants: tuple[Variant, ...] = (Variant(),)) -> Grid:
    return Grid(impls=SUITE_IMPLS, T=T, H=H, B=B, devices=SUITE_DEVICES, dtypes=SUITE_DTYPES, I=I, variants=variants)


@dataclass(frozen=True)
class Suite:
    """One benchmark's LSTM shapes: `parts` (one grid per table of the source, I = None for I = H)
    and `doc`, the source of every shape (repository, commit, path) and how it was read."""

    name: str
    title: str
    parts: tuple[Grid, ...]
    doc: str

    def shapes(self) -> list[tuple[int, int, int, int, str]]:
        """(T, B, I, H, configuration label) of every distinct shape, in the source's order."""
        out: list[tuple[int, int, int, int, str]] = []
        for p in suite_grid((self.name,)).replace(impls=(SUITE_IMPLS[0],), devices=("cpu",)).points():
            shape = (p.T, p.B, p.I, p.H, p.variant.label)
            if shape not in out:
                out.append(shape)
        return out


DEEPBENCH = Suite(
    "deepbench", "Baidu DeepBench, RNN training set (LSTM rows)",
    (_part(T=(25,), B=(16, 32, 64, 128), H=(512, 1024, 2048, 4096)),
     _part(T=(50,), B=(8, 16, 32), H=(1536,)),
     _part(T=(150,), B=(16, 32, 64), H=(256,))),
    """Baidu DeepBench's LSTM training problems: 22 shapes, one layer, one direction, I = H.

    Source: github.com/baidu-research/DeepBench, code/kernels/rnn_problems.h, `training_set`,
    the rows of cell type "lstm" (hidden units, batch size, timesteps), lines 15-36 at commit
    7b75e76ba0fa60e67a1f4c11ea5ff9381072eb67 (the file's last change; the repository's head,
    da81ba7820739e2e506dc27f382d15be5479f98f, has the same file):
        H 512, 1024, 2048, 4096  x  B 16, 32, 64, 128  at T 25
        H 1536                   x  B 8, 16, 32        at T 50
        H 256                    x  B 16, 32, 64       at T 150
    I = H: code/nvidia/rnn_bench.cu describes the input of each step as (batch, hidden)
    (`xDescArray_({batch_size, hidden_size, 1}, ...)`, line 128). That benchmark runs cuDNN with
    CUDNN_SKIP_INPUT (line 146): no input-projection GEMM, so its times leave out the W_ih x work
    that every implementation here does (a third of the FLOPs at I = H; lstm_bench/bench/flops.py).
    DeepBench's `inference_server_set` is not included (forward only).""")

FASTRNNS = Suite(
    "fastrnns", "PyTorch benchmarks/fastrnns (its LSTM default)",
    (_part(T=(100,), B=(64,), H=(512,), I=(512,)),),
    """PyTorch's fastrnns LSTM benchmark: T = 100, B = 64, I = H = 512, one layer.

    Source: github.com/pytorch/pytorch, benchmarks/fastrnns/bench.py, the defaults of its
    arguments (--seqLength 100, --numLayers 1, --inputSize 512, --hiddenSize 512, --miniBatch 64)
    and of `trainbench`, at commit 48242a4b0780d16bea5d428de260275687bfd962; the same sizes are the
    `creator_args` of benchmarks/fastrnns/test_bench.py (the pytest-benchmark form).""")

FLASHRNN = Suite(
    "flashrnn", "FlashRNN's speed experiments (the nn.LSTM baseline's shapes)",
    (_part(T=(1024,), B=(16,), H=(16, 32, 64, 128, 256, 768)),
     _part(T=(1024,), B=(2, 8, 16, 32, 64, 128, 256), H=(64, 768)),
     _part(T=(256, 512, 1024, 2048), B=(16,), H=(64, 768))),
    """FlashRNN's LSTM speed experiments: 24 distinct shapes, one layer, one direction, I = H.

    Source: github.com/NX-AI/flashrnn, flashrnn/speed_experiments/kernel_speed_benchmark.py at
    commit 4dda86ec69f4bd4060415fb7106dad11c70c01ad (the file's one version; the repository's head
    is d73fb52b1b492ce9f9b2c107660b49079add5eb1), the three experiments of `paperplot_experiments`:
        create_head_dimension_configs   B 16, T 1024, (DH, NH) (16, 48) (32, 24) (64, 12) (128, 6)
                                        (256, 3) (768, 1)                          (lines 103-113)
        create_batch_size_configs       T 1024, (DH, NH) (64, 12) (768, 1), B 2 8 16 32 64 128 256
                                                                                   (lines 129-146)
        create_sequence_length_configs  B 16, (DH, NH) (64, 12) (768, 1), T 256 512 1024 2048
                                                                                   (lines 163-173)
    FlashRNN's own kernel runs NH independent heads of size DH (a block-diagonal recurrence,
    NH x DH = 768 features); the dense LSTM closest to one head is what that script's nn.LSTM
    baseline times, `nn.LSTM(DH, DH, 1, batch_first=True)` on a (B, T, DH) input (line 315): the
    shapes here are those, H = I = DH (at NH = 1, H = 768, the same problem as FlashRNN's). The
    experiments ran in bfloat16 on a GPU (`dtype="bfloat16"`); `--dtype bfloat16` asks for that.
    Shapes shared by two experiments (B 16, T 1024, H 64 or 768) are one point.""")

KERNELBENCH = Suite(
    "kernelbench", "KernelBench level 3 LSTM problems",
    (_part(T=(512,), B=(10,), H=(256,), I=(128,), variants=(Variant(num_layers=6), Variant(num_layers=6,
                                                                                          bidirectional=True))),),
    """KernelBench's LSTM problems (level 3): T = 512, B = 10, I = 128, H = 256, 6 layers, one
    direction and bidirectional.

    Source: github.com/ScalingIntelligence/KernelBench at commit
    6b1cea28ddea79af6b295fb9a3e3413f393efe3d (the last change to these files; the repository's
    head, 423217d9fda91e0c2d67e4a43bf62f96f6d104f1, has the same), the module-level test sizes
    (batch_size, sequence_length, input_size, hidden_size, num_layers; dropout 0.0) of
        KernelBench/level3/35_LSTM.py              10, 512, 128, 256, 6, bidirectional=False
        KernelBench/level3/36_LSTMHn.py            10, 512, 128, 256, 6, bidirectional=False
        KernelBench/level3/37_LSTMCn.py            10, 512, 128, 256, 6, bidirectional=False
        KernelBench/level3/38_LSTMBidirectional.py 10, 512, 128, 256, 6, bidirectional=True
    35, 36 and 37 are one LSTM (they differ in what they return: a Linear head on the last
    output, h_n, c_n), so one point here. KernelBench times the forward of each Model in
    batch_first layout; here the LSTM alone is timed forward and forward+backward, time-major.""")

SUITES: dict[str, Suite] = {s.name: s for s in (DEEPBENCH, FASTRNNS, FLASHRNN, KERNELBENCH)}


@dataclass(frozen=True)
class SuiteGrid:
    """The union of named suites, swept like a `Grid` (`points`, `runnable`, `replace`); stored in a
    results file's header as its suites' names and parts. A shape in two parts is one point."""

    suites: tuple[str, ...]
    parts: tuple[Grid, ...]

    def points(self) -> list[Point]:
        """Every distinct point of the parts, in their order, including the ones `skip_reason` will skip."""
        seen: dict[str, Point] = {}
        for part in self.parts:
            for p in part.points():
                seen.setdefault(p.key, p)
        return list(seen.values())

    def runnable(self) -> list[Point]:
        return [p for p in self.points() if skip_reason(p) is None]

    def replace(self, **axes) -> "SuiteGrid":
        """The suites on other implementations, devices or dtypes; ValueError for an axis a suite fixes."""
        fixed = sorted(set(axes) - set(FREE_AXES))
        if fixed:
            unknown = [a for a in fixed if a not in AXES]
            raise ValueError(f"SuiteGrid.replace: unknown axes {unknown}" if unknown else
                             f"a suite fixes its shapes: {', '.join(fixed)} cannot be replaced (only "
                             f"{', '.join(FREE_AXES)})")
        return dataclasses.replace(self, parts=tuple(part.replace(**axes) for part in self.parts))


def suite_grid(names: tuple[str, ...] | list[str]) -> SuiteGrid:
    """The union of the suites named (`SUITES`); ValueError naming an unknown one and the known ones."""
    names = tuple(dict.fromkeys(names))
    unknown = [n for n in names if n not in SUITES]
    if unknown or not names:
        raise ValueError(f"unknown suite {', '.join(map(repr, unknown)) or '(none given)'}; known: "
                         f"{', '.join(SUITES)}")
    return SuiteGrid(names, tuple(part for n in names for part in SUITES[n].parts))


def describe_suites() -> str:
    """One line per suite: name, distinct shapes, title (what `bench --suite list` prints)."""
    return "\n".join(f"{s.name:<12} {len(s.shapes()):>3} shapes  {s.title}" for s in SUITES.values())
