"""Vectorised BPTT: the same equations as `reference`, arranged for speed. No autograd.

One layer in one direction (the stack, `impls/stack.py`, composes layers, directions and
lengths); its GEMMs stay fused per layer and direction. Forward:
    gates = x @ weight_ih^T + (bias_ih + bias_hh)            one GEMM for all T steps, (T, B, 4H)
    gates_t += r_{t-1} @ weight_hh^T                          one fused (B, 4H) GEMM per step
    i, f, o = sigmoid(.), g = tanh(.)   written back into the same (T, B, 4H) buffer
    c_t = f * c_{t-1} + i * g,  m_t = o * tanh(c_t),  r_t = m_t @ weight_hr^T (or m_t)
    past a sequence's last step its state stays (r_t = r_{t-1}, c_t = c_{t-1})

Backward, t = T..1 (Greff et al. 2017, arXiv:1503.04069), writing the pre-activation
gradients dz_t = [dz_i, dz_f, dz_g, dz_o] over the activations of step t, which are
no longer needed once dz_t is known:
    d_m = d_r @ weight_hr (or d_r)     d_c = d_c_next + d_m * o * (1 - tanh(c_t)^2)
    dz_t = act'(z_t) * [d_c g, d_c c_{t-1}, d_c i, d_m tanh(c_t)], zero past a sequence's end
           act' = a(1-a) for i, f, o (sigmoid) and 1-g^2 for g (tanh)
    d_r_{t-1} = d_output_{t-1} + dz_t @ weight_hh      d_c_next = d_c * f  (passed through past the end)
After the loop every parameter gradient is one GEMM or reduction over all T*B rows:
    d_weight_ih = dz^T x   d_weight_hh = dz^T r_{0..T-1}   d_bias = sum dz   dx = dz @ weight_ih
    d_weight_hr = d_r^T m  (with a projection; d_r zero past a sequence's end)

Saved between forward and backward: the gate buffer (T, B, 4H), r_0..r_T (T+1, B, H_out)
and c_0..c_T (T+1, B, H); with a projection also m_1..m_T (T, B, H). tanh(c_t) is
recomputed in the backward instead of stored.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..contract import Case, Result, gate_slice
from . import stack
from .stack import LayerGrads, LayerWeights


@dataclass
class Cache:
    x: torch.Tensor  # (T, B, In)
    w: LayerWeights
    mask: torch.Tensor | None  # (T, B)
    gates: torch.Tensor  # (T, B, 4H) activated i, f, g, o
    r: torch.Tensor  # (T+1, B, H_out) r_0..r_T
    c: torch.Tensor  # (T+1, B, H) c_0..c_T
    m: torch.Tensor | None  # (T, B, H) o * tanh(c_t), with a projection only


@torch.no_grad()
def layer_forward(x: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor, w: LayerWeights,
                  mask: torch.Tensor | None) -> Cache:
    T, B, In = x.shape
    H = w.weight_hh.shape[0] // 4
    gates = torch.addmm(w.bias_ih + w.bias_hh, x.reshape(T * B, In), w.weight_ih.T).view(T, B, 4 * H)
    r = x.new_empty(T + 1, B, h0.shape[1])
    c = x.new_empty(T + 1, B, H)
    m = x.new_empty(T, B, H) if w.weight_hr is not None else None
    r[0], c[0] = h0, c0
    w_hh_t = w.weight_hh.T
    for t in range(T):
        z = gates[t]
        z.addmm_(r[t], w_hh_t)
        z[:, :2 * H].sigmoid_()  # i, f
        z[:, gate_slice("g", H)].tanh_()
        z[:, gate_slice("o", H)].sigmoid_()
        i, f, g, o = z.chunk(4, dim=1)
        torch.addcmul(f * c[t], i, g, out=c[t + 1])
        if m is None:
            torch.mul(o, torch.tanh(c[t + 1]), out=r[t + 1])
        else:
            torch.mul(o, torch.tanh(c[t + 1]), out=m[t])
            torch.mm(m[t], w.weight_hr.T, out=r[t + 1])
        if mask is not None:  # past a sequence's last step its state stays
            real = mask[t][:, None]
            c[t + 1] = torch.where(real, c[t + 1], c[t])
            r[t + 1] = torch.where(real, r[t + 1], r[t])
    return Cache(x, w, mask, gates, r, c, m)


@torch.no_grad()
def layer_backward(cache: Cache, d_out: torch.Tensor, d_h_n: torch.Tensor, d_c_n: torch.Tensor, *,
                   state_grads: bool = False) -> LayerGrads:
    x, w, mask = cache.x, cache.w, cache.mask
    T, B, In = x.shape
    H = w.weight_hh.shape[0] // 4
    dz, r, c = cache.gates, cache.r, cache.c  # dz overwrites the gates step by step
    d_rs = x.new_empty(T, B, r.shape[2]) if (state_grads or cache.m is not None) else None
    d_cs = x.new_empty(T, B, H) if state_grads else None

    # dz_t = act'(z_t) * upstream_t, both (B, 4H): act' is a(1-a) for the sigmoid gates
    # and 1-g^2 for g; the upstream factors are gathered into one buffer so that dz_t is
    # one multiply written over the activations of step t (no longer needed after it).
    upstream = x.new_empty(B, 4 * H)
    u_i, u_f, u_g, u_o = upstream.chunk(4, dim=1)
    one = x.new_ones(())
    d_r, d_c = d_out[T - 1] + d_h_n, d_c_n
    for t in reversed(range(T)):
        a = dz[t]
        i, f, g, o = a.chunk(4, dim=1)
        real = None if mask is None else mask[t][:, None]
        if d_rs is not None:
            d_rs[t] = d_r if real is None else d_r * real  # the projection's gradient counts real steps only
        d_m = d_r if cache.m is None else d_r @ w.weight_hr
        tanh_c = torch.tanh(c[t + 1])
        d_c_total = torch.addcmul(d_c, d_m * o, 1 - tanh_c * tanh_c)
        if d_cs is not None:
            d_cs[t] = d_c_total
        torch.mul(d_c_total, g, out=u_i)
        torch.mul(d_c_total, c[t], out=u_f)
        torch.mul(d_c_total, i, out=u_g)
        torch.mul(d_m, tanh_c, out=u_o)
        d_c_prev = d_c_total * f
        d_act = torch.addcmul(a, a, a, value=-1)  # a(1-a): right for i, f, o
        torch.addcmul(one, g, g, value=-1, out=d_act[:, gate_slice("g", H)])  # 1-g^2
        torch.mul(d_act, upstream, out=a)
        if real is not None:  # no gate gradient past a sequence's end, where the state passes through
            a.mul_(real)
            d_c_prev = torch.where(real, d_c_prev, d_c)
        # d_r of step t-1: its upstream d_output plus the recurrent path dz_t @ W_hh.
        d_r_prev = a @ w.weight_hh
        if real is not None:
            d_r_prev = torch.where(real, d_r_prev, d_r)
        d_r = d_r_prev + d_out[t - 1] if t > 0 else d_r_prev
        d_c = d_c_prev

    dz2 = dz.view(T * B, 4 * H)
    d_bias = dz2.sum(dim=0)
    weights = {"weight_ih": dz2.T @ x.reshape(T * B, In), "weight_hh": dz2.T @ r[:-1].reshape(T * B, -1),
               "bias_ih": d_bias, "bias_hh": d_bias.clone()}
    if cache.m is not None:
        weights["weight_hr"] = d_rs.reshape(T * B, -1).T @ cache.m.reshape(T * B, H)
    grads = LayerGrads((dz2 @ w.weight_ih).view(T, B, In), d_r, d_c, weights)
    if state_grads:
        grads.d_h, grads.d_c = d_rs, d_cs
    return grads


def forward(case: Case) -> stack.StackCache:
    return stack.forward(case, layer_forward)


def backward(case: Case, cache: stack.StackCache, *, state_grads: bool = False) -> Result:
    """The gradients of `case` from the forward's cache; `state_grads=True` also returns d_h, d_c
    (T, B, H) of a single-layer, unidirectional case without projection."""
    return stack.backward(case, cache, layer_backward, "vectorised", state_grads=state_grads)


def run(case: Case, *, state_grads: bool = False) -> Result:
    """Forward and backward of `case`; `state_grads=True` also returns d_h, d_c (T, B, H)."""
    return backward(case, forward(case), state_grads=state_grads)
