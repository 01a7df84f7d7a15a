"""A BPTT implementation wrapped as a `torch.autograd.Function`, so that autograd (and
`torch.autograd.gradcheck`) can drive a manual backward like any other op.

The implementation's contract takes the upstream gradients with the inputs, so the forward
runs it with zero upstream gradients for the outputs, and the backward runs it again
with the real ones (recomputing the forward, as activation checkpointing does).
"""
from __future__ import annotations

import torch

from ..core.contract import Case
from ..core.registry import get_impl


class _ImplFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, name, case, *tensors):
        # tensors: x, h0, c0 and the weights, in case.config.grad_names() order
        ctx.name, ctx.case, ctx.tensors = name, case, tensors
        result = get_impl(name)(_with(case, tensors, torch.zeros_like(case.d_output), torch.zeros_like(case.d_h_n),
                                      torch.zeros_like(case.d_c_n)))
        return result.output, result.h_n, result.c_n

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, d_output, d_h_n, d_c_n):
        case = ctx.case
        ups = [torch.zeros_like(ref) if g is None else g.contiguous()
               for g, ref in ((d_output, case.d_output), (d_h_n, case.d_h_n), (d_c_n, case.d_c_n))]
        result = get_impl(ctx.name)(_with(case, ctx.tensors, *ups))
        return (None, None, *(result.grads[k] for k in case.config.grad_names()))


def _with(case: Case, tensors: tuple, d_output, d_h_n, d_c_n) -> Case:
    names = case.config.grad_names()
    return case.with_tensors({**dict(zip(names, tensors)), "d_output": d_output, "d_h_n": d_h_n, "d_c_n": d_c_n})


def lstm(name: str, case: Case, *tensors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(output, h_n, c_n) of implementation `name` on `case` with its x, h0, c0 and weights replaced
    by `tensors` (in `case.config.grad_names()` order), differentiable through the
    implementation's own backward. The case's configuration, lengths and shapes are kept."""
    return _ImplFunction.apply(name, case, *tensors)
