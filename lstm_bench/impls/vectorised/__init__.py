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
recomputed in the backward instead of stored. oneDNN's reordered copies of the weights
(`gemm.py`) are kept across calls, before a forward starts, so they are not saved bytes.

How a plain layer (no projection, every sequence full length) runs is its *route*
(`routes.py`; the same in every process: a fixed rule, or decided once per machine and shape
and kept in the harness's cache folder, `decisions.py`): the whole loop in one compiled C call on torch's BLAS, a Python loop
on oneDNN's GEMM with a compiled cell, or torch operations; layers with a projection or
variable lengths run the torch-operations loop on torch's BLAS. `Result.backend` says
which ran: "vectorised[<step GEMM>-gemm+<loop>]" (several, joined by "|", when layers differ).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ...core.contract import Case, Result, gate_slice
from .. import stack
from ..stack import LayerGrads, LayerWeights
from . import fused, gemm, routes
from .routes import FUSED_CELL, FUSED_LOOP, TORCH_OPS


@dataclass
class Cache:
    x: torch.Tensor  # (T, B, In)
    w: LayerWeights
    mask: torch.Tensor | None  # (T, B): step t of sequence b is real
    gates: torch.Tensor  # (T, B, 4H) activated i, f, g, o
    r: torch.Tensor  # (T+1, B, H_out) r_0..r_T
    c: torch.Tensor  # (T+1, B, H) c_0..c_T
    m: torch.Tensor | None  # (T, B, H) o * tanh(c_t), with a projection only
    gemm: str = ""  # the step GEMM that ran: "onednn" or torch's BLAS ("mkl", "blas", "cublas")
    loop: str = ""  # the loop that ran: one of routes.ROUTES

    @property
    def route(self) -> str:
        return f"{self.gemm}-gemm+{self.loop}"


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _route(x: torch.Tensor, w: LayerWeights, mask: torch.Tensor | None,
           route: tuple[str, str] | None) -> tuple[str, str]:
    if mask is not None or w.weight_hr is not None:  # the C kernels do neither lengths nor projections
        return gemm.blas_name(x.device), TORCH_OPS
    return routes.resolve(route, x.device, x.dtype, x.shape[1], w.weight_hh.shape[1], plain_step)


@torch.no_grad()
def layer_forward(x: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor, w: LayerWeights,
                  mask: torch.Tensor | None, *, route: tuple[str, str] | None = None) -> Cache:
    """One layer, one direction (the stack's kernel interface). `route` = (gemm, loop) forces a
    route for a plain layer (see `routes.available_routes`)."""
    T, B, In = x.shape
    H = w.weight_hh.shape[0] // 4
    gemm_name, loop = _route(x, w, mask, route)
    bias = w.bias_ih + w.bias_hh
    x2 = x.reshape(T * B, In)
    if gemm_name == "onednn":
        gates = gemm.linear(x2, gemm.packed(w.weight_ih, T * B), bias).view(T, B, 4 * H)
    else:
        gates = torch.addmm(bias, x2, w.weight_ih.T).view(T, B, 4 * H)
    r = x.new_empty(T + 1, B, h0.shape[1])
    c = x.new_empty(T + 1, B, H)
    m = x.new_empty(T, B, H) if w.weight_hr is not None else None
    r[0], c[0] = h0, c0
    if loop == FUSED_LOOP:
        lib = fused.library()
        w_hh = w.weight_hh.contiguous()  # held in a name: the C call reads it through a raw pointer
        lib.fn[("fwd_loop", x.dtype)](T, B, H, _ptr(gates), _ptr(r), _ptr(c), _ptr(w_hh), lib.gemm[x.dtype])
    elif loop == FUSED_CELL:
        cell = fused.library().fn[("fwd_cell", x.dtype)]
        wp = gemm.packed(w.weight_hh, B)
        sz, sh = B * 4 * H * x.element_size(), B * H * x.element_size()
        pg, pr, pc = _ptr(gates), _ptr(r), _ptr(c)
        rs = r.unbind(0)
        for t in range(T):
            rec = gemm.linear(rs[t], wp)  # r_{t-1} @ weight_hh^T
            cell(B, H, pg + t * sz, _ptr(rec), pc + t * sh, pc + (t + 1) * sh, pr + (t + 1) * sh)
    else:
        _forward_torch_ops(gates, r, c, m, w, mask, gemm_name)
    return Cache(x, w, mask, gates, r, c, m, gemm_name, loop)


def _forward_torch_ops(gates: torch.Tensor, r: torch.Tensor, c: torch.Tensor, m: torch.Tensor | None,
                       w: LayerWeights, mask: torch.Tensor | None, gemm_name: str) -> None:
    T, B, H4 = gates.shape
    H = H4 // 4
    wp = gemm.packed(w.weight_hh, B) if gemm_name == "onednn" else None
    w_hh_t = w.weight_hh.T
    zs, rs, cs = gates.unbind(0), r.unbind(0), c.unbind(0)
    for t in range(T):
        z = zs[t]
        if wp is not None:
            z.add_(gemm.linear(rs[t], wp))
        else:
            z.addmm_(rs[t], w_hh_t)
        z[:, :2 * H].sigmoid_()  # i, f
        z[:, gate_slice("g", H)].tanh_()
        z[:, gate_slice("o", H)].sigmoid_()
        i, f, g, o = z.chunk(4, dim=1)
        torch.mul(f, cs[t], out=cs[t + 1])
        cs[t + 1].addcmul_(i, g)
        if m is None:
            torch.tanh(cs[t + 1], out=rs[t + 1])
            rs[t + 1].mul_(o)
        else:
            torch.mul(o, torch.tanh(cs[t + 1]), out=m[t])
            torch.mm(m[t], w.weight_hr.T, out=rs[t + 1])
        if mask is not None:  # past a sequence's last step its state stays
            real = mask[t][:, None]
            cs[t + 1].copy_(torch.where(real, cs[t + 1], cs[t]))
            rs[t + 1].copy_(torch.where(real, rs[t + 1], rs[t]))


@torch.no_grad()
def layer_backward(cache: Cache, d_out: torch.Tensor, d_h_n: torch.Tensor, d_c_n: torch.Tensor, *,
                   state_grads: bool = False) -> LayerGrads:
    """BPTT of one layer and direction on the route its forward took (the stack's kernel
    interface). d_out (T, B, H_out): dL/dr_t from above. Overwrites cache.gates with dz."""
    x, w = cache.x, cache.w
    T, B, In = x.shape
    H = w.weight_hh.shape[0] // 4
    dz, r, c = cache.gates, cache.r, cache.c
    need_d_r = state_grads or cache.m is not None
    d_rs = x.new_empty(T, B, r.shape[2]) if need_d_r else None
    d_cs = x.new_empty(T, B, H) if state_grads else None
    d_out = d_out.contiguous()
    if cache.loop == FUSED_LOOP:
        lib = fused.library()
        d_r = d_out[T - 1] + d_h_n  # becomes dL/dr_0
        d_c = d_c_n.clone(memory_format=torch.contiguous_format)  # becomes dL/dc_0
        w_hh = w.weight_hh.contiguous()  # held in a name: the C call reads it through a raw pointer
        lib.fn[("bwd_loop", x.dtype)](T, B, H, _ptr(dz), _ptr(c), _ptr(w_hh), _ptr(d_out), _ptr(d_r), _ptr(d_c),
                                      _ptr(d_rs), _ptr(d_cs), lib.gemm[x.dtype])
    elif cache.loop == FUSED_CELL:
        cell = fused.library().fn[("bwd_cell", x.dtype)]
        wp = gemm.packed(w.weight_hh, B, transpose=True)  # dz @ weight_hh = linear(dz, weight_hh^T)
        sz, sh = B * 4 * H * x.element_size(), B * H * x.element_size()
        pz, pc = _ptr(dz), _ptr(c)
        dzs, outs = dz.unbind(0), d_out.unbind(0)
        d_r = outs[T - 1] + d_h_n
        d_c = d_c_n.clone(memory_format=torch.contiguous_format)
        prs, pcs, pdc = _ptr(d_rs), _ptr(d_cs), _ptr(d_c)  # d_c is updated in place by the cell
        for t in reversed(range(T)):
            cell(B, H, pz + t * sz, pc + t * sh, pc + (t + 1) * sh, _ptr(d_r), pdc,
                 prs + t * sh if prs is not None else None, pcs + t * sh if pcs is not None else None)
            # d_r of step t-1: its upstream d_output plus the recurrent path dz_t @ W_hh.
            d_r = gemm.linear_add(dzs[t], outs[t - 1], wp) if t > 0 else gemm.linear(dzs[0], wp)
    else:
        d_r, d_c = _backward_torch_ops(cache, d_out, d_h_n, d_c_n, d_rs, d_cs)

    dz2 = dz.view(T * B, 4 * H)
    x2, r2 = x.reshape(T * B, In), r[:-1].reshape(T * B, -1)
    if cache.gemm == "onednn":
        # dx = dz @ W_ih;  d_weight = (x^T dz)^T, oneDNN's fast layout for a weight gradient.
        d_x = gemm.linear(dz2, gemm.packed(w.weight_ih, T * B, transpose=True))
        d_w_ih, d_w_hh = gemm.linear(x2.T, dz2.T).T, gemm.linear(r2.T, dz2.T).T
    else:
        d_x, d_w_ih, d_w_hh = dz2 @ w.weight_ih, dz2.T @ x2, dz2.T @ r2
    d_bias = dz2.sum(dim=0)
    weights = {"weight_ih": d_w_ih, "weight_hh": d_w_hh, "bias_ih": d_bias, "bias_hh": d_bias.clone()}
    if cache.m is not None:
        weights["weight_hr"] = d_rs.reshape(T * B, -1).T @ cache.m.reshape(T * B, H)
    grads = LayerGrads(d_x.view(T, B, In), d_r, d_c, weights)
    if state_grads:
        grads.d_h, grads.d_c = d_rs, d_cs
    return grads


def _backward_torch_ops(cache: Cache, d_out: torch.Tensor, d_h_n: torch.Tensor, d_c_n: torch.Tensor,
                        d_rs: torch.Tensor | None, d_cs: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    w, mask, dz, c = cache.w, cache.mask, cache.gates, cache.c
    T, B, H4 = dz.shape
    H = H4 // 4
    wp = gemm.packed(w.weight_hh, B, transpose=True) if cache.gemm == "onednn" else None
    # dz_t = act'(z_t) * upstream_t, both (B, 4H): act' is a(1-a) for the sigmoid gates
    # and 1-g^2 for g; the upstream factors are gathered into one buffer so that dz_t is
    # one multiply written over the activations of step t (no longer needed after it).
    upstream = dz.new_empty(B, 4 * H)
    u_i, u_f, u_g, u_o = upstream.chunk(4, dim=1)
    one = dz.new_ones(())
    zs, cs, outs = dz.unbind(0), c.unbind(0), d_out.unbind(0)
    d_r, d_c = outs[T - 1] + d_h_n, d_c_n
    for t in reversed(range(T)):
        a = zs[t]
        i, f, g, o = a.chunk(4, dim=1)
        real = None if mask is None else mask[t][:, None]
        if d_rs is not None:
            d_rs[t] = d_r if real is None else d_r * real  # the projection's gradient counts real steps only
        d_m = d_r if cache.m is None else d_r @ w.weight_hr
        tanh_c = torch.tanh(cs[t + 1])
        d_c_total = torch.addcmul(d_c, d_m * o, 1 - tanh_c * tanh_c)
        if d_cs is not None:
            d_cs[t] = d_c_total
        torch.mul(d_c_total, g, out=u_i)
        torch.mul(d_c_total, cs[t], out=u_f)
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
        d_r_prev = gemm.linear(a, wp) if wp is not None else a @ w.weight_hh
        if real is not None:
            d_r_prev = torch.where(real, d_r_prev, d_r)
        d_r = d_r_prev + outs[t - 1] if t > 0 else d_r_prev
        d_c = d_c_prev
    return d_r, d_c


def plain_step(route, x, h0, c0, weight_ih, weight_hh, bias, d_out, d_h_n, d_c_n) -> LayerGrads:
    """One forward+backward of a plain layer on `route`: what `routes.probe` times."""
    w = LayerWeights(weight_ih, weight_hh, bias, torch.zeros_like(bias))
    return layer_backward(layer_forward(x, h0, c0, w, None, route=route), d_out, d_h_n, d_c_n)


def forward(case: Case) -> stack.StackCache:
    return stack.forward(case, layer_forward)


def backward(case: Case, cache: stack.StackCache, *, state_grads: bool = False) -> Result:
    """The gradients of `case` from the forward's cache; `state_grads=True` also returns d_h, d_c
    (T, B, H) of a single-layer, unidirectional case without projection."""
    ran = "|".join(sorted({layer.route for layer in cache.layers.values()}))
    return stack.backward(case, cache, layer_backward, f"vectorised[{ran}]", state_grads=state_grads)


def run(case: Case, *, state_grads: bool = False) -> Result:
    """Forward and backward of `case`; `state_grads=True` also returns d_h, d_c (T, B, H)."""
    return backward(case, forward(case), state_grads=state_grads)
