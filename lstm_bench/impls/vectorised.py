"""Vectorised BPTT: the same equations as `reference`, arranged for speed. No autograd.

Forward:
    xw    = x @ weight_ih^T + (bias_ih + bias_hh)            one GEMM for all T steps, (T, B, 4H)
    gates = xw_t + h_{t-1} @ weight_hh^T                     one fused (B, 4H) GEMM per step
    i, f, o = sigmoid(.), g = tanh(.)   written back into the same (T, B, 4H) buffer
    c_t = f * c_{t-1} + i * g,  h_t = o * tanh(c_t)

Backward, t = T..1 (Greff et al. 2017, arXiv:1503.04069), writing the pre-activation
gradients dz_t = [dz_i, dz_f, dz_g, dz_o] over the activations of step t, which are
no longer needed once dz_t is known:
    d_h = d_output_t + dz_{t+1} @ weight_hh      d_c = d_c_next + d_h * o * (1 - tanh(c_t)^2)
    dz_t = act'(z_t) * [d_c g, d_c c_{t-1}, d_c i, d_h tanh(c_t)]
           act' = a(1-a) for i, f, o (sigmoid) and 1-g^2 for g (tanh)
    d_c_next = d_c * f
After the loop every parameter gradient is one GEMM or reduction over all T*B rows:
    d_weight_ih = dz^T x      d_weight_hh = dz^T h_{0..T-1}      d_bias = sum dz      dx = dz @ weight_ih

Saved between forward and backward: the gate buffer (T, B, 4H), h_0..h_T and
c_0..c_T (T+1, B, H) each; tanh(c_t) is recomputed in the backward instead of stored.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..contract import Case, Result


@dataclass
class Cache:
    gates: torch.Tensor  # (T, B, 4H) activated i, f, g, o
    h: torch.Tensor  # (T+1, B, H) h_0..h_T
    c: torch.Tensor  # (T+1, B, H) c_0..c_T


@torch.no_grad()
def forward(case: Case) -> Cache:
    x, w = case.x, case.weights
    T, B, I, H = case.sizes
    gates = torch.addmm(w.bias_ih + w.bias_hh, x.reshape(T * B, I), w.weight_ih.T).view(T, B, 4 * H)
    h = x.new_empty(T + 1, B, H)
    c = x.new_empty(T + 1, B, H)
    h[0], c[0] = case.h0, case.c0
    w_hh_t = w.weight_hh.T
    for t in range(T):
        z = gates[t]
        z.addmm_(h[t], w_hh_t)
        z[:, :2 * H].sigmoid_()  # i, f
        z[:, 2 * H:3 * H].tanh_()  # g
        z[:, 3 * H:].sigmoid_()  # o
        i, f, g, o = z.chunk(4, dim=1)
        torch.addcmul(f * c[t], i, g, out=c[t + 1])
        torch.mul(o, torch.tanh(c[t + 1]), out=h[t + 1])
    return Cache(gates, h, c)


@torch.no_grad()
def backward(case: Case, cache: Cache, *, state_grads: bool = False) -> Result:
    x, w = case.x, case.weights
    T, B, I, H = case.sizes
    dz, h, c = cache.gates, cache.h, cache.c  # dz overwrites the gates step by step
    d_hs = x.new_empty(T, B, H) if state_grads else None
    d_cs = x.new_empty(T, B, H) if state_grads else None

    # dz_t = act'(z_t) * upstream_t, both (B, 4H): act' is a(1-a) for the sigmoid gates
    # and 1-g^2 for g; the upstream factors are gathered into one buffer so that dz_t is
    # one multiply written over the activations of step t (no longer needed after it).
    upstream = x.new_empty(B, 4 * H)
    u_i, u_f, u_g, u_o = upstream.chunk(4, dim=1)
    one = x.new_ones(())
    d_h, d_c = case.d_output[T - 1] + case.d_h_n, case.d_c_n
    for t in reversed(range(T)):
        a = dz[t]
        i, f, g, o = a.chunk(4, dim=1)
        tanh_c = torch.tanh(c[t + 1])
        d_c = torch.addcmul(d_c, d_h * o, 1 - tanh_c * tanh_c)
        if state_grads:
            d_hs[t], d_cs[t] = d_h, d_c
        torch.mul(d_c, g, out=u_i)
        torch.mul(d_c, c[t], out=u_f)
        torch.mul(d_c, i, out=u_g)
        torch.mul(d_h, tanh_c, out=u_o)
        d_c_next = d_c * f
        d_act = torch.addcmul(a, a, a, value=-1)  # a(1-a): right for i, f, o
        torch.addcmul(one, g, g, value=-1, out=d_act[:, 2 * H:3 * H])  # 1-g^2
        torch.mul(d_act, upstream, out=a)
        # d_h of step t-1: its upstream d_output plus the recurrent path dz_t @ W_hh.
        d_h = torch.addmm(case.d_output[t - 1], a, w.weight_hh) if t > 0 else a @ w.weight_hh
        d_c = d_c_next

    dz2 = dz.view(T * B, 4 * H)
    d_bias = dz2.sum(dim=0)
    grads = {
        "x": (dz2 @ w.weight_ih).view(T, B, I),
        "h0": d_h,
        "c0": d_c,
        "weight_ih": dz2.T @ x.reshape(T * B, I),
        "weight_hh": dz2.T @ h[:-1].reshape(T * B, H),
        "bias_ih": d_bias,
        "bias_hh": d_bias.clone(),
    }
    return Result(output=h[1:], h_n=h[-1], c_n=c[-1], grads=grads, backend="vectorised", d_h=d_hs, d_c=d_cs)


def run(case: Case, *, state_grads: bool = False) -> Result:
    """Forward and backward of `case`; `state_grads=True` also returns d_h, d_c (T, B, H)."""
    return backward(case, forward(case), state_grads=state_grads)
