"""Shared by the adapters of other frameworks' LSTMs (JAX, Flax, Keras): nn.LSTM's whole forward
from a library's one-layer, one-direction function, with shapes padded to buckets for the
libraries that compile per shape. Torch only: no framework is imported here.

    forward = bucketed_forward(scan_layer_op(op), layout)     op: a bridged library layer (jax_op, tf_op)
    kernel = foreign_kernel(forward, "name", "library 1.2", features=(...), ...)
"""
from __future__ import annotations

from typing import Callable

import torch

from ..core.contract import Case
from .autodiff import autograd_kernel
from .layout import LayerWeights, Layout, mask_padded, reverse_within_lengths, state_index, step_mask, time_major

# JAX's, Flax's and Keras' layout: kernels (I, 4H) as x @ W takes them, one bias (gate order: each its own).
LAYOUT = Layout("ifgo", "in_out", "one")


# The smallest bucket of B, I, H and P: sizes 1..8 share one compiled scan (T's buckets start at 1).
LEAST = 8


def bucket(n: int, least: int = 1) -> int:
    """The next power of two >= max(n, least): sizes are padded up to it so that cases share a compiled scan."""
    return 1 << (max(n, least) - 1).bit_length()


def pad(t: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    """`t` with zeros appended along `dim` up to `size` (differentiable: the gradient is sliced back)."""
    extra = size - t.shape[dim]
    if extra <= 0:
        return t
    shape = list(t.shape)
    shape[dim] = extra
    return torch.cat([t, t.new_zeros(shape)], dim)


def pad_gates(t: torch.Tensor, H: int, size: int) -> torch.Tensor:
    """`t` (..., 4H), four gate blocks of H along its last dim, with each block padded with zeros to `size`."""
    return t if size == H else pad(t.unflatten(-1, (4, H)), -1, size).flatten(-2)


def pad_weights(w: LayerWeights, F: int, H: int, P: int) -> LayerWeights:
    """One layer's weights in an "in_out", one-bias layout (w_ih (F', 4H'), w_hh (H_out', 4H'), bias (4H',),
    w_hr (H', P')) from their real sizes, padded with zeros. A padded hidden unit has zero gates
    (i = f = o = 1/2, g = 0), so its c and h stay exactly 0 and the real units compute what they did."""
    H_out = P or H
    w_ih = pad(pad_gates(w.w_ih, w.w_hh.shape[1] // 4, H), 0, F)
    w_hh = pad(pad_gates(w.w_hh, w.w_hh.shape[1] // 4, H), 0, H_out)
    w_hr = None if w.w_hr is None else pad(pad(w.w_hr, 0, H), 1, P)
    return LayerWeights(w_ih, w_hh, pad_gates(w.bias, w.w_hh.shape[1] // 4, H), None, w_hr)


# layer(seq (T', B', F), mask (T', B', 1) bool, lengths (B',) int64, h0, c0, w, reverse) -> hs (T', B', H_out), h_n, c_n,
# at shapes padded to buckets (T' >= T, B' >= B): one layer and direction in a library.
LayerFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, LayerWeights, bool],
                   tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def bucketed_forward(layer: LayerFn, layout: Layout = LAYOUT, bucketed: bool = True):
    """nn.LSTM's forward (x, h0, c0, weights, case) -> (output, h_n, c_n) from a library's one-layer,
    one-direction `layer`: layers stacked and directions concatenated here, padded outputs zeroed.
    When `bucketed` (a library that compiles per shape, its layout "in_out" with one bias), T, B,
    the input size, H and P are padded up to `bucket`s and the results sliced back."""
    def forward(x, h0, c0, weights, case: Case):
        config, lengths = case.config, case.lengths
        inputs = time_major(x, config.batch_first)  # (T, B, I)
        T, B = inputs.shape[:2]
        H, P = config.hidden_size, config.proj_size
        H_out = P or H
        size = (lambda n, least=LEAST: bucket(n, least)) if bucketed else (lambda n, least=1: n)  # noqa: E731
        if bucketed and (layout.weights, layout.bias) != ("in_out", "one"):
            raise ValueError(f"bucketed_forward pads an 'in_out' layout with one bias, got {layout}")
        Tp, Bp = size(T, 1), size(B)
        full = torch.full((B,), T, dtype=torch.int64)
        steps = pad(lengths if lengths is not None else full, 0, Bp)  # padded rows: length 0
        mask = step_mask(steps, Tp)  # (T', B', 1)
        h_n, c_n = [], []
        for layer_index in range(config.num_layers):
            outputs = []
            for d in range(config.directions):
                w = layout.layer(weights, config, layer_index, d)
                if bucketed:
                    w = pad_weights(w, size(inputs.shape[-1]), size(H), P and size(P))
                k = state_index(config, layer_index, d)
                seq = pad(pad(pad(inputs, 0, Tp), 1, Bp), 2, size(inputs.shape[-1]))
                h0_k = pad(pad(h0[k], 0, Bp), 1, size(H_out))
                c0_k = pad(pad(c0[k], 0, Bp), 1, size(H))
                hs, h, c = layer(seq, mask, steps, h0_k, c0_k, w, bool(d))
                h_n.append(h[:B, :H_out])
                c_n.append(c[:B, :H])
                outputs.append(hs[:T, :B, :H_out])
            inputs = mask_padded(torch.cat(outputs, -1), lengths)
        return time_major(inputs, config.batch_first), torch.stack(h_n), torch.stack(c_n)
    return forward


def scan_layer_op(op: Callable[..., tuple]) -> LayerFn:
    """A `LayerFn` from a bridged `op(seq, mask, h0, c0, w_ih, w_hh, bias[, w_hr]) -> (hs, h_n, c_n)` that
    holds the state where the mask is False: the reverse direction runs it on each sequence's first L_b
    steps reversed (`layout.reverse_within_lengths`) and reverses its outputs back."""
    def layer(seq, mask, lengths, h0, c0, w: LayerWeights, reverse: bool):
        if reverse:
            seq = reverse_within_lengths(seq, lengths)
        hs, h_n, c_n = op(seq, mask, h0, c0, w.w_ih, w.w_hh, w.bias, *(() if w.w_hr is None else (w.w_hr,)))
        return (reverse_within_lengths(hs, lengths) if reverse else hs), h_n, c_n
    return layer


def foreign_kernel(forward, name: str, backend: str, **declared):
    """`autograd_kernel(forward, ...)` without a `traceable`: the PT2 gates compile a torch forward with
    torch.compile, and this one's work is another framework's compiled code, opaque to it (they
    skip, naming why, rather than fail in Dynamo on the bridge)."""
    kernel = autograd_kernel(forward, name=name, backend=backend, **declared)
    kernel.traceable = None
    return kernel






__all__ = ["bucketed_forward", "scan_layer_op", "foreign_kernel", "bucket", "pad", "pad_gates", "pad_weights", "LEAST", "LayerFn", "LAYOUT"]
