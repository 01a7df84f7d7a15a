"""Reference BPTT: the textbook derivation, one gate and one time step at a time.

Written to be read, not to be fast. No autograd. One layer in one direction (the stack,
`impls/stack.py`, composes layers, directions and lengths). Forward (Hochreiter &
Schmidhuber 1997; forget gate of Gers et al. 2000; projection of Sak et al. 2014), with
W_k, U_k, b_k the gate-k slices of weight_ih, weight_hh and bias_ih + bias_hh:

    i_t = sigmoid(x_t W_i^T + r_{t-1} U_i^T + b_i)
    f_t = sigmoid(x_t W_f^T + r_{t-1} U_f^T + b_f)
    g_t = tanh   (x_t W_g^T + r_{t-1} U_g^T + b_g)
    o_t = sigmoid(x_t W_o^T + r_{t-1} U_o^T + b_o)
    c_t = f_t * c_{t-1} + i_t * g_t
    m_t = o_t * tanh(c_t)
    r_t = m_t W_hr^T  (with a projection; else r_t = m_t)
    after a sequence's last step its state stays: r_t = r_{t-1}, c_t = c_{t-1}

Backward, from t = T down to 1 (Greff et al. 2017, arXiv:1503.04069, appendix), with
d_r_next = dL/dr_T from h_n and d_c_next = dL/dc_T from c_n to start:

    d_r   = d_out_t + d_r_next                      total dL/dr_t
    d_m   = d_r W_hr        dW_hr += d_r^T m_t      (with a projection; else d_m = d_r)
    d_c   = d_c_next + d_m * o_t * (1 - tanh(c_t)^2)  total dL/dc_t
    d_o   = d_m * tanh(c_t)      dz_o = d_o * o_t (1 - o_t)
    d_i   = d_c * g_t            dz_i = d_i * i_t (1 - i_t)
    d_f   = d_c * c_{t-1}        dz_f = d_f * f_t (1 - f_t)
    d_g   = d_c * i_t            dz_g = d_g * (1 - g_t^2)
    dW_k += dz_k^T x_t    dU_k += dz_k^T r_{t-1}    db_k += sum_batch dz_k
    dx_t  = sum_k dz_k W_k
    d_r_next = sum_k dz_k U_k      d_c_next = d_c * f_t
    after a sequence's last step: no gate gradient, d_r_next = d_r and d_c_next = d_c pass through

The weight-gradient sums are kept in float32 for bfloat16 and float16 cases
(`stack.ACCUMULATE`), as the vendors' kernels keep them.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core.contract import GATES, Case, Result, gate_slices
from . import stack
from .stack import LayerGrads, LayerWeights


@dataclass
class Cache:
    """What the forward keeps for the backward, one entry per step t = 1..T."""

    x: torch.Tensor  # (T, B, In)
    w: LayerWeights
    mask: torch.Tensor | None  # (T, B): step t of sequence b is real
    r: torch.Tensor  # (T+1, B, H_out) r_0..r_T
    c: torch.Tensor  # (T+1, B, H) c_0..c_T
    m: list[torch.Tensor]  # o_t * tanh(c_t), each (B, H)
    gates: list[dict[str, torch.Tensor]]  # activated i, f, g, o at t = 1..T, each (B, H)


def _per_gate(w: LayerWeights) -> tuple[dict, dict, dict]:
    """Split nn.LSTM's stacked parameters into per-gate W_k (H, In), U_k (H, H_out), b_k (H,)."""
    rows = gate_slices(w.weight_hh.shape[0] // 4)
    b = w.bias_ih + w.bias_hh
    return ({k: w.weight_ih[rows[k]] for k in GATES}, {k: w.weight_hh[rows[k]] for k in GATES},
            {k: b[rows[k]] for k in GATES})


@torch.no_grad()
def layer_forward(x: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor, w: LayerWeights,
                  mask: torch.Tensor | None) -> Cache:
    W, U, b = _per_gate(w)
    r, c, m, gates = [h0], [c0], [], []
    for t, x_t in enumerate(x):
        z = {k: x_t @ W[k].T + r[-1] @ U[k].T + b[k] for k in GATES}
        i, f, g, o = torch.sigmoid(z["i"]), torch.sigmoid(z["f"]), torch.tanh(z["g"]), torch.sigmoid(z["o"])
        c_t = f * c[-1] + i * g
        m_t = o * torch.tanh(c_t)
        r_t = m_t @ w.weight_hr.T if w.weight_hr is not None else m_t
        if mask is not None:  # past a sequence's last step its state stays
            real = mask[t][:, None]
            c_t, r_t = torch.where(real, c_t, c[-1]), torch.where(real, r_t, r[-1])
        c.append(c_t)
        r.append(r_t)
        m.append(m_t)
        gates.append({"i": i, "f": f, "g": g, "o": o})
    return Cache(x, w, mask, torch.stack(r), torch.stack(c), m, gates)


@torch.no_grad()
def layer_backward(cache: Cache, d_out: torch.Tensor, d_h_n: torch.Tensor, d_c_n: torch.Tensor, *,
                   state_grads: bool = False) -> LayerGrads:
    w, x = cache.w, cache.x
    W, U, _ = _per_gate(w)
    acc = stack.ACCUMULATE.get(x.dtype, x.dtype)  # the dtype the weight-gradient sums are kept in
    dW = {k: torch.zeros_like(W[k], dtype=acc) for k in GATES}
    dU = {k: torch.zeros_like(U[k], dtype=acc) for k in GATES}
    db = {k: torch.zeros_like(W[k][:, 0], dtype=acc) for k in GATES}
    d_hr = None if w.weight_hr is None else torch.zeros_like(w.weight_hr, dtype=acc)
    dx = torch.empty_like(x)
    d_hs, d_cs = [None] * x.shape[0], [None] * x.shape[0]

    d_r_next, d_c_next = d_h_n, d_c_n
    for t in reversed(range(x.shape[0])):
        i, f, g, o = (cache.gates[t][k] for k in GATES)
        c_prev, c_t, r_prev = cache.c[t], cache.c[t + 1], cache.r[t]
        real = None if cache.mask is None else cache.mask[t][:, None]
        tanh_c = torch.tanh(c_t)

        d_r = d_out[t] + d_r_next
        if d_hr is not None:
            d_hr += ((d_r if real is None else d_r * real).T @ cache.m[t]).to(acc)
            d_m = d_r @ w.weight_hr
        else:
            d_m = d_r
        d_c = d_c_next + d_m * o * (1 - tanh_c ** 2)
        dz = {
            "i": d_c * g * i * (1 - i),
            "f": d_c * c_prev * f * (1 - f),
            "g": d_c * i * (1 - g ** 2),
            "o": d_m * tanh_c * o * (1 - o),
        }
        if real is not None:  # no gate gradient past a sequence's last step
            dz = {k: v * real for k, v in dz.items()}
        for k in GATES:
            dW[k] += (dz[k].T @ x[t]).to(acc)
            dU[k] += (dz[k].T @ r_prev).to(acc)
            db[k] += dz[k].sum(dim=0).to(acc)
        dx[t] = sum(dz[k] @ W[k] for k in GATES)
        d_r_prev, d_c_prev = sum(dz[k] @ U[k] for k in GATES), d_c * f
        if real is not None:  # ... where the state passes straight through
            d_r_prev, d_c_prev = torch.where(real, d_r_prev, d_r), torch.where(real, d_c_prev, d_c_next)
        d_hs[t], d_cs[t] = d_r, d_c
        d_r_next, d_c_next = d_r_prev, d_c_prev

    d_bias = torch.cat([db[k] for k in GATES]).to(x.dtype)
    weights = {"weight_ih": torch.cat([dW[k] for k in GATES]).to(x.dtype),
               "weight_hh": torch.cat([dU[k] for k in GATES]).to(x.dtype),
               "bias_ih": d_bias, "bias_hh": d_bias.clone()}  # both biases enter as a sum
    if d_hr is not None:
        weights["weight_hr"] = d_hr.to(x.dtype)
    if not state_grads:
        return LayerGrads(dx, d_r_next, d_c_next, weights)
    return LayerGrads(dx, d_r_next, d_c_next, weights, torch.stack(d_hs), torch.stack(d_cs))


def forward(case: Case) -> stack.StackCache:
    return stack.forward(case, layer_forward)


def backward(case: Case, cache: stack.StackCache, *, state_grads: bool = False) -> Result:
    """The gradients of `case` from the forward's cache; `state_grads=True` also returns d_h, d_c
    (T, B, H) of a single-layer, unidirectional case without projection."""
    return stack.backward(case, cache, layer_backward, "reference", state_grads=state_grads)


def run(case: Case, *, state_grads: bool = False) -> Result:
    """Forward and backward of `case`; `state_grads=True` also returns d_h, d_c (T, B, H)."""
    return backward(case, forward(case), state_grads=state_grads)
