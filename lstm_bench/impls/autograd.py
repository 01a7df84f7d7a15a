"""Autograd BPTT: the forward of `lstm_bench.contract` in torch ops, gradients by
`torch.autograd.grad` with the case's upstream gradients (the seed notebook's baseline).

`Graph` and `backward` serve every implementation whose backward is autograd's (`nn_lstm` too)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..contract import GRAD_NAMES, Case, Result


@dataclass
class Graph:
    """A forward built under autograd: what `backward` differentiates."""

    inputs: tuple[torch.Tensor, ...]  # the tensors of GRAD_NAMES, in that order, requiring grad
    output: torch.Tensor  # (T, B, H)
    h_n: torch.Tensor  # (B, H)
    c_n: torch.Tensor  # (B, H)
    backend: str = "autograd"  # what ran, for Result.backend


def leaves(case: Case) -> tuple[torch.Tensor, ...]:
    """Detached copies (no data copied) of the case's differentiable tensors, in GRAD_NAMES order."""
    w = case.weights
    return tuple(t.detach().requires_grad_() for t in (case.x, case.h0, case.c0, *w.as_tuple()))


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
    """dL/d(inputs) for L = <output, d_output> + <h_n, d_h_n> + <c_n, d_c_n>, by torch.autograd.grad."""
    grads = torch.autograd.grad((graph.output, graph.h_n, graph.c_n), graph.inputs,
                                (case.d_output, case.d_h_n, case.d_c_n))
    return Result(graph.output.detach(), graph.h_n.detach(), graph.c_n.detach(), dict(zip(GRAD_NAMES, grads)),
                  backend=graph.backend)


def run(case: Case) -> Result:
    return backward(case, forward(case))
