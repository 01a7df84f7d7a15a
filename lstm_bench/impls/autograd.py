"""Autograd BPTT: the forward of `lstm_bench.contract` in torch ops, gradients by
`torch.autograd.grad` with the case's upstream gradients (the seed notebook's baseline)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..contract import GRAD_NAMES, Case, Result


@dataclass
class Graph:
    inputs: tuple[torch.Tensor, ...]  # leaves in GRAD_NAMES order
    output: torch.Tensor
    h_n: torch.Tensor
    c_n: torch.Tensor


def leaves(case: Case) -> tuple[torch.Tensor, ...]:
    """Detached copies (no data copied) of the case's differentiable tensors, in GRAD_NAMES order."""
    w = case.weights
    return tuple(t.detach().requires_grad_() for t in (case.x, case.h0, case.c0, *w.as_tuple()))


def grads_of(graph_outputs, inputs, case: Case) -> dict[str, torch.Tensor]:
    """dL/d(inputs) for L = <output, d_output> + <h_n, d_h_n> + <c_n, d_c_n>."""
    grads = torch.autograd.grad(graph_outputs, inputs, (case.d_output, case.d_h_n, case.d_c_n))
    return dict(zip(GRAD_NAMES, grads))


def forward(case: Case) -> Graph:
    with torch.enable_grad():
        x, h, c, w_ih, w_hh, b_ih, b_hh = inputs = leaves(case)
        xw = x @ w_ih.T + b_ih + b_hh  # input projection of all steps at once
        hs = []
        for t in range(x.shape[0]):
            i, f, g, o = (xw[t] + h @ w_hh.T).chunk(4, dim=1)
            i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
            c = f * c + i * g
            h = o * torch.tanh(c)
            hs.append(h)
        return Graph(inputs, torch.stack(hs), h, c)


def backward(case: Case, graph: Graph) -> Result:
    grads = grads_of((graph.output, graph.h_n, graph.c_n), graph.inputs, case)
    return Result(graph.output.detach(), graph.h_n.detach(), graph.c_n.detach(), grads, backend="autograd")


def run(case: Case) -> Result:
    return backward(case, forward(case))
