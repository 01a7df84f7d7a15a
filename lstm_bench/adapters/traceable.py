"""What the PT2 gates compile: a kernel's differentiable forward as a function of tensors.

A plain kernel `case -> Result` computes its own gradients, so there is nothing for
`torch.compile` to take hold of. The adapters (`op_kernel`, `module_kernel`) hand the
suite a `Traceable` instead, set as the kernel's `traceable` attribute: `fn(*inputs)` returns
(output, h_n, c_n) in nn.LSTM's shapes, differentiable by autograd, and `leaves` names the
tensors (inputs, or a module's parameters) whose gradients are the Result's, by
`case.config.grad_names()`. The kernel itself is `gradients(case, tr, tr.fn(*tr.inputs))`;
the PT2 gates run `torch.compile(tr.fn)` in its place and judge what comes out the same way.

    L = sum(output * d_output) + sum(h_n * d_h_n) + sum(c_n * d_c_n)      (lstm_bench.core.contract)
    Result.grads[name] = dL/d leaves[name]                                 (torch.autograd.grad)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from ..core.contract import Case, Result


@dataclass
class Traceable:
    """A kernel's forward on one case, ready to be called eagerly or compiled.

    fn      (*inputs) -> (output, h_n, c_n, ...) : extra outputs (saved activations) are ignored
    inputs  fn's arguments (tensors, some of them leaves that require grad)
    leaves  grad name ("x", "h0", "c0", nn.LSTM's parameter names) -> the tensor requiring grad
    """

    fn: Callable[..., Sequence[torch.Tensor]]
    inputs: tuple
    leaves: dict[str, torch.Tensor]


def gradients(case: Case, tr: Traceable, outputs: Sequence[torch.Tensor], backend: str) -> Result:
    """The Result of `outputs = tr.fn(*tr.inputs)` (or a compiled fn's): the outputs detached
    and dL/d(every leaf) by `torch.autograd.grad` with the case's upstream gradients."""
    output, h_n, c_n = outputs[0], outputs[1], outputs[2]
    names = case.config.grad_names()
    missing = [k for k in names if k not in tr.leaves]
    if missing:
        raise ValueError(f"no leaf for the gradient(s) {', '.join(missing)}")
    grads = torch.autograd.grad((output, h_n, c_n), [tr.leaves[k] for k in names],
                                (case.d_output, case.d_h_n, case.d_c_n), allow_unused=True)
    grads = [torch.zeros_like(tr.leaves[k]) if g is None else g for k, g in zip(names, grads)]
    return Result(output.detach(), h_n.detach(), c_n.detach(), dict(zip(names, grads)), backend=backend)


def leaves_of(case: Case, names: Sequence[str]) -> dict[str, torch.Tensor]:
    """Detached copies of the case's tensors `names` that require grad (the case itself stays untouched)."""
    t = case.tensors()
    return {k: t[k].detach().requires_grad_() for k in names}


def run_eager(case: Case, make: Callable[[Case], Traceable], backend: str) -> Result:
    """The kernel `case -> Result` of a traceable form: its fn called eagerly, gradients by autograd."""
    with torch.enable_grad():
        tr = make(case)
        return gradients(case, tr, tr.fn(*tr.inputs), backend)
