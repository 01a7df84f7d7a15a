"""Shared by the adapters of other frameworks' LSTMs (JAX, Flax, Keras): nn.LSTM's whole forward
from a library's one-layer, one-direction function, with shapes padded to buckets for the
libraries that compile per shape. Torch only: no framework is imported here.

    forward = bucketed_forward(op, layout)      op: a bridged library layer (jax_op, tf_op) that holds its state
                                                where the step mask is False; layers, directions and lengths
                                                by `layout.stack_layers`
    kernel = foreign_kernel(forward, "name", "library 1.2", features=(...), ...)
"""
from __future__ import annotations

from typing import Callable

import torch

from .autodiff import autograd_kernel
from .layout import LayerFn, LayerWeights, Layout, layered_forward, step_mask

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


# op(seq (T', B', F), mask (T', B', 1) bool, h0 (B', H_out), c0 (B', H), w_ih, w_hh, bias[, w_hr]) -> (hs (T', B', H_out),
# h_n, c_n): one layer and direction in a library, bridged to a torch op (jax_op, tf_op), holding its state
# where the mask is False, so that its final state is each sequence's own last one.
MaskedOp = Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def masked_layer(op: MaskedOp, bucketed: bool = True) -> LayerFn:
    """`layout.LayerFn` of a masked `op`: the step mask made from the lengths; when `bucketed` (a library
    that compiles per shape, its layout "in_out" with one bias), T, B, the input size, H and P padded up to
    `bucket`s (padded rows have length 0, padded steps are masked) and the results sliced back."""
    size = (lambda n, least=LEAST: bucket(n, least)) if bucketed else (lambda n, least=1: n)  # noqa: E731

    def layer(seq, h0, c0, w: LayerWeights, lengths):
        T, B, F = seq.shape
        H, H_out = c0.shape[-1], h0.shape[-1]
        P = H_out if w.w_hr is not None else 0
        Tp, Bp = size(T, 1), size(B)
        steps = pad(lengths if lengths is not None else torch.full((B,), T, dtype=torch.int64), 0, Bp)
        if bucketed:
            w = pad_weights(w, size(F), size(H), P and size(P))
        hs, h_n, c_n = op(pad(pad(pad(seq, 0, Tp), 1, Bp), 2, size(F)), step_mask(steps, Tp),
                          pad(pad(h0, 0, Bp), 1, size(H_out)), pad(pad(c0, 0, Bp), 1, size(H)),
                          w.w_ih, w.w_hh, w.bias, *(() if w.w_hr is None else (w.w_hr,)))
        return hs[:T, :B, :H_out], h_n[:B, :H_out], c_n[:B, :H]
    layer.__wrapped__ = op  # the kernel's source (registry.source_of) is the op's file
    return layer


def bucketed_forward(op: MaskedOp, layout: Layout = LAYOUT, bucketed: bool = True):
    """nn.LSTM's forward (x, h0, c0, weights, case) -> (output, h_n, c_n) from a library's masked one-layer,
    one-direction `op`: `layout.stack_layers` over `masked_layer(op, bucketed)`."""
    if bucketed and (layout.weights, layout.bias) != ("in_out", "one"):
        raise ValueError(f"bucketed_forward pads an 'in_out' layout with one bias, got {layout}")
    return layered_forward(masked_layer(op, bucketed), layout)


def foreign_kernel(forward, name: str, backend: str, **declared):
    """`autograd_kernel(forward, ...)` without a `traceable`: the PT2 gates compile a torch forward with
    torch.compile, and this one's work is another framework's compiled code, opaque to it (they
    skip, naming why, rather than fail in Dynamo on the bridge)."""
    kernel = autograd_kernel(forward, name=name, backend=backend, **declared)
    kernel.traceable = None
    return kernel


__all__ = ["bucketed_forward", "masked_layer", "foreign_kernel", "bucket", "pad", "pad_gates", "pad_weights", "LEAST",
           "MaskedOp", "LAYOUT"]
