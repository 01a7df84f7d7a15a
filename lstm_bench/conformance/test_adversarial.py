"""Adversarial gates, after KernelBench's (Ouyang et al. 2025, arXiv:2502.10517) and the timing
exploits reported against llm.c and pygpubench: what a kernel can do to look fast or right
that one eager call never shows.

- test_result_after_timing_loop   the kernel timed by the suite's own loop
                                  (`lstm_bench.machine.timing.time_fn`), and the last timed call's
                                  result judged; then the inputs' contents are replaced in place
                                  (same buffers, new numbers), the loop runs again, and the last
                                  result must be the new case's: a kernel that caches its result
                                  by input pointer, or skips work once warm, fails.
- test_results_do_not_alias       no result tensor shares memory with an input of the case, and no
                                  gradient shares memory with another result tensor (one buffer
                                  handed out twice: an optimiser's in-place step on one changes
                                  the other).
- test_no_work_left_on_a_side_stream   on CUDA: the result read on the caller's stream right
                                  after the call, before any synchronisation, is the finished
                                  result (work left on a non-default stream races with the caller).
"""
from __future__ import annotations

import pytest
import torch

from lstm_bench.conformance.judge import truth_of
from lstm_bench.conformance.pt2 import judge_result
from lstm_bench.conformance.test_properties import _small
from lstm_bench.machine.timing import synchronize, time_fn


def _refill(case, spec, device: str) -> None:
    """Write `spec`'s numbers into `case`'s own buffers (same pointers, new contents)."""
    with torch.no_grad():
        for name, t in spec.make(device).tensors().items():
            case.tensors()[name].copy_(t)


def test_result_after_timing_loop(lstm_kernel):
    spec = _small(lstm_kernel, seed=11)
    other = spec.replace(seed=12)
    case = lstm_kernel.case(spec)
    last = {}

    def call():
        last["result"] = lstm_kernel.impl.fn(case)
        synchronize(case.device)

    for current in (spec, other):
        if current is other:
            _refill(case, other, lstm_kernel.device)
        time_fn(call, device=lstm_kernel.device, repeats=3, warmup=1)
        report = judge_result(last["result"], current.make(lstm_kernel.device), truth_of(current, lstm_kernel.device),
                              title=f"{lstm_kernel.name}: the last call of a timing loop | {current.id}" + (
                                  " (the inputs' contents replaced in the same buffers)" if current is other else ""),
                              impl=lstm_kernel.impl)
        assert report.passed, str(report)


def _extent(t: torch.Tensor) -> tuple[int, int]:
    """[first byte, last byte + 1) that `t` can touch."""
    if t.numel() == 0:
        return t.data_ptr(), t.data_ptr()
    span = sum((n - 1) * s for n, s in zip(t.shape, t.stride()) if n > 0) + 1
    return t.data_ptr(), t.data_ptr() + span * t.element_size()


def _overlap(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.device != b.device or a.numel() == 0 or b.numel() == 0:
        return False
    (a0, a1), (b0, b1) = _extent(a), _extent(b)
    return a0 < b1 and b0 < a1


def test_results_do_not_alias(lstm_kernel):
    case = lstm_kernel.case(_small(lstm_kernel, seed=13))
    result = lstm_kernel.impl.fn(case).tensors()
    inputs = case.tensors()
    problems = [f"{r} shares memory with the case's {k}" for r, t in result.items() for k, u in inputs.items()
                if _overlap(t, u)]
    names = list(result)
    problems += [f"{a} and {b} share memory" for i, a in enumerate(names) for b in names[i + 1:]
                 if (a.startswith("d_") or b.startswith("d_")) and _overlap(result[a], result[b])]
    assert not problems, f"{lstm_kernel.name}: " + "; ".join(problems)


def test_no_work_left_on_a_side_stream(lstm_kernel):
    if lstm_kernel.device != "cuda":
        pytest.skip("streams are a CUDA feature")
    spec = lstm_kernel.supported([s.replace(T=100, B=64, I=256, H=256) for s in [_small(lstm_kernel, seed=14)]])
    case = spec.make("cuda")
    torch.cuda.synchronize()
    result = lstm_kernel.impl.fn(case)
    early = {k: v.clone() for k, v in result.tensors().items()}  # on the caller's stream, no synchronisation
    torch.cuda.synchronize()
    changed = [k for k, v in result.tensors().items() if not torch.equal(v, early[k])]
    assert not changed, (f"{lstm_kernel.name}: {', '.join(changed)} changed after the call returned (work left on "
                         f"another stream, not ordered before the caller's)")
    report = judge_result(result, case, truth_of(spec, "cuda"), title=f"{lstm_kernel.name} | {spec.id}",
                          impl=lstm_kernel.impl)
    assert report.passed, str(report)
