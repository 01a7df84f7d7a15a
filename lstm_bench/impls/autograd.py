"""Autograd BPTT: the forward of `lstm_bench.core.contract` in torch ops, gradients by
`torch.autograd.grad` with the case's upstream gradients (the seed notebook's baseline).

Layers, directions and lengths are composed by `impls/stack.py`, whose composition is
itself torch ops (concatenation, gathers, masks), so autograd differentiates the whole
stack. `Graph` and `backward` serve every implementation whose backward is autograd's
(`nn_lstm` too)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core.contract import Case, Result
from . import stack
from .stack import LayerWeights


@dataclass
class Graph:
    """A forward built under autograd: what `backward` differentiates."""

    inputs: tuple[torch.Tensor, ...]  # x, h0, c0 and the weights, in config.grad_names() order, requiring grad
    output: torch.Tensor
    h_n: torch.Tensor
    c_n: torch.Tensor
    backend: str = "autograd"  # what ran, for Result.backend


@dataclass
class States:
    r: torch.Tensor  # (T+1, B, H_out)
    c: torch.Tensor  # (T+1, B, H)


def layer_forward(x: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor, w: LayerWeights,
                  mask: torch.Tensor | None) -> States:
    """One layer in one direction, in differentiable torch ops (the equations of lstm_bench.core.contract)."""
    xw = x @ w.weight_ih.T + w.bias_ih + w.bias_hh  # input projection of all steps at once
    r, c = [h0], [c0]
    for t in range(x.shape[0]):
        i, f, g, o = (xw[t] + r[-1] @ w.weight_hh.T).chunk(4, dim=1)
        c_t = torch.sigmoid(f) * c[-1] + torch.sigmoid(i) * torch.tanh(g)
        r_t = torch.sigmoid(o) * torch.tanh(c_t)
        if w.weight_hr is not None:
            r_t = r_t @ w.weight_hr.T
        if mask is not None:  # past a sequence's last step its state stays
            c_t, r_t = torch.where(mask[t][:, None], c_t, c[-1]), torch.where(mask[t][:, None], r_t, r[-1])
        r.append(r_t)
        c.append(c_t)
    return States(torch.stack(r), torch.stack(c))


def forward(case: Case) -> Graph:
    names = case.config.grad_names()
    with torch.enable_grad():
        leaves = {k: v.detach().requires_grad_() for k, v in case.tensors().items() if k in names}
        cache = stack.forward(case.with_tensors({**case.tensors(), **leaves}), layer_forward)
    return Graph(tuple(leaves[k] for k in names), cache.output, cache.h_n, cache.c_n)


def backward(case: Case, graph: Graph) -> Result:
    """dL/d(inputs) for L = <output, d_output> + <h_n, d_h_n> + <c_n, d_c_n>, by torch.autograd.grad."""
    grads = torch.autograd.grad((graph.output, graph.h_n, graph.c_n), graph.inputs,
                                (case.d_output, case.d_h_n, case.d_c_n))
    return Result(graph.output.detach(), graph.h_n.detach(), graph.c_n.detach(),
                  dict(zip(case.config.grad_names(), grads)), backend=graph.backend)


def run(case: Case) -> Result:
    return backward(case, forward(case))
