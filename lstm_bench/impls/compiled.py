"""The autograd path under `torch.compile` (Inductor): what a user tries before writing a kernel.

`autograd`'s forward with the elementwise part of each step (the gates' nonlinearities and the
cell update, forward and backward) compiled by Inductor into one fused kernel, called at every
step; the GEMMs (x W_ih^T for all steps, r_{t-1} W_hh^T, the projection) stay torch's (MKL or
oneDNN), and the loop over T, layers, directions and lengths stays in Python (`stack.forward`).
Compiling the unrolled loop instead would compile once per T (a graph of T steps: minutes at
T = 300); and with the recurrent GEMM inside the compiled cell, Inductor's dynamic-shape code
took 1.07 s for T = 10, B = 32, H = 256 where autograd took 31 ms (`bench`, load 5.9 on 2 CPUs).

    gates = xw_t + r_{t-1} W_hh^T                                        (torch.addmm)
    m_t, c_t = sigmoid(o) tanh(c_t), sigmoid(f) c_{t-1} + sigmoid(i) tanh(g)   (compiled)
    r_t = m_t [W_hr^T]

Shapes are dynamic (`dynamic=True`), so a new T, B, I or H does not recompile (sizes 0 and 1
are specialised by dynamo); dtype and device are guarded, a graph each.
A variant past dynamo's recompile limit would fall back to eager silently; here it raises
(`fail_on_recompile_limit_hit`), so `compiled` never times or judges eager code under its name.

`run.cold_start()` drops every compiled graph of the process (`torch._dynamo.reset`), so that the
next call compiles: `bench` calls it before its first call of a point and reports that call's
time less the warm median as the point's compile time (Inductor's on-disk cache stays: a
compile in a fresh cache directory is slower, docs/shipping.md).
"""
from __future__ import annotations

import functools

import torch

from ..core.contract import Case, Result
from . import autograd, stack
from .autograd import States
from .stack import LayerWeights

RECOMPILE_LIMIT = 64  # variants: dtype x device x sizes specialised at 1


def _cell(gates: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The step's elementwise part: (m_t, c_t) from the gate pre-activations (B, 4H) and c_{t-1} (B, H)."""
    i, f, g, o = gates.chunk(4, dim=1)
    c_t = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c_t), c_t


@functools.cache
def _compiled_cell():
    # Made on first use: torch.compile imports torch._dynamo, 1.2 to 1.9 s of every process's
    # `import lstm_bench` otherwise (python -X importtime, 2 CPUs under load).
    return torch.compile(_cell, backend="inductor", dynamic=True, fullgraph=True)


def layer_forward(x: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor, w: LayerWeights,
                  mask: torch.Tensor | None) -> States:
    """`autograd.layer_forward` with the step's elementwise part compiled."""
    xw = x @ w.weight_ih.T + w.bias_ih + w.bias_hh
    r, c = [h0], [c0]
    for t in range(x.shape[0]):
        m_t, c_t = _compiled_cell()(torch.addmm(xw[t], r[-1], w.weight_hh.T), c[-1])
        r_t = m_t if w.weight_hr is None else m_t @ w.weight_hr.T
        if mask is not None:
            c_t, r_t = torch.where(mask[t][:, None], c_t, c[-1]), torch.where(mask[t][:, None], r_t, r[-1])
        r.append(r_t)
        c.append(c_t)
    return States(torch.stack(r), torch.stack(c))


def forward(case: Case) -> autograd.Graph:
    import torch._dynamo  # noqa: F401  (the compiler's config; a heavy import, done when compiled runs)

    names = case.config.grad_names()
    with torch.enable_grad(), torch._dynamo.config.patch(recompile_limit=RECOMPILE_LIMIT,
                                                         fail_on_recompile_limit_hit=True):
        leaves = {k: v.detach().requires_grad_() for k, v in case.tensors().items() if k in names}
        cache = stack.forward(case.with_tensors({**case.tensors(), **leaves}), layer_forward)
    return autograd.Graph(tuple(leaves[k] for k in names), cache.output, cache.h_n, cache.c_n, backend="inductor")


def backward(case: Case, graph: autograd.Graph) -> Result:
    return autograd.backward(case, graph)


def run(case: Case) -> Result:
    return backward(case, forward(case))


def cold_start() -> None:
    """Drop every graph compiled in this process, so that the next call compiles afresh."""
    import torch._dynamo  # a heavy import, done when compiled runs

    torch._dynamo.reset()


run.cold_start = cold_start
