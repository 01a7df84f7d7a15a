"""torch.nn.LSTM loaded with the case's weights, gradients by autograd (`autograd.backward`).

The module is built from the case's `LSTMConfig` and loaded with `load_state_dict(case.weights)`;
variable lengths go through `pack_padded_sequence(..., enforce_sorted=False)` and come back
padded to T by `pad_packed_sequence(..., total_length=T)`, as a user of nn.LSTM writes it.

`nn_lstm` lets PyTorch pick its fastest kernel: cuDNN on CUDA, oneDNN (mkldnn) on
CPU where it applies (float32 and bfloat16; float64 falls back to ATen's kernel).
`nn_lstm_native` turns cuDNN and oneDNN off, leaving ATen's own kernels. The Result's
`backend` says what actually ran, read from the autograd graph that was built.
"""
from __future__ import annotations

import contextlib
import warnings
from typing import Iterator

import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..core.contract import Case, Result
from .autograd import Graph, backward

# One module is kept and refilled per call, so that a timed call does not pay for
# nn.LSTM's construction and random initialisation; only a weight copy remains.
_module_cache: dict[tuple, torch.nn.LSTM] = {}


@contextlib.contextmanager
def native_kernels() -> Iterator[None]:
    """Turn cuDNN and oneDNN off (ATen's own RNN kernels), restoring both afterwards."""
    cudnn, mkldnn = torch.backends.cudnn.enabled, torch._C._get_mkldnn_enabled()
    torch.backends.cudnn.enabled = False
    torch._C._set_mkldnn_enabled(False)
    try:
        yield
    finally:
        torch.backends.cudnn.enabled = cudnn
        torch._C._set_mkldnn_enabled(mkldnn)


def _module(case: Case) -> torch.nn.LSTM:
    key = (case.device, case.dtype, case.config)
    if key not in _module_cache:
        _module_cache.clear()
        _module_cache[key] = case.config.module(device=case.device, dtype=case.dtype)
    lstm = _module_cache[key]
    with torch.no_grad():
        lstm.load_state_dict(case.weights)
    if case.device.type == "cuda":
        lstm.flatten_parameters()  # cuDNN wants one contiguous weight buffer
    return lstm


def backend_of(c_n: torch.Tensor) -> str:
    """Name the RNN kernel that produced `c_n`, from the nodes of its autograd graph."""
    stack, seen = [(c_n.grad_fn, 0)], set()
    while stack:
        fn, depth = stack.pop()
        if fn is None or depth > 3 or fn in seen:
            continue
        seen.add(fn)
        name = type(fn).__name__
        for key, backend in (("Cudnn", "cudnn"), ("Miopen", "miopen"), ("Mkldnn", "onednn")):
            if key in name:
                return backend
        stack.extend((nxt, depth + 1) for nxt, _ in fn.next_functions)
    return "native"


def forward(case: Case) -> Graph:
    lstm = _module(case)
    c = case.config
    with torch.enable_grad(), warnings.catch_warnings():
        # "LSTM with projections is not supported with oneDNN": the backend that ran is recorded instead
        warnings.filterwarnings("ignore", message=".*not supported with oneDNN.*")
        x, h0, c0 = (t.detach().requires_grad_() for t in (case.x, case.h0, case.c0))
        if case.lengths is None:
            output, (h_n, c_n) = lstm(x, (h0, c0))
        else:
            packed = pack_padded_sequence(x, case.lengths, batch_first=c.batch_first, enforce_sorted=False)
            output, (h_n, c_n) = lstm(packed, (h0, c0))
            output, _ = pad_packed_sequence(output, batch_first=c.batch_first, total_length=case.sizes[0])
    params = dict(lstm.named_parameters())
    inputs = (x, h0, c0, *(params[name] for name in c.weight_shapes()))
    return Graph(inputs, output, h_n, c_n, backend_of(c_n))


def forward_native(case: Case) -> Graph:
    with native_kernels():
        return forward(case)


def run(case: Case) -> Result:
    return backward(case, forward(case))


def run_native(case: Case) -> Result:
    return backward(case, forward_native(case))
