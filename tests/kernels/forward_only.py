"""Forward-only kernels (declared `gradients = False`), as an inference engine is: a correct one
written apart from lstm-bench's implementations, and the same with one defect each.

`loop_forward` is nn.LSTM's forward written as a plain time loop (Hochreiter & Schmidhuber 1997,
with the forget gate of Gers et al. 2000; gate order i, f, g, o as nn.LSTM's weights hold them):

    z_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh,  (i, f, g, o) = (σ, σ, tanh, σ)(z_t)
    c_t = f ⊙ c_{t-1} + i ⊙ g,                    h_t = W_hr (o ⊙ tanh c_t)   (W_hr with a projection)

over every layer and direction; the reverse direction runs t = T-1 .. 0, and with lengths a
sequence's steps t >= its length leave the state alone and output zeros (what nn.LSTM gives on
a packed sequence), so the reverse direction starts at each sequence's own last step.
"""
from __future__ import annotations

import math

import torch

from lstm_bench import Result


@torch.no_grad()
def loop_forward(case, *, reverse_in_time: bool = True, reverse_from_own_end: bool = True) -> Result:
    """output (T, B, D·H_out) (batch_first: (B, T, ·)), h_n and c_n (L·D, B, ·); grads {}.

    The two flags are the defects the broken kernels below switch off."""
    cfg = case.config
    x = case.x.transpose(0, 1) if cfg.batch_first else case.x  # (T, B, I) from here on
    T, B = x.shape[:2]
    lengths = torch.full((B,), T) if case.lengths is None else case.lengths
    alive = (torch.arange(T)[:, None] < lengths[None, :]).to(x.device)[:, :, None]  # (T, B, 1)
    layer_in, h_n, c_n = x, [], []
    for layer in range(cfg.num_layers):
        outs = []
        for d in range(cfg.directions):
            n, k = cfg.names(layer, d), layer * cfg.directions + d
            w = case.weights
            h, c = case.h0[k], case.c0[k]
            out = torch.zeros(T, B, cfg.h_out, dtype=x.dtype, device=x.device)
            steps = list(range(T))
            if d == 1 and reverse_in_time:
                steps.reverse()
            for t in steps:
                real = alive[t] if (d == 0 or reverse_from_own_end) else torch.ones_like(alive[t])
                z = layer_in[t] @ w[n.weight_ih].T + w[n.bias_ih] + h @ w[n.weight_hh].T + w[n.bias_hh]
                i, f, g, o = z.chunk(4, dim=1)
                c_new = f.sigmoid() * c + i.sigmoid() * g.tanh()
                h_new = o.sigmoid() * c_new.tanh()
                if n.weight_hr is not None:
                    h_new = h_new @ w[n.weight_hr].T
                h, c = torch.where(real, h_new, h), torch.where(real, c_new, c)
                out[t] = torch.where(alive[t], h_new, 0)
            outs.append(out)
            h_n.append(h)
            c_n.append(c)
        layer_in = torch.cat(outs, dim=2)
    output = layer_in.transpose(0, 1) if cfg.batch_first else layer_in
    return Result(output.contiguous(), torch.stack(h_n), torch.stack(c_n), {}, backend="loop forward")


def forward_lstm(case) -> Result:
    """Correct, forward only, every feature."""
    return loop_forward(case)


def reverse_not_reversed(case) -> Result:
    """The reverse direction runs forward in time (t = 0 .. T-1): wrong on every bidirectional case."""
    return loop_forward(case, reverse_in_time=False)


def reverse_from_padded_end(case) -> Result:
    """The reverse direction starts at step T-1 of every sequence, padding included, instead of at its
    own last step: wrong on bidirectional cases with lengths shorter than T, and only those."""
    return loop_forward(case, reverse_from_own_end=False)


def h_n_of_padded_end(case) -> Result:
    """The last layer's h_n read at step T-1 of the output (a padded zero for a short sequence; the
    reverse direction's first step instead of its last): wrong on cases with lengths or two directions."""
    r = loop_forward(case)
    cfg = case.config
    out = r.output.transpose(0, 1) if cfg.batch_first else r.output
    last = out[-1].reshape(out.shape[1], cfg.directions, cfg.h_out).transpose(0, 1)  # (D, B, H_out)
    h_n = r.h_n.clone()
    h_n[-cfg.directions:] = last
    return Result(r.output, h_n, r.c_n, {}, backend=r.backend)


def nan_output(case) -> Result:
    """A NaN in one element of the output (an uninitialised buffer)."""
    r = loop_forward(case)
    output = r.output.clone()
    output.view(-1)[0] = math.nan
    return Result(output, r.h_n, r.c_n, {}, backend=r.backend)


def undeclared(case) -> Result:
    """Correct forward, no gradients, and no declaration: a contract error, naming the declaration."""
    return loop_forward(case)


def returns_grads(case) -> Result:
    """Declared forward-only, yet returns (some) gradients: a contract error."""
    r = loop_forward(case)
    return Result(r.output, r.h_n, r.c_n, {"x": torch.zeros_like(case.x)}, backend=r.backend)


for _kernel in (forward_lstm, reverse_not_reversed, reverse_from_padded_end, h_n_of_padded_end, nan_output,
                returns_grads):
    _kernel.gradients = False
    _kernel.devices = ("cpu",)
undeclared.devices = ("cpu",)
