"""A `torch.library` custom op as a kernel of the contract (`op_kernel`).

A fused CUDA or Triton LSTM reaches its users as a custom op: a forward op (and a backward
op, or one op whose backward is registered with `torch.library.register_autograd`), each
with a fake kernel so that `torch.compile` can trace it. `op_kernel(op)` turns it into a
`case -> Result` kernel: the op is called on the case's tensors, and its gradients come
from autograd through the op's registered backward, so the suite judges the forward, the
backward and their registration together.

    @torch.library.custom_op("mylib::lstm", mutates_args=())
    def lstm(x, h0, c0, w_ih, w_hh, b_ih, b_hh) -> tuple[Tensor, Tensor, Tensor]: ...
    lstm.register_fake(...); lstm.register_autograd(backward, setup_context=...)

    my_lstm = op_kernel(lstm, features=(), name="my_lstm")    # pytest ... --lstm-impl mymod:my_lstm

The op's arguments, by default: x, h0, c0 as the case holds them (nn.LSTM's shapes and
layout), then every weight in nn.LSTM's order (`LSTMConfig.weight_shapes()`: weight_ih,
weight_hh, bias_ih, bias_hh[, weight_hr] of layer 0, its reverse direction, layer 1, ...),
then the lengths (int64, CPU) when the case has them. `args(case, tensors)` replaces that
order for an op with another signature. Its outputs: (output, h_n, c_n, ...) in nn.LSTM's
shapes; outputs after the third (activations saved for the backward) are ignored.

The kernel carries what the PT2 gates need (`lstm_bench.conformance.test_pt2`): `traceable`
(the op call as a function of tensors, `lstm_bench.adapters.traceable`), `ops` (the ops
`torch.library.opcheck` checks) and `fullgraph` (True by default: a custom op with a fake
kernel traces without a graph break).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from ..core.contract import Case, Result
from .traceable import Traceable, leaves_of, run_eager

Args = Callable[[Case, dict[str, torch.Tensor]], tuple]


def default_args(case: Case, t: dict[str, torch.Tensor]) -> tuple:
    """(x, h0, c0, *weights in nn.LSTM's order[, lengths]) from the grad-name -> tensor map `t`."""
    args = (t["x"], t["h0"], t["c0"], *(t[k] for k in case.config.weight_shapes()))
    return args + ((case.lengths,) if case.lengths is not None else ())


def _op_name(op: Any) -> str:
    name = getattr(op, "_qualname", None) or getattr(op, "__name__", None) or str(op)
    return str(name).replace("::", "_").replace(".", "_")


def op_kernel(op: Callable, *, args: Args | None = None, name: str | None = None, fullgraph: bool = True,
              ops: Sequence[Callable] | None = None, **declared) -> Callable[[Case], Result]:
    """A kernel `case -> Result` that calls the custom op `op` (forward; backward registered
    with `register_autograd` or an autograd key). `args(case, tensors)` builds the op's
    arguments (default `default_args`); `ops`, the ops `opcheck` checks on the suite's cases
    (default: `op`, called with inputs that require grad, which also runs its backward);
    `fullgraph=False` declares that the kernel breaks the graph under torch.compile;
    `declared`: the kernel's declarations (features, dtypes, devices, max_sizes,
    deterministic, ...: `lstm_bench.core.registry.declared_by`)."""
    if not callable(op):
        raise ValueError(f"op must be a custom op (callable), got {op!r}")
    build_args = args or default_args

    def traceable(case: Case) -> Traceable:
        leaves = leaves_of(case, case.config.grad_names())
        return Traceable(op, build_args(case, leaves), leaves)

    def kernel(case: Case) -> Result:
        return run_eager(case, traceable, backend=f"op {_op_name(op)}")

    kernel.__name__ = kernel.__qualname__ = name or _op_name(op)
    kernel.__doc__ = f"The custom op {_op_name(op)} under the contract (lstm_bench.adapters.op_kernel)."
    kernel.traceable = traceable
    kernel.ops = tuple(ops) if ops is not None else (op,)
    kernel.op_args = build_args
    kernel.fullgraph = fullgraph
    for key, value in declared.items():
        setattr(kernel, key, value)
    return kernel
