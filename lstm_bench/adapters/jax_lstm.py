"""JAX: an LSTM written in jax.numpy over `jax.lax.scan`, as a kernel (`jax_scan`).

    lstm-bench check --impl jax_scan             pip install "lstm-bench[jax]"

Tested with JAX 0.10.2 (jaxlib 0.10.2) on the CPU. One layer and direction is one scan
(`scan_layer`), in the layout JAX code writes (Flax's, Keras'): kernel (I, 4H) and recurrent
kernel (H_out, 4H), `gates = x @ W + h @ U + b`, gate order i, f, g, o, one bias
b = b_ih + b_hh (`Layout("ifgo", "in_out", "one")`); the projection r = m @ W_hr^T is
`h @ w_hr` with w_hr (H, P). Its gradients are `jax.vjp`'s (`lstm_bench.adapters.jax_bridge`).

What this adapter papers over, so that the scan computes nn.LSTM's function:
- layout: the conversion above, by torch ops, so gradients come back by nn.LSTM's names;
- time-major scan: batch_first inputs and outputs are transposed (`layout.time_major`);
- layers and directions: run here one scan per layer and direction, h0/c0 at
  `layout.state_index`; the reverse direction scans each sequence's first L_b steps reversed
  (`layout.reverse_within_lengths`);
- lengths: the scan takes a step mask (T, B, 1) and holds h and c where t >= L_b, so the
  final carry is each sequence's state at its own last step; padded outputs are zeroed
  (`layout.mask_padded`), as nn.LSTM's unpacked output is.

Compiling: `jax.jit` compiles per shape. Run as it comes, the default suite compiles a scan for
nearly every case; here T and B are padded up to the next power of two (masked steps and zero
rows: the values at real steps and rows are unchanged), so cases share compiled scans
(`foreign.bucket`). docs/adapters.md has the suite's time before and after.
"""
from __future__ import annotations

import jax  # optional dependency (`lstm-bench[jax]`): imported by this module only, loaded by its short name
import jax.numpy as jnp

from .foreign import LAYOUT, bucketed_forward, foreign_kernel
from .jax_bridge import jax_op

VERSION = f"jax {jax.__version__}"


def scan_layer(x, mask, h0, c0, w_ih, w_hh, bias, w_hr=None):
    """One layer, one direction. x (T, B, I), mask (T, B, 1) bool (False: hold the state), h0 (B, H_out),
    c0 (B, H), w_ih (I, 4H), w_hh (H_out, 4H), bias (4H,), w_hr (H, P) or None
    -> hs (T, B, H_out), h_n (B, H_out), c_n (B, H):

        gates = x_t @ w_ih + h @ w_hh + bias;  i, f, o = sigmoid, g = tanh of its four H-blocks
        c' = f * c + i * g;  h' = (o * tanh(c')) @ w_hr;  (h, c) = (h', c') where mask_t else (h, c)
    """
    H = c0.shape[-1]
    x_gates = x @ w_ih + bias  # every step's input part at once: (T, B, 4H)

    def step(carry, inputs):
        h, c = carry
        x_gate, m = inputs
        gates = x_gate + h @ w_hh
        i, f = jax.nn.sigmoid(gates[:, :H]), jax.nn.sigmoid(gates[:, H:2 * H])
        g, o = jnp.tanh(gates[:, 2 * H:3 * H]), jax.nn.sigmoid(gates[:, 3 * H:])
        c_new = f * c + i * g
        h_new = o * jnp.tanh(c_new)
        if w_hr is not None:
            h_new = h_new @ w_hr
        h, c = jnp.where(m, h_new, h), jnp.where(m, c_new, c)
        return (h, c), h

    (h_n, c_n), hs = jax.lax.scan(step, (h0, c0), (x_gates, mask))
    return hs, h_n, c_n


# XLA's CPU backend without LLVM's optimisations: a case's scan compiles in about half the time
# (fwd 1.06 s vs 2.86 s, bwd 1.00 s vs 1.86 s, T=2 B=16 I=33 H=17, load 8 on 2 cores), and a suite's
# cases are small: compiling, not running, is its time (docs/adapters.md).
FAST_COMPILE = {"xla_backend_optimization_level": 0}

jax_scan_layer = jax_op(lambda *a: scan_layer(*a), name="scan_layer", compiler_options=FAST_COMPILE)


DECLARED = dict(devices=("cpu",), dtypes=("float32", "float64"), deterministic=True,
                features=("layers", "bidirectional", "projection", "batch_first", "lengths"))

jax_scan = foreign_kernel(bucketed_forward(jax_scan_layer), "jax_scan", VERSION, **DECLARED)
jax_scan.__doc__ = __doc__

__all__ = ["jax_scan", "scan_layer", "FAST_COMPILE", "LAYOUT", "VERSION"]
