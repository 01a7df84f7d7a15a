"""The autograd path under `torch.compile` (Inductor): what a user tries before writing a kernel.

`autograd.layer_forward`'s step, the cell, is compiled once and called at every step; the
loop over T, layers, directions and lengths stay in Python (`stack.forward`), as in
`autograd`. Compiling the whole unrolled loop instead would compile once per T (a graph of
T steps: minutes at T = 300); the cell is one graph for every T. Its backward is
AOTAutograd's compiled backward of the cell, chained by autograd over the steps.

    gates = xw_t + r_{t-1} W_hh^T ; c_t = sigmoid(f) c_{t-1} + sigmoid(i) tanh(g)
    r_t = sigmoid(o) tanh(c_t) [W_hr^T]            (one compiled graph per variant below)

Shapes are dynamic (`dynamic=True`), so a new T, B, I or H does not recompile (sizes 0 and 1
are specialised by dynamo); dtype, device, a projection and a mask are guarded, a graph each.
A variant past dynamo's recompile limit would fall back to eager silently; here it raises
(`fail_on_recompile_limit_hit`), so `compiled` never times or judges eager code under its name.

`run.cold_start()` drops every compiled graph of the process (`torch._dynamo.reset`), so that the
next call compiles: `bench` calls it before its first call of a point and reports that call's
time less the warm median as the point's compile time (Inductor's on-disk cache stays: a
compile in a fresh cache directory is slower, docs/shipping.md).
"""
from __future__ import annotations

import torch

from ..core.contract import Case, Result
from . import autograd, stack
from .autograd import States
from .stack import LayerWeights

RECOMPILE_LIMIT = 64  # variants: dtype x device x projection x mask x sizes specialised at 1


def _cell(xw_t: torch.Tensor, r: torch.Tensor, c: torch.Tensor, weight_hh: torch.Tensor,
          weight_hr: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    i, f, g, o = (xw_t + r @ weight_hh.T).chunk(4, dim=1)
    c_t = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    r_t = torch.sigmoid(o) * torch.tanh(c_t)
    if weight_hr is not None:
        r_t = r_t @ weight_hr.T
    return r_t, c_t


_compiled_cell = torch.compile(_cell, backend="inductor", dynamic=True, fullgraph=True)


def layer_forward(x: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor, w: LayerWeights,
                  mask: torch.Tensor | None) -> States:
    """`autograd.layer_forward` with the compiled cell."""
    xw = x @ w.weight_ih.T + w.bias_ih + w.bias_hh
    r, c = [h0], [c0]
    for t in range(x.shape[0]):
        r_t, c_t = _compiled_cell(xw[t], r[-1], c[-1], w.weight_hh, w.weight_hr)
        if mask is not None:
            c_t, r_t = torch.where(mask[t][:, None], c_t, c[-1]), torch.where(mask[t][:, None], r_t, r[-1])
        r.append(r_t)
        c.append(c_t)
    return States(torch.stack(r), torch.stack(c))


def forward(case: Case) -> autograd.Graph:
    import torch._dynamo  # noqa: F401  (torch.compile's config; imported with torch.compile above)

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
    torch._dynamo.reset()


run.cold_start = cold_start
