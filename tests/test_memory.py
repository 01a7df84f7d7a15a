"""Memory accounting: saved bytes against sizes computed from shapes and against an
independent count of the tensors autograd saves; peak above saved."""
from __future__ import annotations

import pytest
import torch

from lstm_bench import get_impl, make_case, register_impl, unregister_impl
from lstm_bench.machine.memory import peak_bytes, saved_bytes

NO_CUDA = "CUDA not available: torch.cuda.is_available() is False on this machine"
IMPLS = ["reference", "vectorised", "autograd", "nn_lstm", "nn_lstm_native"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_vectorised_saves_exactly_its_documented_cache(dtype):
    T, B, I, H = 6, 3, 5, 7
    # gates (T, B, 4H) + h_0..h_T and c_0..c_T (T+1, B, H) each, per the module docstring
    elements = T * B * 4 * H + 2 * (T + 1) * B * H
    item = torch.finfo(dtype).bits // 8
    assert saved_bytes("vectorised", make_case(T, B, I, H, dtype=dtype)) == elements * item


def _independent_saved_bytes(impl: str, case) -> int:
    """Unique storages of what autograd saves plus what the forward returns, less the case's."""
    forward, _ = get_impl(impl).split()
    forward(case)  # warm-up, as saved_bytes does
    saved: list[torch.Tensor] = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        graph = forward(case)
    returned = [graph.output, graph.h_n, graph.c_n]
    case_ptrs = {t.untyped_storage().data_ptr() for t in case.tensors().values()}
    params = {t.untyped_storage().data_ptr() for t in graph.inputs}  # leaves: case views or the module's weights
    storages = {}
    for t in saved + returned:
        s = t.untyped_storage()
        if s.data_ptr() not in case_ptrs | params:
            storages[s.data_ptr()] = s.nbytes()
    return sum(storages.values())


@pytest.mark.parametrize("impl", ["autograd", "nn_lstm_native"])
def test_autograd_paths_match_an_independent_count(impl):
    case = make_case(5, 3, 4, 6)
    assert saved_bytes(impl, case) == _independent_saved_bytes(impl, case)


@pytest.mark.parametrize("impl", IMPLS)
def test_peak_exceeds_saved_exceeds_zero(impl):
    case = make_case(8, 4, 6, 5)
    s, p = saved_bytes(impl, case), peak_bytes(impl, case)
    assert 0 < s < p
    # every path at least holds output (T, B, H) between forward and backward
    assert s >= 8 * 4 * 5 * 4


def test_saved_bytes_grow_linearly_in_T():
    s = [saved_bytes("reference", make_case(T, 2, 3, 4)) for T in (4, 8, 16)]
    assert s[2] - s[1] == 2 * (s[1] - s[0]) > 0


def test_impl_without_split_is_not_implemented():
    register_impl("_no_split_for_memory_test", get_impl("vectorised").fn, devices=("cpu",))
    try:
        with pytest.raises(NotImplementedError, match="_no_split_for_memory_test"):
            saved_bytes("_no_split_for_memory_test", make_case(2, 2, 2, 2))
    finally:
        unregister_impl("_no_split_for_memory_test")


@pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)
def test_cuda_vectorised_saved_bytes():
    T, B, I, H = 6, 3, 5, 7
    case = make_case(T, B, I, H, device="cuda")
    # the caching allocator rounds each block up to 512 bytes
    blocks = [T * B * 4 * H * 4, (T + 1) * B * H * 4, (T + 1) * B * H * 4]
    assert saved_bytes("vectorised", case) == sum(-(-b // 512) * 512 for b in blocks)
    assert peak_bytes("vectorised", case) > saved_bytes("vectorised", case)
