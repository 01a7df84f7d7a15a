"""Kernels with the bugs real LSTM kernels have had, one per bug class of the conformance
suite. Each is a correct implementation (autograd's) with one defect, so that a gate that
lets it through has nothing else to blame. tests/test_gate_can_fail.py runs the suite on
each and checks which gate catches it.
"""
from __future__ import annotations

import dataclasses
import itertools

import torch

from lstm_bench import Case, Result, get_impl


def correct(case) -> Result:
    return get_impl("autograd").fn(case)


def _regrad(result: Result, **changes) -> Result:
    return dataclasses.replace(result, grads={**result.grads, **changes})


# --- size thresholds: right below a tile boundary, wrong above it -------------------------

def remainder_tile_above_h64(case):
    """A tiled recurrent GEMM that drops the partial last tile once H exceeds one tile of 64."""
    r = correct(case)
    H = case.sizes[3]
    if H <= 64 or H % 64 == 0:
        return r
    d_w = r.grads["weight_hh_l0"].clone()
    d_w[:, 64 * (H // 64):] = 0
    return _regrad(r, weight_hh_l0=d_w)


def batch_tile_above_b32(case):
    """The second batch tile (rows 32..) reads its d_x from the first tile's rows."""
    r = correct(case)
    B = case.sizes[1]
    if B <= 32:
        return r
    dx = r.grads["x"].clone().movedim(0 if case.config.batch_first else 1, 0)  # batch first
    dx[32:] = dx[:B - 32].clone()
    return _regrad(r, x=dx.movedim(0, 0 if case.config.batch_first else 1))


def input_loop_bound_h(case):
    """The weight_ih gradient loop runs over H columns instead of I: wrong only when I > H."""
    r = correct(case)
    T, B, I, H = case.sizes
    if I <= H:
        return r
    d_w = r.grads["weight_ih_l0"].clone()
    d_w[:, H:] = 0
    return _regrad(r, weight_ih_l0=d_w)


# --- truncation: the gradient of each step reaches back at most WINDOW steps -----------

def _windowed(case, window: int) -> Result:
    """Truncated BPTT: the loss terms of step s flow back to step s - window + 1 only, BPTT(h; 1) of
    Williams & Peng (1990), "An efficient gradient-based algorithm for on-line training of recurrent
    network trajectories", with h = window. Single-layer, unidirectional, time-major only (declared:
    features = ()).

    The T windows run side by side, one batch of T·B sequences for `window` steps: window s starts
    from the forward state at step s - window + 1 (detached), or from h0, c0 themselves where it
    reaches the start. One window at a time took 8.7 s for `lstm-bench check` here (AMD EPYC).
    """
    T = case.sizes[0]
    names = case.config.grad_names()
    with torch.enable_grad():
        inputs = tuple(case.tensors()[k].detach().requires_grad_() for k in names)
        x, h0, c0, w_ih, w_hh, b_ih, b_hh = inputs

        def step(h, c, x_t):  # h, c (..., H), x_t (..., I)
            i, f, g, o = (x_t @ w_ih.T + b_ih + b_hh + h @ w_hh.T).chunk(4, -1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            return torch.sigmoid(o) * torch.tanh(c), c

        with torch.no_grad():
            hs, cs = [h0[0]], [c0[0]]
            for t in range(T):
                h, c = step(hs[-1], cs[-1], x[t])
                hs.append(h)
                cs.append(c)
        ends = torch.arange(T)  # window s ends at step s ...
        starts = (ends + 1 - window).clamp(min=0)  # ... and starts here
        h = torch.stack([h0[0] if s == 0 else hs[s] for s in starts.tolist()])  # (T, B, H)
        c = torch.stack([c0[0] if s == 0 else cs[s] for s in starts.tolist()])
        for k in range(min(window, T)):
            t = starts + k
            running = (t <= ends)[:, None, None]  # a window that has reached its end keeps its state
            h_next, c_next = step(h, c, x[t.clamp(max=T - 1)])
            h, c = torch.where(running, h_next, h), torch.where(running, c_next, c)
        # h[s] is step s's output recomputed within its window; h[-1], c[-1] the final states
        grads = torch.autograd.grad((h, h[-1], c[-1]), inputs, (case.d_output, case.d_h_n[0], case.d_c_n[0]),
                                    allow_unused=True)
    grads = [torch.zeros_like(v) if g is None else g for v, g in zip(inputs, grads)]
    return Result(torch.stack(hs[1:]), hs[-1][None], cs[-1][None], dict(zip(names, grads)), backend="windowed")


def window_40(case):
    """A BPTT that carries each step's gradient back 40 steps and drops the rest."""
    return _windowed(case, 40)


def window_200(case):
    """The same with a window of 200 steps."""
    return _windowed(case, 200)


# --- precision ----------------------------------------------------------------------------

def bfloat16_result(case):
    """Returns its result in bfloat16 whatever the case's dtype."""
    return correct(case).to(dtype=torch.bfloat16)


def bfloat16_inside(case):
    """Computes in bfloat16 and casts the result back to the case's dtype."""
    return correct(case.to(dtype=torch.bfloat16)).to(dtype=case.dtype)


def sums_in_low_precision(case):
    """The reference with its weight-gradient sums kept in the case's dtype: in bfloat16 and
    float16 each of the T per-step terms is added with one rounding, where the vendor sums in
    float32. Correct in float32 and float64."""
    from lstm_bench.impls import reference, stack

    saved = dict(stack.ACCUMULATE)
    stack.ACCUMULATE.clear()
    try:
        return reference.run(case)
    finally:
        stack.ACCUMULATE.update(saved)


sums_in_low_precision.dtypes = ("float32", "float64", "bfloat16", "float16")


# --- input mutation, determinism, state between calls, NaN --------------------------------

def mutates_c0(case):
    """Right result, but halves c0 in place afterwards (an in-place op on an input's storage)."""
    r = correct(case)
    case.c0.mul_(0.5)
    return r


_calls = itertools.count()


def _one_ulp_noise(case):
    """The right result moved by 1 ulp in d_weight_hh, up on one call and down on the next:
    what reordered atomic additions do to a reduction."""
    r = correct(case)
    d_w = r.grads["weight_hh_l0"]
    toward = torch.full_like(d_w, (-1.0) ** next(_calls) * float("inf"))
    return _regrad(r, weight_hh_l0=torch.nextafter(d_w, toward))


def nondeterministic(case):
    """Different bits each call, but declared deterministic (the default)."""
    return _one_ulp_noise(case)


def nondeterministic_declared(case):
    """The same, declared: its determinism gate is an expected failure."""
    return _one_ulp_noise(case)


nondeterministic_declared.deterministic = False
nondeterministic_declared.why_nondeterministic = "atomic adds in the weight-gradient reduction"

_weights_by_shape: dict[tuple, torch.Tensor] = {}


def caches_weights_by_shape(case):
    """Keeps weight_hh by its shape across calls: stale weights for the next case of that shape."""
    w = case.weights["weight_hh_l0"]
    cached = _weights_by_shape.setdefault((tuple(w.shape), w.dtype), w.clone())
    return correct(dataclasses.replace(case, weights={**case.weights, "weight_hh_l0": cached}))


def nan_gradient(case):
    """A NaN in one element of d_bias_hh (an uninitialised accumulator)."""
    r = correct(case)
    d_b = r.grads["bias_hh_l0"].clone()
    d_b[0] = float("nan")
    return _regrad(r, bias_hh_l0=d_b)


for _kernel in (remainder_tile_above_h64, batch_tile_above_b32, input_loop_bound_h, window_40, window_200,
                bfloat16_result, bfloat16_inside, sums_in_low_precision, mutates_c0, nondeterministic, nondeterministic_declared,
                caches_weights_by_shape, nan_gradient):
    _kernel.devices = ("cpu",)
window_40.features = window_200.features = ()


def cuda_only(case: Case) -> Result:
    """A correct kernel that declares CUDA alone: on a machine without a GPU nothing of it is
    judged, and no command may call that a pass."""
    return get_impl("vectorised")(case)


cuda_only.devices = ("cuda",)


def batch_first_reshaped(case):
    """Declares batch_first alone (FlashRNN's, Flax's and Keras' native layout), and gets it wrong:
    it makes the time-major case with d_output *reshaped* (B, T, H) -> (T, B, H) instead of
    transposed, so every gradient is wrong whenever B > 1 and T > 1 — and only in batch_first."""
    if not case.config.batch_first:
        return correct(case)
    B, T = case.x.shape[:2]
    time_major = dataclasses.replace(case, config=dataclasses.replace(case.config, batch_first=False),
                                     x=case.x.transpose(0, 1).contiguous(),
                                     d_output=case.d_output.reshape(T, B, -1))
    r = correct(time_major)
    return dataclasses.replace(r, output=r.output.transpose(0, 1).contiguous(),
                               grads={**r.grads, "x": r.grads["x"].transpose(0, 1).contiguous()})


batch_first_reshaped.features = ("batch_first",)
batch_first_reshaped.devices = ("cpu",)
