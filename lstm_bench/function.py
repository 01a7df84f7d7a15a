"""A BPTT implementation wrapped as a `torch.autograd.Function`, so that autograd (and
`torch.autograd.gradcheck`) can drive a manual backward like any other op.

The implementation's contract takes the upstream gradients with the inputs, so the forward
runs it with zero upstream gradients for the outputs, and the backward runs it again
with the real ones (recomputing the forward, as activation checkpointing does).
"""
from __future__ import annotations

import torch

from .contract import GRAD_NAMES, Case, LSTMWeights
from .registry import get_impl


class _PathFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, name, x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh):
        weights = LSTMWeights(weight_ih, weight_hh, bias_ih, bias_hh)
        ctx.name, ctx.inputs = name, (x, h0, c0, weights)
        zero_output = x.new_zeros(x.shape[0], *h0.shape)
        result = get_impl(name)(Case(x, h0, c0, weights, zero_output, torch.zeros_like(h0), torch.zeros_like(c0)))
        return result.output, result.h_n, result.c_n

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, d_output, d_h_n, d_c_n):
        x, h0, c0, weights = ctx.inputs
        d_output = torch.zeros(x.shape[0], *h0.shape, dtype=x.dtype, device=x.device) if d_output is None else d_output
        d_h_n = torch.zeros_like(h0) if d_h_n is None else d_h_n
        d_c_n = torch.zeros_like(c0) if d_c_n is None else d_c_n
        result = get_impl(ctx.name)(Case(x, h0, c0, weights, d_output.contiguous(), d_h_n.contiguous(),
                                         d_c_n.contiguous()))
        return (None, *(result.grads[k] for k in GRAD_NAMES))


def lstm(name: str, x: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor,
         weights: LSTMWeights) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(output (T,B,H), h_n (B,H), c_n (B,H)) of implementation `name`, differentiable through its own backward."""
    return _PathFunction.apply(name, x, h0, c0, *weights.as_tuple())
