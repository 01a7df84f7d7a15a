"""An LSTM with BPTT in numpy, written apart from lstm-bench's own implementations: another
gate order (i, f, o, g), one weight matrix W (4H, I+H) acting on [x_t, h_{t-1}], and the
backward derived on its own (the "vanilla LSTM" of Greff et al. 2017, without peepholes).
A small adapter moves nn.LSTM's layout (i, f, g, o; separate weight_ih, weight_hh, two
biases; names weight_ih_l0, ...) into this one and the gradients back.

It handles one layer, one direction, no projection, in both layouts and with variable
lengths (a sequence's state stays after its last step; its padded outputs are zero), and
declares exactly that. It is the proof that a correct kernel nobody here wrote passes the
whole conformance suite:
`pytest --pyargs lstm_bench.conformance --lstm-impl tests/kernels/numpy_lstm.py:numpy_lstm`.
"""
from __future__ import annotations

import numpy as np
import torch

from lstm_bench import Result

# Rows of nn.LSTM's (i, f, g, o) blocks in this kernel's (i, f, o, g) order, and back.
TO_IFOG = (0, 1, 3, 2)
FROM_IFOG = (0, 1, 3, 2)  # the permutation is its own inverse


def _blocks(a: np.ndarray, order: tuple[int, ...]) -> np.ndarray:
    H = a.shape[0] // 4
    return np.concatenate([a[k * H:(k + 1) * H] for k in order])


def to_own_layout(w_ih, w_hh, b_ih, b_hh) -> tuple[np.ndarray, np.ndarray]:
    """W (4H, I+H) in gate order i, f, o, g, and b (4H,) = b_ih + b_hh in that order."""
    return _blocks(np.concatenate([w_ih, w_hh], axis=1), TO_IFOG), _blocks(b_ih + b_hh, TO_IFOG)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def numpy_lstm(case) -> Result:
    dtype = {torch.float32: np.float32, torch.float64: np.float64}[case.dtype]
    a = {k: v.detach().cpu().numpy().astype(dtype) for k, v in case.tensors().items()}
    batch_first = case.config.batch_first
    x = a["x"].transpose(1, 0, 2) if batch_first else a["x"]  # (T, B, I) from here on
    d_output = a["d_output"].transpose(1, 0, 2) if batch_first else a["d_output"]
    T, B, I = x.shape
    H = a["h0"].shape[2]
    lengths = np.full(B, T) if case.lengths is None else case.lengths.numpy()
    alive = (np.arange(T)[:, None] < lengths[None, :])[:, :, None]  # (T, B, 1): step t of sequence b is real
    W, b = to_own_layout(a["weight_ih_l0"], a["weight_hh_l0"], a["bias_ih_l0"], a["bias_hh_l0"])

    h, c = a["h0"][0], a["c0"][0]
    steps = []
    outputs = np.zeros((T, B, H), dtype)
    for t in range(T):
        xh = np.concatenate([x[t], h], axis=1)  # (B, I+H)
        z = xh @ W.T + b
        ifo, g = sigmoid(z[:, :3 * H]), np.tanh(z[:, 3 * H:])
        i, f, o = ifo[:, :H], ifo[:, H:2 * H], ifo[:, 2 * H:]
        c_new = f * c + i * g
        tanh_c = np.tanh(c_new)
        h_new = o * tanh_c
        steps.append((xh, ifo, g, c, tanh_c))
        h, c = np.where(alive[t], h_new, h), np.where(alive[t], c_new, c)  # ended sequences keep their state
        outputs[t] = np.where(alive[t], h_new, 0)

    dW, db = np.zeros_like(W), np.zeros_like(b)
    dx = np.zeros_like(x)
    dh_next, dc_next = a["d_h_n"][0], a["d_c_n"][0]
    for t in reversed(range(T)):
        xh, ifo, g, c_prev, tanh_c = steps[t]
        i, f, o = ifo[:, :H], ifo[:, H:2 * H], ifo[:, 2 * H:]
        dh = np.where(alive[t], d_output[t], 0) + dh_next
        dc = dc_next + dh * o * (1 - tanh_c ** 2)
        d_ifo = np.concatenate([dc * g, dc * c_prev, dh * tanh_c], axis=1) * ifo * (1 - ifo)
        dz = np.concatenate([d_ifo, dc * i * (1 - g ** 2)], axis=1) * alive[t]  # (B, 4H), i, f, o, g order
        dW += dz.T @ xh
        db += dz.sum(axis=0)
        dxh = dz @ W
        dx[t] = dxh[:, :I]
        dh_next = np.where(alive[t], dxh[:, I:], dh)  # past a sequence's end the gradient passes through
        dc_next = np.where(alive[t], dc * f, dc_next)

    dW, db = _blocks(dW, FROM_IFOG), _blocks(db, FROM_IFOG)
    if batch_first:
        outputs, dx = outputs.transpose(1, 0, 2), dx.transpose(1, 0, 2)
    grads = {"x": dx, "h0": dh_next[None], "c0": dc_next[None], "weight_ih_l0": dW[:, :I],
             "weight_hh_l0": dW[:, I:], "bias_ih_l0": db, "bias_hh_l0": db.copy()}
    tensor = lambda arr: torch.from_numpy(np.ascontiguousarray(arr))  # noqa: E731 (keeps the dtype)
    return Result(tensor(outputs), tensor(h[None]), tensor(c[None]), {k: tensor(v) for k, v in grads.items()},
                  backend="numpy")


numpy_lstm.devices = ("cpu",)
numpy_lstm.dtypes = ("float32", "float64")
numpy_lstm.features = ("batch_first", "lengths")
