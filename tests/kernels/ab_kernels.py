"""NEW kernels that `lstm-bench ab` must refuse to time as if they were right: each is
autograd's correct result with one defect, switched on in the NEW worker only
(AB_SIDE=NEW), or in BASE only (AB_SIDE=BASE at T=7), by the point's sequence length T:

    T=2  NaN in one element of d_bias_hh (an uninitialised accumulator)
    T=3  every gradient rounded to bfloat16: ~3e-3 relative, finite and plausible
    T=4  its first result cached and returned for every later call, whatever the inputs
    T=5  correct (the control: compared as usual)
    T=6  right for its first 3 calls, then skips the weight_hh gradient (computes less when called
         repeatedly: right through the warm-up and the first timed call, wrong in the timing)
    T=7  BASE (not NEW) returns bf16-rounded gradients: a wrong BASE, not a regression of NEW

Every result names the backend $AB_BACKEND when that is set (a route chosen per side).
"""
from __future__ import annotations

import dataclasses
import os

import torch

from lstm_bench import Result, get_impl

_cache: dict[int, Result] = {}
_calls: dict[int, int] = {}


def _correct(case) -> Result:
    return get_impl("autograd").fn(case)


def _bf16_grads(r: Result) -> Result:
    return dataclasses.replace(r, grads={k: v.to(torch.bfloat16).to(v.dtype) for k, v in r.grads.items()})


def kernel(case) -> Result:
    r = _kernel(case)
    return dataclasses.replace(r, backend=os.environ.get("AB_BACKEND", r.backend))


def _kernel(case) -> Result:
    side, T = os.environ.get("AB_SIDE", ""), case.sizes[0]
    if side == "BASE" and T == 7:
        return _bf16_grads(_correct(case))
    if side != "NEW":
        return _correct(case)
    if T == 2:
        r = _correct(case)
        d_b = r.grads["bias_hh_l0"].clone()
        d_b[0] = float("nan")
        return dataclasses.replace(r, grads={**r.grads, "bias_hh_l0": d_b})
    if T == 3:
        return _bf16_grads(_correct(case))
    if T == 4:
        if T not in _cache:
            _cache[T] = _correct(case)
        return _cache[T]
    if T == 6:
        _calls[T] = _calls.get(T, 0) + 1
        r = _correct(case)
        if _calls[T] > 3:
            return dataclasses.replace(r, grads={**r.grads, "weight_hh_l0": torch.zeros_like(r.grads["weight_hh_l0"])})
        return r
    return _correct(case)


kernel.devices = ("cpu",)
