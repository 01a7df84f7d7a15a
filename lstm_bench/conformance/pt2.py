"""The PT2 gates' machinery: which cases they run at each depth, the kernel compiled once per
case and process, graph breaks counted with their reasons, and results judged under the
same policy as eager ones.

A kernel takes part when it hands over a `Traceable` (`lstm_bench.adapters`: a custom op or a
module; a plain function `case -> Result` computes its own gradients and has nothing to
compile, so its PT2 gates skip with that reason). Compiling is slow (a first
`torch.compile` of a one-line function took 35.7 s in a fresh process on this 2-CPU machine at
load 2.3, docs/shipping.md), so at the quick and default depths the
family runs on one case per kernel (the first of `PT2_SPECS` it supports: every feature at
once, else a plain LSTM), and on all of them at nightly; each case is compiled once per process.
"""
from __future__ import annotations

import contextlib
import functools
import types
from typing import Any, Callable, Iterator

import torch

from ..adapters.traceable import gradients
from ..core.contract import Case, Result, check_result
from ..core.devices import tf32_active
from ..core.registry import Impl
from . import judge
from .cases import CaseSpec
from .judge import Reference
from .policy import AgreementReport

NO_TRACEABLE = ("{name} is a plain function case -> Result: it computes its own gradients, so there is nothing "
                "for torch.compile to take hold of (ship it as a custom op or a module: lstm_bench.adapters)")

# Small: compile time grows with the unrolled steps. Every feature at once first (one compile covers them all).
PT2_SPECS = (
    CaseSpec(5, 3, 4, 6, "float32", seed=50, num_layers=2, bidirectional=True, proj_size=3, batch_first=True,
             lengths=(5, 2, 4), label="PT2, every axis"),
    CaseSpec(5, 3, 4, 6, "float32", seed=51, label="PT2, plain"),
)
PT2_NIGHTLY = PT2_SPECS + (
    CaseSpec(5, 3, 4, 6, "float64", seed=52, label="PT2, plain float64"),
    CaseSpec(3, 9, 17, 65, "float32", seed=53, label="PT2, size boundary"),
    CaseSpec(65, 2, 3, 8, "float32", seed=54, forget_bias=5.0, label="PT2, long memory"),
)


def pt2_groups(depth: str) -> list[tuple[CaseSpec, ...]]:
    """The PT2 family's parameters at `depth`: each a tuple of specs of which the kernel runs the first it supports."""
    return [PT2_SPECS] if depth != "nightly" else [(s,) for s in PT2_NIGHTLY]


def traceable_of(impl: Impl) -> Any:
    """The kernel's `traceable` attribute (case -> Traceable), or None for a plain function."""
    return getattr(impl.fn, "traceable", None)


RECOMPILE_LIMIT = 64


def fresh(fn: Callable) -> types.FunctionType:
    """`fn` with a code object of its own. Dynamo keeps compiled graphs per code object, and
    kernels share code (every module_kernel's caller; a library's forward called by several
    kernels): in one process, a graph compiled for one kernel would be reused, or recompiled
    until dynamo's limit, past which it silently runs eager."""
    if not isinstance(fn, types.FunctionType):
        inner = fn
        fn = lambda *args: inner(*args)  # noqa: E731
    return types.FunctionType(fn.__code__.replace(), fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)


@contextlib.contextmanager
def strict_dynamo() -> Iterator[None]:
    """Raise where dynamo would fall back to eager after too many recompiles (a gate must not
    judge eager code as compiled), with room for the suite's variants."""
    import torch._dynamo  # noqa: F401  (the compiler's config; torch.compile is imported with torch)

    with torch._dynamo.config.patch(recompile_limit=RECOMPILE_LIMIT, fail_on_recompile_limit_hit=True):
        yield


def judge_result(result: Result, case: Case, ref: Reference, title: str, impl: Impl | None = None) -> AgreementReport:
    """`result` on `case` against its reference, under the tolerance policy as `judge_against_reference`
    applies it (`judge.judge_result`: the kernel's declared approximate activations and gradients, TF32 when
    allowed)."""
    gradients = impl is None or impl.support.gradients
    check_result(result, case, title, gradients=gradients)
    approximate = impl is not None and case.device.type in impl.support.approximate_on
    return judge.judge_result(result, ref, case.dtype, approximate=approximate, tf32=tf32_active(case.device),
                              title=title, gradients=gradients)


def compiled_result(impl: Impl, spec: CaseSpec, device: str) -> tuple[Result, list[str]]:
    """The kernel's traceable forward under `torch.compile` (Inductor) on `spec`, gradients by
    autograd through the compiled graph: (Result, names of the case's tensors it modified).
    Computed once per kernel, case and process; an exception in compiling propagates."""
    return _compiled(impl.fn, impl.name, spec, device)


@functools.lru_cache(maxsize=64)
def _compiled(fn: Any, name: str, spec: CaseSpec, device: str) -> tuple[Result, list[str]]:
    case = spec.make(device)
    pristine = case.clone()
    with torch.enable_grad(), strict_dynamo():
        tr = fn.traceable(case)
        compiled = torch.compile(fresh(tr.fn), backend="inductor")
        result = gradients(case, tr, compiled(*tr.inputs), backend=f"compiled {name}")
    return result, case.modified(pristine)


def graph_breaks(impl: Impl, case: Case) -> list[str]:
    """The reasons of every graph break dynamo takes in tracing the kernel's forward on `case`
    (an empty list: one whole graph). Traced by dynamo alone, into a backend made afresh for
    this call, so that no graph compiled earlier in the process is reused untraced
    (`torch._dynamo.explain` would reset every compiled graph in the process instead)."""
    from torch._dynamo.utils import counters

    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    before = dict(counters["graph_break"])
    with torch.enable_grad(), strict_dynamo():
        tr = traceable_of(impl)(case)
        torch.compile(fresh(tr.fn), backend=backend)(*tr.inputs)
    after = counters["graph_break"]
    reasons = [reason for reason, n in after.items() for _ in range(n - before.get(reason, 0))]
    if not reasons and len(graphs) > 1:
        reasons = [f"{len(graphs)} graphs (dynamo recorded no reason)"]
    return reasons
