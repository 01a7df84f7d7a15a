"""FlashRNN's LSTM (NX-AI, `pip install "lstm-bench[flashrnn]"`) under the contract, one kernel per backend.

Tested with flashrnn 1.0.8 on torch 2.13.0 (CPU). Sources, in the installed package:

    flashrnn/flashrnn/flashrnn.py            flashrnn(Wx, R, b, states, function, backend, dtype): the entry,
                                             FlashRNNConfig (its shapes "BTGHD", "GHDP", "GHD", "SBTHD"), backends
    flashrnn/flashrnn/vanilla/__init__.py    backend "vanilla": a PyTorch loop, gradients by autograd
    flashrnn/flashrnn/vanilla/lstm.py        the cell: gates i, f, z, o; c' = f c + i tanh(z); h' = o tanh(c')
    flashrnn/flashrnn/vanilla_fwbw/          backend "vanilla_fwbw": a torch.autograd.Function whose backward is
                                             FlashRNN's own hand-written BPTT (bw.py: backward_sequence,
                                             lstm_pointwise_bw), in PyTorch ops
    flashrnn/flashrnn/alternating/, fused/   backends "cuda", "cuda_fused": CUDA kernels compiled at first use
    flashrnn/flashrnn/triton_fused/          backend "triton_fused": Triton kernels

What FlashRNN computes and what this adapter papers over (`lstm_bench.adapters.layout`):

    input projection   FlashRNN takes Wx, the gates' input part, already computed: Wx = x @ W_ih^T here, in
                       torch (so d_x and d_W_ih come from autograd on that product, the rest from FlashRNN)
    gate order         i, f, z, o: nn.LSTM's i, f, g, o with g called z (Layout("ifzo"))
    heads              NH heads of size DH = H / NH, the recurrent matrix block-diagonal R (4, NH, DH, DH):
                       nn.LSTM's full W_hh (4H, H) is NH = 1, R = W_hh.reshape(4, 1, H, H) (R[g, 0, d, p] =
                       W_hh[g H + d, p]); more heads would drop W_hh's off-diagonal blocks
    bias               one, b = b_ih + b_hh, shape (4, NH, DH)
    states             (h, c) stacked as FlashRNN's S dim, (S=2, B, T=1, NH, DH); it returns every step's h and c
    layers, directions one layer, one direction: stacked and reversed by `stack_layers`
    lengths            none: it runs all T steps of every sequence; padded outputs are zeroed (`mask_padded`)
                       and h_n, c_n taken at each sequence's own last step (`at_own_last_step`)
    batch_first        its own input is batch-major; nn.LSTM's layout is converted by `time_major`
    projection         none: its recurrence feeds back the full h (proj_size cases skip)
    dtype              its `dtype` argument names the autocast dtype of its CUDA entry points (float32, float16,
                       bfloat16); on CPU no autocast runs and the loop computes in the inputs' dtype, float64
                       included

The CPU kernels are `flashrnn` (backend "vanilla") and `flashrnn_fwbw` ("vanilla_fwbw"). `flashrnn_cuda`,
`flashrnn_cuda_fused` and `flashrnn_triton` declare devices=("cuda",) and dtypes FlashRNN's CUDA kernels
are built for; they have not run under the suite (docs/adapters.md).
"""
from __future__ import annotations

import torch
from flashrnn import flashrnn as flashrnn_run  # the optional extra: this module loads only where it is installed

from ..core.support import dtype_name
from .autodiff import Forward, autograd_kernel
from .layout import LayerFn, LayerWeights, Layout, at_own_last_step, layered_forward

FLASHRNN = Layout("ifzo", "out_in", "one")
FEATURES = ("layers", "bidirectional", "batch_first", "lengths")
# The dtypes FlashRNN's `dtype` argument names (flashrnn.py: DTYPES, vanilla_fwbw/fwbw.py: lstm_pt_registry).
KERNEL_DTYPES = ("float32", "float16", "bfloat16")


def flashrnn_layer(backend: str, num_heads: int = 1) -> LayerFn:
    """One layer, one direction by FlashRNN's `backend` (layout.LayerFn): seq (T, B, I), h0 and c0 (B, H) ->
    (hs (T, B, H), h_n (B, H), c_n (B, H)). `num_heads` other than 1 is wrong for nn.LSTM (module docstring):
    the tests' broken variant."""
    def layer(seq: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor, w: LayerWeights,
              lengths: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        T, B, _ = seq.shape
        H, NH = c0.shape[-1], num_heads
        DH = H // NH
        Wx = (seq @ w.w_ih.t()).reshape(T, B, 4, NH, DH).transpose(0, 1)  # (B, T, G, NH, DH): "BTGHD"
        # "GHDP": R[g, n, d, p] is head n's weight from h[n DH + p] to gate g's [n DH + d], the diagonal blocks.
        R = torch.stack([w.w_hh.reshape(4, H, H)[:, n * DH:(n + 1) * DH, n * DH:(n + 1) * DH] for n in range(NH)], 1)
        b = w.bias.reshape(4, NH, DH)  # "GHD"
        states = torch.stack((h0, c0)).reshape(2, B, 1, NH, DH)  # "SBTHD", T = 1
        dtype = dtype_name(seq.dtype) if dtype_name(seq.dtype) in KERNEL_DTYPES else "float32"  # float64: CPU, no cast
        all_states, _ = flashrnn_run(Wx, R, b, states=states, function="lstm", backend=backend, dtype=dtype)
        hs, cs = all_states.reshape(2, B, T, H).transpose(1, 2)  # (S=2, B, T, NH, DH) -> h, c each (T, B, H)
        return hs, at_own_last_step(hs, lengths), at_own_last_step(cs, lengths)
    return layer


def flashrnn_forward(backend: str, layout: Layout = FLASHRNN, num_heads: int = 1) -> Forward:
    """The forward (x, h0, c0, weights, case) -> (output, h_n, c_n) of FlashRNN's `backend` in nn.LSTM's
    configuration (autodiff.Forward)."""
    forward = layered_forward(flashrnn_layer(backend, num_heads), layout)
    forward.__doc__ = __doc__
    return forward


flashrnn = autograd_kernel(flashrnn_forward("vanilla"), name="flashrnn", backend="flashrnn vanilla",
                           features=FEATURES, devices=("cpu",))
flashrnn_fwbw = autograd_kernel(flashrnn_forward("vanilla_fwbw"), name="flashrnn_fwbw",
                                backend="flashrnn vanilla_fwbw", features=FEATURES, devices=("cpu",))
flashrnn_cuda = autograd_kernel(flashrnn_forward("cuda"), name="flashrnn_cuda", backend="flashrnn cuda",
                                features=FEATURES, devices=("cuda",), dtypes=KERNEL_DTYPES)
flashrnn_cuda_fused = autograd_kernel(flashrnn_forward("cuda_fused"), name="flashrnn_cuda_fused",
                                      backend="flashrnn cuda_fused", features=FEATURES, devices=("cuda",),
                                      dtypes=KERNEL_DTYPES)
flashrnn_triton = autograd_kernel(flashrnn_forward("triton_fused"), name="flashrnn_triton",
                                  backend="flashrnn triton_fused", features=FEATURES, devices=("cuda",),
                                  dtypes=KERNEL_DTYPES)

__all__ = ["flashrnn", "flashrnn_fwbw", "flashrnn_cuda", "flashrnn_cuda_fused", "flashrnn_triton", "flashrnn_layer",
           "flashrnn_forward", "FLASHRNN"]
