"""Layers, directions, layouts and variable lengths around a one-layer, one-direction kernel.

The manual implementations (`reference`, `vectorised`) each compute one layer in one
direction by hand; this module composes them into nn.LSTM's whole configuration, by hand
too (no autograd), the same way for both (see `lstm_bench.core.contract` for the equations):

    x (T, B, I)            time-major (a batch_first case is transposed on the way in and out)
    mask (T, B)            step t of sequence b is real iff t < L_b (all real without lengths)
    reverse direction      each sequence reversed within its own length, x'[t, b] = x[L_b-1-t, b]
                           for t < L_b, so that it starts at its own last step; its outputs are
                           re-reversed the same way (the permutation is its own inverse)
    layer l > 0            reads [r_t forward, r_t reverse] of layer l - 1, zero at padded steps
    output, h_n, c_n       the last layer's r_t (zero at padded steps); each layer's final state,
                           which the kernel keeps frozen after a sequence's last step

Backward, layers in reverse order: the last layer's d_output (zero at padded steps, where
it is ignored) goes to each direction, re-reversed for the reverse one; each layer's dx,
summed over its two directions, is the d_output of the layer below.

A kernel is two functions on raw tensors:

    forward(x (T,B,In), h0 (B,H_out), c0 (B,H), w: LayerWeights, mask (T,B) | None) -> cache
        cache.r (T+1, B, H_out) holds r_0..r_T and cache.c (T+1, B, H) c_0..c_T, frozen
        after each sequence's last step
    backward(cache, d_r (T,B,H_out), d_h_n (B,H_out), d_c_n (B,H), *, state_grads) -> LayerGrads
        d_r: dL/dr_t from above (the output or the next layer), d_h_n, d_c_n: dL/d(final state);
        with state_grads=True the grads also hold the total dL/dr_t and dL/dc_t of every step
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from ..core.contract import Case, LSTMConfig, Result

# Low-precision cases keep their weight-gradient sums in float32, as the vendors' kernels do
# (oneDNN and cuDNN): a sum of T per-step terms rounded to bfloat16 at every step loses
# about T times bfloat16's precision (lstm_bench.conformance.policy, low precision).
ACCUMULATE = {torch.bfloat16: torch.float32, torch.float16: torch.float32}


@dataclass
class LayerWeights:
    """One layer and direction's parameters: weight_ih (4H, In), weight_hh (4H, H_out),
    bias_ih and bias_hh (4H,), weight_hr (P, H) or None."""

    weight_ih: torch.Tensor
    weight_hh: torch.Tensor
    bias_ih: torch.Tensor
    bias_hh: torch.Tensor
    weight_hr: torch.Tensor | None = None

    @classmethod
    def of(cls, case: Case, layer: int, direction: int) -> "LayerWeights":
        n = case.config.names(layer, direction)
        w = case.weights
        return cls(w[n.weight_ih], w[n.weight_hh], w[n.bias_ih], w[n.bias_hh],
                   None if n.weight_hr is None else w[n.weight_hr])


@dataclass
class LayerGrads:
    """dL/d(x, h0, c0) of one layer and direction, and of its weights by role (weight_ih, ...);
    with state_grads, the total dL/dr_t (`d_h`) and dL/dc_t (`d_c`) of t = 1..T, (T, B, ·)."""

    x: torch.Tensor
    h0: torch.Tensor
    c0: torch.Tensor
    weights: dict[str, torch.Tensor]
    d_h: torch.Tensor | None = None
    d_c: torch.Tensor | None = None


Forward = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, LayerWeights, "torch.Tensor | None"], Any]
Backward = Callable[..., LayerGrads]


def step_mask(case: Case) -> torch.Tensor | None:
    """(T, B) bool on the case's device: True where step t of sequence b is real; None without lengths."""
    if case.lengths is None:
        return None
    T = case.sizes[0]
    return (torch.arange(T)[:, None] < case.lengths[None, :]).to(case.device)


def reversal(case: Case) -> torch.Tensor:
    """(T, B) indices into the time axis: each sequence reversed within its own length."""
    T, B = case.sizes[:2]
    t = torch.arange(T)[:, None].expand(T, B)
    if case.lengths is None:
        return (T - 1 - t).to(case.device)
    L = case.lengths[None, :]
    return torch.where(t < L, L - 1 - t, t).to(case.device)


def _in_time(seq: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """seq (T, B, F) with seq[index[t, b], b] at [t, b]."""
    return torch.gather(seq, 0, index[:, :, None].expand(-1, -1, seq.shape[2]))


@dataclass
class StackCache:
    """What the forward of the whole stack keeps for the backward, and its outputs."""

    layers: dict[tuple[int, int], Any]  # (layer, direction) -> the kernel's cache
    mask: torch.Tensor | None
    reverse: torch.Tensor | None  # reversal(case), for bidirectional cases
    output: torch.Tensor
    h_n: torch.Tensor
    c_n: torch.Tensor


def forward(case: Case, layer_forward: Forward) -> StackCache:
    """The forward of `case`, each layer and direction computed by `layer_forward`."""
    c: LSTMConfig = case.config
    x = case.x.transpose(0, 1) if c.batch_first else case.x
    mask = step_mask(case)
    reverse = reversal(case) if c.bidirectional else None
    caches, h_n, c_n = {}, [], []
    for layer in range(c.num_layers):
        outs = []
        for d in range(c.directions):
            k = layer * c.directions + d
            seq = x if d == 0 else _in_time(x, reverse)
            cache = layer_forward(seq, case.h0[k], case.c0[k], LayerWeights.of(case, layer, d), mask)
            caches[(layer, d)] = cache
            r = cache.r[1:] if d == 0 else _in_time(cache.r[1:], reverse)
            outs.append(r if mask is None else r * mask[:, :, None])
            h_n.append(cache.r[-1])
            c_n.append(cache.c[-1])
        x = torch.cat(outs, dim=2) if len(outs) > 1 else outs[0]
    output = x.transpose(0, 1) if c.batch_first else x
    if len(h_n) == 1:  # one layer, one direction: the final states are views, not copies
        return StackCache(caches, mask, reverse, output, h_n[0][None], c_n[0][None])
    return StackCache(caches, mask, reverse, output, torch.stack(h_n), torch.stack(c_n))


def backward(case: Case, cache: StackCache, layer_backward: Backward, backend: str, *,
             state_grads: bool = False) -> Result:
    """The Result of `case`: every gradient of L (`case.config.grad_names()`), each layer and
    direction by `layer_backward`. `state_grads=True` (a single-layer, unidirectional case
    without projection) also fills `Result.d_h`, `Result.d_c` (T, B, H)."""
    c: LSTMConfig = case.config
    if state_grads and c.label:
        raise ValueError(f"state_grads needs a single-layer, unidirectional, time-major LSTM without projection; "
                         f"got {c}")
    d_out = case.d_output.transpose(0, 1) if c.batch_first else case.d_output
    if cache.mask is not None:
        d_out = d_out * cache.mask[:, :, None]  # padded positions of the output are constant zeros
    grads: dict[str, torch.Tensor] = {}
    d_h0, d_c0 = [None] * (c.num_layers * c.directions), [None] * (c.num_layers * c.directions)
    for layer in reversed(range(c.num_layers)):
        d_in = None
        for d, d_r in enumerate(d_out.split(c.h_out, dim=2)):
            k = layer * c.directions + d
            if d == 1:
                d_r = _in_time(d_r, cache.reverse)
            g = layer_backward(cache.layers[(layer, d)], d_r, case.d_h_n[k], case.d_c_n[k], state_grads=state_grads)
            dx = g.x if d == 0 else _in_time(g.x, cache.reverse)
            d_in = dx if d_in is None else d_in + dx
            d_h0[k], d_c0[k] = g.h0, g.c0
            names = c.names(layer, d)
            for role, value in g.weights.items():
                grads[getattr(names, role)] = value
        if cache.mask is not None:
            d_in = d_in * cache.mask[:, :, None]
        d_out = d_in
    grads["x"] = d_out.transpose(0, 1) if c.batch_first else d_out
    grads["h0"], grads["c0"] = torch.stack(d_h0), torch.stack(d_c0)
    return Result(cache.output, cache.h_n, cache.c_n, {name: grads[name] for name in c.grad_names()},
                  backend=backend, d_h=g.d_h, d_c=g.d_c)
