"""Reference BPTT: the textbook derivation, one gate and one time step at a time.

Written to be read, not to be fast. No autograd. Forward (Hochreiter & Schmidhuber
1997; forget gate of Gers et al. 2000), with W_k, U_k, b_k the gate-k slices of
weight_ih, weight_hh and bias_ih + bias_hh:

    i_t = sigmoid(x_t W_i^T + h_{t-1} U_i^T + b_i)
    f_t = sigmoid(x_t W_f^T + h_{t-1} U_f^T + b_f)
    g_t = tanh   (x_t W_g^T + h_{t-1} U_g^T + b_g)
    o_t = sigmoid(x_t W_o^T + h_{t-1} U_o^T + b_o)
    c_t = f_t * c_{t-1} + i_t * g_t
    h_t = o_t * tanh(c_t)

Backward, from t = T down to 1 (Greff et al. 2017, arXiv:1503.04069, appendix), with
d_h_next = dL/dh_T from h_n and d_c_next = dL/dc_T from c_n to start:

    d_h   = d_output_t + d_h_next                   total dL/dh_t
    d_c   = d_c_next + d_h * o_t * (1 - tanh(c_t)^2)  total dL/dc_t
    d_o   = d_h * tanh(c_t)        dz_o = d_o * o_t (1 - o_t)
    d_i   = d_c * g_t              dz_i = d_i * i_t (1 - i_t)
    d_f   = d_c * c_{t-1}          dz_f = d_f * f_t (1 - f_t)
    d_g   = d_c * i_t              dz_g = d_g * (1 - g_t^2)
    dW_k += dz_k^T x_t    dU_k += dz_k^T h_{t-1}    db_k += sum_batch dz_k
    dx_t  = sum_k dz_k W_k
    d_h_next = sum_k dz_k U_k      d_c_next = d_c * f_t
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..contract import GATES, Case, Result, gate_slices


@dataclass
class Cache:
    """What the forward keeps for the backward, one entry per step t = 1..T."""

    h: list[torch.Tensor]  # h_0..h_T, each (B, H)
    c: list[torch.Tensor]  # c_0..c_T, each (B, H)
    gates: list[dict[str, torch.Tensor]]  # activated i, f, g, o at t = 1..T, each (B, H)


def _per_gate(case: Case) -> tuple[dict, dict, dict]:
    """Split nn.LSTM's stacked parameters into per-gate W_k (H, I), U_k (H, H), b_k (H,)."""
    w = case.weights
    rows = gate_slices(case.sizes[3])
    b = w.bias_ih + w.bias_hh
    W = {k: w.weight_ih[rows[k]] for k in GATES}
    U = {k: w.weight_hh[rows[k]] for k in GATES}
    bias = {k: b[rows[k]] for k in GATES}
    return W, U, bias


@torch.no_grad()
def forward(case: Case) -> Cache:
    W, U, b = _per_gate(case)
    h, c, gates = [case.h0], [case.c0], []
    for x_t in case.x:
        z = {k: x_t @ W[k].T + h[-1] @ U[k].T + b[k] for k in GATES}
        i, f, g, o = torch.sigmoid(z["i"]), torch.sigmoid(z["f"]), torch.tanh(z["g"]), torch.sigmoid(z["o"])
        c.append(f * c[-1] + i * g)
        h.append(o * torch.tanh(c[-1]))
        gates.append({"i": i, "f": f, "g": g, "o": o})
    return Cache(h, c, gates)


@torch.no_grad()
def backward(case: Case, cache: Cache, *, state_grads: bool = False) -> Result:
    W, U, _ = _per_gate(case)
    T = case.sizes[0]
    dW = {k: torch.zeros_like(W[k]) for k in GATES}
    dU = {k: torch.zeros_like(U[k]) for k in GATES}
    db = {k: torch.zeros_like(W[k][:, 0]) for k in GATES}
    dx = torch.empty_like(case.x)
    d_hs, d_cs = [None] * T, [None] * T

    d_h_next, d_c_next = case.d_h_n, case.d_c_n
    for t in reversed(range(T)):
        i, f, g, o = (cache.gates[t][k] for k in GATES)
        c_prev, c, h_prev = cache.c[t], cache.c[t + 1], cache.h[t]
        tanh_c = torch.tanh(c)

        d_h = case.d_output[t] + d_h_next
        d_c = d_c_next + d_h * o * (1 - tanh_c ** 2)
        dz = {
            "i": d_c * g * i * (1 - i),
            "f": d_c * c_prev * f * (1 - f),
            "g": d_c * i * (1 - g ** 2),
            "o": d_h * tanh_c * o * (1 - o),
        }
        for k in GATES:
            dW[k] += dz[k].T @ case.x[t]
            dU[k] += dz[k].T @ h_prev
            db[k] += dz[k].sum(dim=0)
        dx[t] = sum(dz[k] @ W[k] for k in GATES)
        d_h_next = sum(dz[k] @ U[k] for k in GATES)
        d_c_next = d_c * f
        d_hs[t], d_cs[t] = d_h, d_c

    d_bias = torch.cat([db[k] for k in GATES])
    grads = {
        "x": dx, "h0": d_h_next, "c0": d_c_next,
        "weight_ih": torch.cat([dW[k] for k in GATES]),
        "weight_hh": torch.cat([dU[k] for k in GATES]),
        "bias_ih": d_bias, "bias_hh": d_bias.clone(),  # both biases enter as a sum
    }
    return Result(
        output=torch.stack(cache.h[1:]), h_n=cache.h[-1], c_n=cache.c[-1], grads=grads, backend="reference",
        d_h=torch.stack(d_hs) if state_grads else None, d_c=torch.stack(d_cs) if state_grads else None,
    )


def run(case: Case, *, state_grads: bool = False) -> Result:
    """Forward and backward of `case`; `state_grads=True` also returns d_h, d_c (T, B, H)."""
    return backward(case, forward(case), state_grads=state_grads)
