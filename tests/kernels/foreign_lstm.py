"""A stand-in for another library's LSTM, and its adapter written with the layout helper.

`library_layer` is laid out as nothing in torch is: batch-major, gate order i, o, f, c (ONNX's),
weights (in, 4H) as `x @ W` takes them, one fused bias, one layer and one direction, no lengths;
it returns every step's h and c. `foreign_lstm` gives it nn.LSTM's whole configuration with
`lstm_bench.adapters.layout.layered_forward` (stack_layers: layers, both directions, projection, batch_first, lengths) and its
gradients by autograd (`autograd_kernel`): the README's promise that an adapter is a few lines.
`foreign_lstm_ifog` converts to the wrong gate order (i, f, o, g): the suite must catch it.
"""
from __future__ import annotations

import torch

from lstm_bench.adapters.autodiff import autograd_kernel
from lstm_bench.adapters.layout import Layout, at_own_last_step, layered_forward

LIBRARY = Layout("iofc", "in_out", "one")


def library_layer(x, h0, c0, w_ih, w_hh, bias, w_hr=None):
    """x (B, T, I), h0 (B, P or H), c0 (B, H), w_ih (I, 4H), w_hh (P or H, 4H), bias (4H,), gates i, o, f, c;
    w_hr (H, P) or None -> hs (B, T, P or H), cs (B, T, H)."""
    H = c0.shape[-1]
    h, c, hs, cs = h0, c0, [], []
    for t in range(x.shape[1]):
        gates = x[:, t] @ w_ih + h @ w_hh + bias
        i, o, f = (torch.sigmoid(gates[:, k * H:(k + 1) * H]) for k in range(3))
        c = f * c + i * torch.tanh(gates[:, 3 * H:])
        h = o * torch.tanh(c)
        if w_hr is not None:
            h = h @ w_hr
        hs.append(h)
        cs.append(c)
    return torch.stack(hs, 1), torch.stack(cs, 1)


def one_layer(seq, h0, c0, w, lengths):
    """The library as `stack_layers` takes one layer: time-major in and out, h_n and c_n at the own last step."""
    hs, cs = library_layer(seq.transpose(0, 1), h0, c0, w.w_ih, w.w_hh, w.bias, w.w_hr)
    hs, cs = hs.transpose(0, 1), cs.transpose(0, 1)  # (T, B, .)
    return hs, at_own_last_step(hs, lengths), at_own_last_step(cs, lengths)


foreign_lstm = autograd_kernel(layered_forward(one_layer, LIBRARY), name="foreign_lstm", fullgraph=True)
foreign_lstm_ifog = autograd_kernel(layered_forward(one_layer, Layout("ifog", "in_out", "one")),
                                   name="foreign_lstm_ifog")
