"""A forward function plus an autodiff as a kernel of the contract (`autograd_kernel`).

Many LSTMs ship as a forward pass whose gradients come from a framework's automatic
differentiation: a PyTorch function, a JAX function differentiated by `jax.vjp`, a
TensorFlow one by `tf.GradientTape`. `autograd_kernel(forward)` makes the kernel
`case -> Result` of such a forward: it calls

    output, h_n, c_n = forward(x, h0, c0, weights, case)     nn.LSTM's shapes (lstm_bench.core.contract)

with x, h0, c0 and the weights (by nn.LSTM's names) as tensors that require grad, and takes
the gradients of L = sum(output * d_output) + sum(h_n * d_h_n) + sum(c_n * d_c_n) by
`torch.autograd.grad`. Inside `forward` the conversion to the library's layout is torch ops
(`lstm_bench.adapters.layout`), so the gradients come back by nn.LSTM's names; another
framework's forward enters as a `torch.autograd.Function` whose backward is that framework's
vector-Jacobian product, and composes with the conversion like any torch op.

    def my_forward(x, h0, c0, weights, case):
        w = Layout("iofc", "in_out", "one").layer(weights, case.config, 0)
        ...                                                   # the library's LSTM on w.w_ih, w.w_hh, w.bias
        return output, h_n, c_n

    my_lstm = autograd_kernel(my_forward, features=())        # declarations as for any kernel

The kernel carries a `traceable` (`lstm_bench.adapters.traceable`) for the PT2 gates;
`fullgraph=True` declares that `forward` compiles without a graph break.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from ..core.contract import STATE_NAMES, Case, Result
from .traceable import Traceable, leaves_of, run_eager

Forward = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, dict, Case], Sequence[torch.Tensor]]


def autograd_kernel(forward: Forward, *, name: str | None = None, backend: str | None = None,
                    **declared) -> Callable[[Case], Result]:
    """The kernel `case -> Result` of `forward(x, h0, c0, weights, case) -> (output, h_n, c_n)`, its
    gradients by autograd. `name` defaults to forward's; `backend` (what `Result.backend` reports)
    to the name; `declared`: the kernel's declarations (devices, dtypes, features, max_sizes,
    deterministic, ..., `lstm_bench.core.registry.declared_by`) and `fullgraph` for the PT2 gates."""
    if not callable(forward):
        raise ValueError(f"forward must be a function (x, h0, c0, weights, case) -> (output, h_n, c_n), got {forward!r}")
    kernel_name = name or getattr(forward, "__name__", "forward")
    backend = backend or kernel_name

    def traceable(case: Case) -> Traceable:
        leaves = leaves_of(case, STATE_NAMES + tuple(case.config.weight_shapes()))
        weights = {k: leaves[k] for k in case.config.weight_shapes()}

        def fn(x, h0, c0):
            return forward(x, h0, c0, weights, case)
        return Traceable(fn, (leaves["x"], leaves["h0"], leaves["c0"]), leaves)

    def kernel(case: Case) -> Result:
        return run_eager(case, traceable, backend=backend)

    kernel.__name__ = kernel.__qualname__ = kernel_name
    kernel.__doc__ = forward.__doc__ or f"{kernel_name} under the contract (lstm_bench.adapters.autograd_kernel)."
    kernel.__module__ = getattr(forward, "__module__", kernel.__module__)
    kernel.__wrapped__ = forward  # registry.source_of hashes the forward's file, not this one
    kernel.traceable = traceable
    kernel.fullgraph = bool(declared.pop("fullgraph", False))
    for key, value in declared.items():
        setattr(kernel, key, value)
    return kernel


# The dtypes another framework's function is bridged in (jax_bridge, tf_bridge): what the contract's
# float32 and float64 cases hand it; non-floating tensors (masks, lengths) cross as constants.
BRIDGED_FLOATS = (torch.float32, torch.float64)


def check_bridged(name: str, framework: str, tensors: tuple) -> None:
    """ValueError naming the argument unless every one of `tensors` is a torch tensor, floating ones in
    `BRIDGED_FLOATS`: the inputs a bridge (`jax_op`, `tf_op`) called `name` hands `framework`."""
    for k, t in enumerate(tensors):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name}: argument {k} must be a torch tensor, got {type(t).__name__}")
        if t.is_floating_point() and t.dtype not in BRIDGED_FLOATS:
            raise ValueError(f"{name}: argument {k} is {t.dtype}; {framework} runs float32 and float64 here")


__all__ = ["autograd_kernel", "Forward", "check_bridged", "BRIDGED_FLOATS"]
