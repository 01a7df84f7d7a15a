"""Kernels that cheat the way KernelBench's adversarial tests catch: right on every fresh case,
wrong only in the situations the adversarial gates build (tests/test_pt2_gates.py)."""
from __future__ import annotations

import dataclasses

import torch

from lstm_bench import Result, get_impl


def correct(case) -> Result:
    return get_impl("autograd").fn(case)


_by_pointer: dict[tuple, Result] = {}


def caches_by_pointer(case) -> Result:
    """Keeps its result by the inputs' data pointers: a timed loop over the same buffers costs
    nothing after the first call, and new numbers written into those buffers get the old result."""
    key = tuple(t.data_ptr() for t in case.tensors().values()) + (case.x.shape, case.dtype)
    if key not in _by_pointer:
        _by_pointer.clear()  # one entry: a fresh case (fresh buffers) always misses
        _by_pointer[key] = correct(case)
    return _by_pointer[key]


def shares_bias_grads(case) -> Result:
    """d_bias_ih and d_bias_hh are equal (both dL/d gates summed over steps and batch), so it
    hands out one tensor for both: an optimiser's in-place step on one changes the other."""
    r = correct(case)
    grads = dict(r.grads)
    for layer, d in case.config.layers():
        n = case.config.names(layer, d)
        grads[n.bias_hh] = grads[n.bias_ih]
    return dataclasses.replace(r, grads=grads)


def side_stream(case) -> Result:
    """On CUDA, runs on a stream of its own and returns without ordering the caller's stream after it."""
    if case.device.type != "cuda":
        return correct(case)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        return correct(case)


caches_by_pointer.devices = ("cpu", "cuda")  # on CUDA, the CUDA-graph gate catches it too
shares_bias_grads.devices = ("cpu",)
side_stream.devices = ("cuda",)
