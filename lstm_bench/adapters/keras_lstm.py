"""Keras 3: `keras.layers.LSTM` on the TensorFlow backend, as a kernel (`keras_lstm`).

    lstm-bench check --impl keras_lstm           pip install "lstm-bench[tf]"

Tested with Keras 3.15.1 on TensorFlow (tensorflow-cpu) 2.21.0, CPU, eager. The layer's
parameters (keras/src/layers/rnn/lstm.py, `LSTMCell.build` and `_compute_carry_and_output_fused`,
3.15.1): kernel (I, 4H), recurrent_kernel (H, 4H), one bias (4H,), gates z0..z3 = i, f, c, o
with c' = f * c + i * tanh(z2), h' = o * tanh(c') and recurrent_activation sigmoid (Keras 3's
default; Keras 2 once used hard_sigmoid): nn.LSTM's cell, gate order i, f, g, o, kernels (in, 4H),
one bias b = b_ih + b_hh (`Layout("ifgo", "in_out", "one")`). The layer runs by
`layer.stateless_call` on the converted weights, so `tf.GradientTape` sees them as inputs
(`lstm_bench.adapters.tf_bridge`).

What this adapter papers over:
- batch-major: Keras takes (B, T, I); time-major cases are transposed;
- no projection (Keras has none): `projection` is not declared;
- layers and directions: one layer call per layer and direction, stacked here; the reverse
  direction runs forwards on each sequence's first L_b steps reversed
  (`layout.reverse_within_lengths`): `go_backwards` reverses the padded sequence as a whole,
  which is nn.LSTM's reverse direction only without lengths;
- lengths: Keras' mask (B, T) holds the state at masked steps, so the final state is each
  sequence's at its own last step; the outputs there are not zero (`zero_output_for_mask`
  is False), so they are zeroed here (`layout.mask_padded`);
- float64: the layer is built with dtype float64 (else Keras casts its inputs to float32).

Eager TensorFlow compiles nothing per shape, so cases are not padded to buckets.
"""
from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # this adapter is Keras on TensorFlow; a user's choice wins

from .tf_bridge import tf, tf_op  # noqa: E402  first: it loads TensorFlow after Triton (its docstring)

# isort: split
import keras  # noqa: E402  optional dependency (`lstm-bench[tf]`): imported by this module only

from .foreign import bucketed_forward, foreign_kernel  # noqa: E402
from .layout import Layout  # noqa: E402

if keras.backend.backend() != "tensorflow":
    raise ImportError(f"keras_lstm runs Keras on TensorFlow; KERAS_BACKEND is {keras.backend.backend()!r} here")
VERSION = f"keras {keras.__version__} (tensorflow {tf.__version__})"
# Keras' layout: gate order i, f, c, o (c is nn.LSTM's g), kernel (I, 4H), recurrent_kernel (H, 4H), one bias.
LAYOUT = Layout("ifco", "in_out", "one")
_layers: dict[tuple[int, int, str], keras.layers.LSTM] = {}


def keras_layer(I: int, H: int, dtype: str) -> keras.layers.LSTM:
    """A built `keras.layers.LSTM(H)` for inputs of size I in `dtype`, returning every step's h and the final (h, c)."""
    key = (I, H, dtype)
    if key not in _layers:
        layer = keras.layers.LSTM(H, return_sequences=True, return_state=True, dtype=dtype)
        layer.build((None, None, I))
        _layers[key] = layer
    return _layers[key]


def _lstm(x, mask, h0, c0, kernel, recurrent_kernel, bias):
    """x (T, B, I), mask (T, B, 1) bool, h0, c0 (B, H), kernel (I, 4H), recurrent_kernel (H, 4H), bias (4H,)
    -> hs (T, B, H), h_n, c_n (B, H), by Keras' layer on these weights."""
    layer = keras_layer(x.shape[-1], h0.shape[-1], x.dtype.name)
    if [v.path.split("/")[-1] for v in layer.trainable_variables] != ["kernel", "recurrent_kernel", "bias"]:
        raise RuntimeError(f"keras.layers.LSTM's variables are {[v.path for v in layer.trainable_variables]}, "
                           "not kernel, recurrent_kernel, bias: this adapter was written for Keras 3.15")
    (hs, h_n, c_n), _ = layer.stateless_call([kernel, recurrent_kernel, bias],
                                             [v.value for v in layer.non_trainable_variables], tf.transpose(x, (1, 0, 2)),
                                             initial_state=[h0, c0], mask=tf.transpose(mask[..., 0]))
    return tf.transpose(hs, (1, 0, 2)), h_n, c_n


# One layer and direction through the bridge (the reverse direction on each sequence's steps reversed,
# by layout.stack_layers).
keras_layer_fn = tf_op(_lstm, name="keras_lstm")


DECLARED = dict(devices=("cpu",), dtypes=("float32", "float64"), deterministic=True,
                features=("layers", "bidirectional", "batch_first", "lengths"))

keras_lstm = foreign_kernel(bucketed_forward(keras_layer_fn, LAYOUT, bucketed=False), "keras_lstm", VERSION,
                            **DECLARED)
keras_lstm.__doc__ = __doc__

__all__ = ["keras_lstm", "keras_layer", "LAYOUT", "VERSION"]
