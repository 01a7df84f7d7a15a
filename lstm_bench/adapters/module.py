"""An `nn.Module` as a kernel of the contract (`module_kernel`): a drop-in nn.LSTM replacement.

A library such as FlashRNN, or a framework backend, ships its LSTM as a module. The
kernel builds it from the case's configuration (`build(config)`, once per configuration,
dtype and device, then kept), loads the case's weights into it (`load(module, case)`) and
calls it as nn.LSTM is called; the gradients come from autograd:

    output, (h_n, c_n) = module(x, (h0, c0))           x (T, B, I), or (B, T, I) when batch_first
    with lengths: module(pack_padded_sequence(x, lengths, batch_first, enforce_sorted=False), (h0, c0)),
    the output unpacked by pad_packed_sequence(..., total_length=T), as a user of nn.LSTM writes it
    grads = torch.autograd.grad((output, h_n, c_n), (x, h0, c0, *parameters), (d_output, d_h_n, d_c_n))

The gradients of the weights are those of the module's parameters of nn.LSTM's names
(`weight_ih_l0`, `weight_hh_l0`, `bias_ih_l0`, `bias_hh_l0`, `weight_hr_l0`, `..._reverse`,
`_l1`, ...). A library whose parameters are laid out otherwise (another gate order, one
fused bias, transposed weights) is wrapped in a module holding nn.LSTM's parameters that
converts them in its forward with differentiable torch ops: the gradients then flow back
to nn.LSTM's names. `load` defaults to copying `case.weights` into those parameters.

    my_lstm = module_kernel(lambda config: MyLSTM(config.input_size, config.hidden_size),
                            features=(), fullgraph=True)

The kernel carries `traceable` (the module call as a function of x, h0, c0, the module's
parameters as leaves: `lstm_bench.adapters.traceable`) and `fullgraph` for the PT2 gates.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..core.contract import Case, LSTMConfig, Result
from .traceable import Traceable, leaves_of, run_eager

Build = Callable[[LSTMConfig], torch.nn.Module]
Load = Callable[[torch.nn.Module, Case], None]


def load_lstm_weights(module: torch.nn.Module, case: Case) -> None:
    """Copy `case.weights` into the module's parameters of the same (nn.LSTM's) names."""
    with torch.no_grad():
        for name, value in case.weights.items():
            parameter(module, name).copy_(value)


def parameter(module: torch.nn.Module, name: str) -> torch.nn.Parameter:
    """The module's parameter `name`; ValueError naming it and what the module has otherwise."""
    try:
        return module.get_parameter(name)
    except AttributeError:
        have = [n for n, _ in module.named_parameters()]
        raise ValueError(f"{type(module).__name__} has no parameter {name!r} (nn.LSTM's name for it); it has "
                         f"{have}. Wrap it in a module holding nn.LSTM's parameters (lstm_bench.adapters.module)") \
            from None


def module_kernel(build: Callable[[LSTMConfig], torch.nn.Module], *,
                  load: Callable[[torch.nn.Module, Case], None] | None = None,
                  name: str | None = None, **declared) -> Callable[[Case], Result]:
    """A kernel `case -> Result` that runs the module `build(case.config)`, loaded by `load`
    (default `load_lstm_weights`), gradients by `torch.autograd.grad`. `name`: the kernel's
    name (default build's); `declared`: the kernel's declarations (features, dtypes, devices,
    max_sizes, deterministic, ..., `lstm_bench.core.registry.declared_by`; and `fullgraph`,
    True when the module traces under torch.compile without a graph break, for the PT2 gates)."""
    if not callable(build):
        raise ValueError(f"build must be a function LSTMConfig -> nn.Module, got {build!r}")
    load = load or load_lstm_weights
    built: dict[tuple, torch.nn.Module] = {}  # one module per configuration, dtype and device, refilled per call

    def module_for(case: Case) -> torch.nn.Module:
        key = (case.config, case.dtype, case.device)
        if key not in built:
            module = build(case.config)
            if not isinstance(module, torch.nn.Module):
                raise ValueError(f"build returned a {type(module).__name__}, not an nn.Module")
            built[key] = module.to(device=case.device, dtype=case.dtype)
        module = built[key]
        load(module, case)
        return module

    def traceable(case: Case) -> Traceable:
        module = module_for(case)
        leaves = leaves_of(case, ("x", "h0", "c0"))
        leaves.update({k: parameter(module, k) for k in case.config.weight_shapes()})
        for p in module.parameters():
            p.grad = None
        return Traceable(_caller(module, case), (leaves["x"], leaves["h0"], leaves["c0"]), leaves)

    kernel_name = name or getattr(build, "__name__", "module")
    if kernel_name == "<lambda>":
        kernel_name = "module"

    def kernel(case: Case) -> Result:
        return run_eager(case, traceable, backend=f"module {kernel_name}")

    kernel.__name__ = kernel.__qualname__ = kernel_name
    kernel.__doc__ = f"The module built by {kernel_name} under the contract (lstm_bench.adapters.module_kernel)."
    kernel.traceable = traceable
    kernel.fullgraph = bool(declared.pop("fullgraph", False))
    for key, value in declared.items():
        setattr(kernel, key, value)
    return kernel


def _caller(module: torch.nn.Module, case: Case) -> Callable:
    """(x, h0, c0) -> (output, h_n, c_n): the module called as nn.LSTM is, lengths packed and unpacked."""
    lengths, batch_first, T = case.lengths, case.config.batch_first, case.sizes[0]
    if lengths is None:
        def call(x, h0, c0):
            output, (h_n, c_n) = module(x, (h0, c0))
            return output, h_n, c_n
        return call

    def call_packed(x, h0, c0):
        packed = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False)
        output, (h_n, c_n) = module(packed, (h0, c0))
        output, _ = pad_packed_sequence(output, batch_first=batch_first, total_length=T)
        return output, h_n, c_n
    return call_packed
