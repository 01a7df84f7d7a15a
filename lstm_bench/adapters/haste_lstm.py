"""haste's LSTM (LMNT, `haste_pytorch.LSTM`, `pip install "lstm-bench[haste]"`) under the contract.

Tested with haste-pytorch-cpu 0.5.5 (the `haste_pytorch` package) on torch 2.13.0 (CPU). Sources, in its sdist
(frameworks/pytorch/ is installed as haste_pytorch/):

    frameworks/pytorch/lstm.py       LSTM (the module), LSTMScript (its CPU path: a PyTorch loop, gradients by
                                     autograd), LSTMFunction (its CUDA path: haste_pytorch_lib's fused kernels)
    frameworks/pytorch/base_rnn.py   batch_first, the (1, B, H) states, the final state at `lengths`
    frameworks/pytorch/lstm.cc       the CUDA extension: float32 and float64 (AT_DISPATCH_FLOATING_TYPES)

haste ships its LSTM as a module only, so each layer and direction is a `haste_pytorch.LSTM` built once per
(input size, hidden size, dtype, device) and called by `torch.func.functional_call` with the case's weights
converted to its layout (`lstm_bench.adapters.layout`) as its parameters: the gradients flow back to
nn.LSTM's names. What it computes and what this adapter papers over:

    gate order         i, g, f, o (Layout("igfo"))
    weights            kernel (I, 4H) and recurrent_kernel (H, 4H): gates = x @ kernel + h @ recurrent_kernel
    bias               one, b = b_ih + b_hh (4H,); its `forget_bias` only initialises it, the loaded b replaces it
    regularisation     dropout (DropConnect on recurrent_kernel) and zoneout set to 0, so the module computes the
                       plain LSTM in training mode too (its CUDA backward refuses eval mode)
    states             (1, B, H) per layer and direction, as nn.LSTM's one slice h0[k][None]
    layers, directions one layer, one direction: stacked and reversed by `stack_layers`
    lengths            its own: h_n and c_n are taken at each sequence's step L_b (base_rnn.py,
                       _get_final_state); its output at padded steps is not masked, by design ("It's the
                       caller's responsibility", LSTM.forward's docstring): `stack_layers` zeroes it
                       (`mask_padded`), as nn.LSTM's unpacked output is
    projection         none (proj_size cases skip)

`haste` runs its CPU path (devices=("cpu",)); `haste_cuda` its CUDA kernel (devices=("cuda",)), loaded only
where haste_pytorch_lib was built (its setup.py builds it when nvcc is on PATH); it has not run under the
suite (docs/adapters.md).
"""
from __future__ import annotations

import warnings

import torch
from haste_pytorch import LSTM as HasteLSTM  # the optional extra: this module loads only where it is installed
from torch.func import functional_call

from .autodiff import Forward, autograd_kernel
from .layout import LayerWeights, Layout, layered_forward

HASTE = Layout("igfo", "in_out", "one")
FEATURES = ("layers", "bidirectional", "batch_first", "lengths")
_modules: dict[tuple, HasteLSTM] = {}


def haste_module(input_size: int, hidden_size: int, dtype: torch.dtype, device: torch.device) -> HasteLSTM:
    """haste's LSTM layer for these sizes, its regularisation off, kept: its own parameters are never used
    (functional_call replaces them)."""
    key = (input_size, hidden_size, dtype, device)
    if key not in _modules:
        _modules[key] = HasteLSTM(input_size, hidden_size, dropout=0.0, zoneout=0.0).to(dtype=dtype, device=device)
    return _modules[key]


def haste_layer(seq: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor, w: LayerWeights,
                lengths: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One layer, one direction by haste (layout.LayerFn): seq (T, B, I), h0 and c0 (B, H) -> (hs (T, B, H)
    unmasked, h_n (B, H), c_n (B, H) at each sequence's own last step)."""
    module = haste_module(seq.shape[-1], c0.shape[-1], seq.dtype, seq.device)
    params = {"kernel": w.w_ih, "recurrent_kernel": w.w_hh, "bias": w.bias}
    with warnings.catch_warnings():
        # base_rnn.py indexes state[[lengths, cols]]; torch 2.13 still reads the list as a tuple of indices
        # (the lengths cases agree) and warns that a later torch will not.
        warnings.filterwarnings("ignore", "Using a non-tuple sequence for multidimensional indexing")
        hs, (h_n, c_n) = functional_call(module, params, (seq, (h0[None], c0[None])), {"lengths": lengths})
    return hs, h_n[0], c_n[0]


def haste_forward(layout: Layout = HASTE) -> Forward:
    """The forward (x, h0, c0, weights, case) -> (output, h_n, c_n) of haste in nn.LSTM's configuration
    (autodiff.Forward); `layout` other than HASTE is the tests' broken variant."""
    forward = layered_forward(haste_layer, layout)
    forward.__doc__ = __doc__
    return forward


haste = autograd_kernel(haste_forward(), name="haste", backend="haste_pytorch CPU", features=FEATURES,
                        devices=("cpu",))
haste_cuda = autograd_kernel(haste_forward(), name="haste_cuda", backend="haste_pytorch CUDA", features=FEATURES,
                             devices=("cuda",))

__all__ = ["haste", "haste_cuda", "haste_layer", "haste_forward", "haste_module", "HASTE"]
