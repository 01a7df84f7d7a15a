"""The PT2 family: the kernel as users run it under the PyTorch 2 compiler stack.

- test_opcheck            a custom op passes `torch.library.opcheck` on the family's cases:
                          its schema (declared mutation and aliasing), autograd registration,
                          fake kernel, and aot dispatch (outputs and gradients under the
                          compiled dispatcher). opcheck checks no values against a truth.
- test_compiled_agrees    the kernel's forward under `torch.compile` (Inductor), gradients by
                          autograd through the compiled graph: output, final states and every
                          gradient judged against the float64 truth under the tolerance policy
                          (not against eager: both could be wrong together).
- test_no_graph_breaks    a kernel declaring `fullgraph` traces without a graph break (a break
                          falls back to eager silently, and costs the speed it was written for);
                          one that does not declare it is skipped with its breaks and reasons.
- test_cuda_graph_replay  on CUDA: the kernel captured in a CUDA graph and replayed agrees with
                          the truth, and again after the inputs' contents changed (a kernel that
                          bakes pointers' values or caches into the graph fails).

Cases: `lstm_bench.conformance.pt2.PT2_SPECS` (one per kernel at the quick and default depths,
every one at nightly). The family carries the `pt2` marker: `-m "not pt2"` leaves it out.
"""
from __future__ import annotations

import pytest
import torch

from lstm_bench.conformance.judge import truth_of
from lstm_bench.conformance.plugin import SETTINGS
from lstm_bench.conformance.pt2 import (NO_TRACEABLE, compiled_result, graph_breaks, judge_result, pt2_groups,
                                        traceable_of)

pytestmark = pytest.mark.pt2

OPCHECK_UTILS = ("test_schema", "test_autograd_registration", "test_faketensor", "test_aot_dispatch_dynamic")


def pytest_generate_tests(metafunc):
    if "pt2_specs" in metafunc.fixturenames:
        depth = metafunc.config.stash[SETTINGS].depth if SETTINGS in metafunc.config.stash else "default"
        groups = pt2_groups(depth)
        metafunc.parametrize("pt2_specs", groups, ids=[g[0].id if len(g) == 1 else "first-supported"
                                                       for g in groups])


def _traceable_spec(kernel, specs):
    if traceable_of(kernel.impl) is None:
        pytest.skip(NO_TRACEABLE.format(name=kernel.name))
    return kernel.supported(list(specs))


@pytest.mark.parametrize("util", OPCHECK_UTILS)
def test_opcheck(lstm_kernel, pt2_specs, util):
    ops = getattr(lstm_kernel.impl.fn, "ops", None)
    lstm_kernel.needs_gradients("opcheck tests the op's autograd registration")
    if not ops:
        pytest.skip(f"{lstm_kernel.name} is not a torch.library custom op (lstm_bench.adapters.op_kernel)")
    spec = _traceable_spec(lstm_kernel, pt2_specs)
    case = spec.make(lstm_kernel.device)
    for op in ops:
        args = lstm_kernel.impl.fn.op_args(case, {k: v.detach().requires_grad_() for k, v in case.tensors().items()
                                                  if k in case.config.grad_names()})
        failures = torch.library.opcheck(op, args, test_utils=util, raise_exception=False)
        bad = {k: v for k, v in failures.items() if v != "SUCCESS"}
        assert not bad, f"{lstm_kernel.name}: opcheck {util} on {spec.id}: " + "; ".join(
            f"{type(v).__name__}: {str(v).splitlines()[0] if str(v) else ''}" for v in bad.values())


def test_compiled_agrees_with_float64_truth(lstm_kernel, pt2_specs):
    lstm_kernel.needs_gradients("the compiled forward is judged with its gradients by autograd through the graph")
    spec = _traceable_spec(lstm_kernel, pt2_specs)
    result, modified = compiled_result(lstm_kernel.impl, spec, lstm_kernel.device)
    report = judge_result(result, spec.make(lstm_kernel.device), truth_of(spec, lstm_kernel.device),
                          title=f"{lstm_kernel.name} under torch.compile (inductor) vs float64 | {spec.id}",
                          impl=lstm_kernel.impl)
    report.problems += [f"modified case.{name} in place (inputs are read-only)" for name in modified]
    assert report.passed, str(report)


def test_no_graph_breaks(lstm_kernel, pt2_specs):
    spec = _traceable_spec(lstm_kernel, pt2_specs)
    breaks = graph_breaks(lstm_kernel.impl, spec.make(lstm_kernel.device))
    summary = f"{len(breaks)} graph break(s) tracing {lstm_kernel.name} on {spec.id}" + "".join(
        f"\n  - {reason}" for reason in breaks)
    if not getattr(lstm_kernel.impl.fn, "fullgraph", False):
        pytest.skip(f"{lstm_kernel.name} does not declare fullgraph; {summary}")
    assert not breaks, f"{lstm_kernel.name} declares fullgraph, but: {summary}"


def test_cuda_graph_replay(lstm_kernel, pt2_specs):
    """Capture the kernel's whole call (forward and backward) in a CUDA graph, replay it, then
    copy another case's numbers into the same input buffers and replay again."""
    if lstm_kernel.device != "cuda":
        pytest.skip("CUDA graphs are a CUDA feature")
    spec = lstm_kernel.supported([s for s in pt2_specs if s.lengths is None] or list(pt2_specs))
    other = spec.replace(seed=spec.seed + 1000)
    static = spec.make("cuda")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):  # warm-up outside the capture (allocators, cuBLAS handles, autotuning)
            lstm_kernel.impl.fn(static)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = lstm_kernel.impl.fn(static)
    for current in (spec, other):
        with torch.no_grad():
            for name, t in current.make("cuda").tensors().items():
                static.tensors()[name].copy_(t)
        graph.replay()
        torch.cuda.synchronize()
        report = judge_result(out, current.make("cuda"), truth_of(current, "cuda"), impl=lstm_kernel.impl,
                              title=f"{lstm_kernel.name} replayed from a CUDA graph | {current.id}"
                                    + (" (inputs' contents changed after capture)" if current is other else ""))
        assert report.passed, str(report)
