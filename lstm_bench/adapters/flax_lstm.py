"""Flax: `flax.linen.OptimizedLSTMCell` run by `flax.linen.RNN`, as a kernel (`flax_lstm`).

    lstm-bench check --impl flax_lstm            pip install "lstm-bench[jax]"

Tested with Flax 0.12.8 on JAX 0.10.2, CPU. The cell's parameters (flax/linen/recurrent.py,
`OptimizedLSTMCell.__call__`, 0.12.8): for each gate k of i, f, g, o a Dense on the input named
`i{k}` with kernel (I, H) and no bias, and one on h named `h{k}` with kernel (H, H) and a bias
(H,), summed as `gates_k = x @ i{k} + h @ h{k} + b_h{k}`, `c' = f * c + i * g`, `h' = o * tanh(c')`
with sigmoid and tanh: nn.LSTM's cell with nn.LSTM's gate order, kernels (I, 4H) split by gate,
one bias b = b_ih + b_hh (`Layout("ifgo", "in_out", "one")`, split into the eight Dense here).
Its gradients are `jax.vjp`'s (`lstm_bench.adapters.jax_bridge`).

What this adapter papers over:
- the carry is (c, h), not nn.LSTM's (h, c); batch_first cases are transposed (`layout.time_major`);
- no projection: the cell has none, so `projection` is not declared;
- layers and directions: the cell is scanned (`jax.lax.scan`) once per layer and direction,
  stacked here; the reverse direction runs on each sequence's first L_b steps reversed
  (`layout.reverse_within_lengths`);
- lengths: the scan holds (c, h) at steps t >= L_b, so the final carry is each sequence's
  state at its own last step; padded outputs are zeroed (`layout.mask_padded`).

Why not `flax.linen.RNN(cell, seq_lengths=..., return_carry=True)`, Flax's own lengths: with
Flax 0.12.8 / JAX 0.10.2 its `jax.vjp` is wrong when the outputs and both parts of the carry
all receive a gradient (as they do under the suite's L): d_x off by 0.32 (float64, T = B = I = 4,
H = 6, seq_lengths all 4; `jax.grad` of any one or two of the three outputs agrees with this
scan to 1e-16). The suite failed every gradient of such a kernel (err/bound ~1e13).

T and B are padded up to powers of two (`foreign.bucket`) so that cases share compiled code:
padded steps lie beyond every sequence's length, padded rows are zeros.
"""
from __future__ import annotations

import flax  # optional dependency (`lstm-bench[jax]`): imported by this module only, loaded by its short name
import flax.linen as nn
import jax
import jax.numpy as jnp

from .foreign import bucketed_forward, foreign_kernel
from .jax_bridge import jax_op
from .jax_lstm import FAST_COMPILE
from .layout import Layout

VERSION = f"flax {flax.__version__} (jax {jax.__version__})"
# Flax's layout: gate order i, f, g, o (the Dense names ii, if, ig, io), kernels (in, H), one bias on the h side.
LAYOUT = Layout("ifgo", "in_out", "one")
FLAX_GATES = ("i", "f", "g", "o")


def cell_params(w_ih, w_hh, bias) -> dict:
    """OptimizedLSTMCell's parameters from kernels (I, 4H), (H, 4H) and the bias (4H,) in gate order i, f, g, o."""
    H = w_hh.shape[0]
    block = lambda t, k: t[..., k * H:(k + 1) * H]  # noqa: E731
    params = {}
    for k, gate in enumerate(FLAX_GATES):
        params[f"i{gate}"] = {"kernel": block(w_ih, k)}
        params[f"h{gate}"] = {"kernel": block(w_hh, k), "bias": block(bias, k)}
    return params


def cell_layer(x, mask, h0, c0, w_ih, w_hh, bias):
    """One layer, one direction: x (T, B, I), mask (T, B, 1) bool (False: hold the state), h0 (B, H), c0 (B, H),
    w_ih (I, 4H), w_hh (H, 4H), bias (4H,) -> hs (T, B, H), h_n (B, H), c_n (B, H): Flax's cell applied at
    every step by `jax.lax.scan`, the state held where the mask is False."""
    cell = nn.OptimizedLSTMCell(h0.shape[-1])
    params = {"params": cell_params(w_ih, w_hh, bias)}

    def step(carry, inputs):
        c, h = carry  # Flax's carry order
        x_t, m = inputs
        (c_new, h_new), _ = cell.apply(params, (c, h), x_t)
        h, c = jnp.where(m, h_new, h), jnp.where(m, c_new, c)
        return (c, h), h

    (c_n, h_n), hs = jax.lax.scan(step, (c0, h0), (x, mask))
    return hs, h_n, c_n


flax_layer = jax_op(cell_layer, name="flax_cell_layer", compiler_options=FAST_COMPILE)


DECLARED = dict(devices=("cpu",), dtypes=("float32", "float64"), deterministic=True,
                features=("layers", "bidirectional", "batch_first", "lengths"))

flax_lstm = foreign_kernel(bucketed_forward(flax_layer, LAYOUT), "flax_lstm", VERSION, **DECLARED)
flax_lstm.__doc__ = __doc__

__all__ = ["flax_lstm", "cell_params", "cell_layer", "LAYOUT", "VERSION"]
