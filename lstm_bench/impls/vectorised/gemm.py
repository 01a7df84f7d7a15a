"""Which GEMM the vectorised path calls: torch's BLAS (MKL on the CPU wheels) or oneDNN.

torch's float32 `mm`/`addmm` on the CPU go to MKL, whose speed depends on the CPU
(measured on an AMD EPYC: ~half of oneDNN's GEMM at the LSTM's shapes; on an Intel
CPU, close to it). oneDNN is reachable from Python only through private ops:
`torch.ops.mkldnn._linear_pointwise` (x @ W^T, optionally `.binary` with "add" of a
tensor) with a weight reordered once by `torch.ops.mkldnn._reorder_linear_weight`.
They take float32 (and bfloat16) only, so float64 always stays on torch's BLAS.

- `onednn_status(dtype)`: whether the private ops exist in this torch and give the
  right numbers on a tiny case, checked once per process and dtype (a torch version
  without them falls back, with the reason kept for `Result.backend` and the docs).
- `packed(w, batch, transpose=...)`: the reordered weight, cached across calls.
  The cache holds, per weight tensor, oneDNN's copy of it (same number of elements)
  for as long as the tensor lives (a weak reference; dropped when the tensor is freed
  or modified in place, i.e. when its version counter moves) and at most
  `PACK_CACHE_SIZE` entries. Because the copy exists before a forward starts (after a
  first call), it is not part of the bytes a forward keeps for its backward; it is
  memory held across calls, like nn.LSTM's module, and it is documented as such.
- `linear`, `linear_add`: the oneDNN calls.
- `figures()`: GFLOP/s of torch's BLAS and of oneDNN at given shapes (for the docs).
"""
from __future__ import annotations

import statistics
import weakref
from collections import OrderedDict

import torch

from ...machine import timing  # as a module: the project's one timing loop

PACK_CACHE_SIZE = 16

_status: dict[torch.dtype, tuple[bool, str]] = {}
_packs: "OrderedDict[tuple, tuple[weakref.ref, int, torch.Tensor]]" = OrderedDict()


def blas_name(device: torch.device | str = "cpu") -> str:
    """The library behind torch.mm on `device`: "mkl", "blas" (another CPU BLAS) or "cublas"/"hipblas"."""
    device = torch.device(device)
    if device.type == "cuda":
        return "hipblas" if torch.version.hip else "cublas"
    if device.type != "cpu":
        return device.type
    return "mkl" if torch.backends.mkl.is_available() else "blas"


def _ops():
    """The private oneDNN ops, looked up on each call (AttributeError/RuntimeError if missing)."""
    return (torch.ops.mkldnn._linear_pointwise, torch.ops.mkldnn._linear_pointwise.binary,
            torch.ops.mkldnn._reorder_linear_weight)


def onednn_status(dtype: torch.dtype, device: torch.device | str = "cpu") -> tuple[bool, str]:
    """(usable, why not): oneDNN's linear ops for `dtype` on `device`, checked once per process."""
    if torch.device(device).type != "cpu":
        return False, "oneDNN GEMM is a CPU route"
    if dtype != torch.float32:
        return False, f"oneDNN's GEMM takes float32/bfloat16, not {dtype} (kept on torch's BLAS, exact)"
    if dtype not in _status:
        _status[dtype] = _check(dtype)
    return _status[dtype]


def _check(dtype: torch.dtype) -> tuple[bool, str]:
    if not torch.backends.mkldnn.is_available():
        return False, "torch was built without oneDNN (torch.backends.mkldnn.is_available() is False)"
    try:
        lin, lin_bin, reorder = _ops()
        g = torch.Generator().manual_seed(0)
        x = torch.randn(3, 5, generator=g, dtype=dtype)
        w = torch.randn(8, 5, generator=g, dtype=dtype)
        other = torch.randn(3, 8, generator=g, dtype=dtype)
        wp = reorder(w, 3)
        ok = (torch.allclose(lin(x, wp, None, "none", [], ""), x @ w.T, rtol=1e-4, atol=1e-5)
              and torch.allclose(lin_bin(x, other, wp, None, "add"), x @ w.T + other, rtol=1e-4, atol=1e-5)
              and torch.allclose(lin(x, w, None, "none", [], ""), x @ w.T, rtol=1e-4, atol=1e-5))
    except Exception as e:  # a torch without these private ops, or with another signature
        return False, f"torch.ops.mkldnn linear ops unusable: {type(e).__name__}: {str(e)[:120]}"
    if not ok:
        return False, "torch.ops.mkldnn._linear_pointwise gave wrong numbers on a 3x5x8 check"
    return True, ""


def packed(w: torch.Tensor, batch: int, *, transpose: bool = False) -> torch.Tensor:
    """oneDNN's reordered copy of `w` (of `w.T` with `transpose`), for `linear(x, ·)` = x @ w^T (x @ w)."""
    key = (id(w), batch, transpose)
    hit = _packs.get(key)
    if hit is not None:
        ref, version, wp = hit
        if ref() is w and w._version == version:
            _packs.move_to_end(key)
            return wp
        del _packs[key]
    src = w.T.contiguous() if transpose else w.contiguous()
    wp = torch.ops.mkldnn._reorder_linear_weight(src, batch)
    _packs[key] = (weakref.ref(w, lambda _r, k=key: _packs.pop(k, None)), w._version, wp)
    while len(_packs) > PACK_CACHE_SIZE:
        _packs.popitem(last=False)
    return wp


def clear_packs() -> None:
    _packs.clear()


def linear(x: torch.Tensor, wp: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """x @ W^T (+ bias) through oneDNN, W given as `packed(W, ...)` or as a dense (out, in) tensor."""
    return torch.ops.mkldnn._linear_pointwise(x, wp, bias, "none", [], "")


def linear_add(x: torch.Tensor, other: torch.Tensor, wp: torch.Tensor) -> torch.Tensor:
    """x @ W^T + other through oneDNN, in one call."""
    return torch.ops.mkldnn._linear_pointwise.binary(x, other, wp, None, "add")


def figures(shapes: list[tuple[int, int, int]], *, repeats: int = 7) -> list[dict]:
    """GFLOP/s of float32 x (M, K) @ W^T (K -> N) through torch.mm (MKL), torch.addmm, and oneDNN
    (packed weight), timed interleaved on this CPU, one row per (M, K, N)."""
    rows = []
    ok, why = onednn_status(torch.float32)
    for M, K, N in shapes:
        g = torch.Generator().manual_seed(0)
        x, w = torch.randn(M, K, generator=g), torch.randn(N, K, generator=g)
        bias = torch.randn(N, generator=g)
        fns = {"mm": lambda: torch.mm(x, w.T), "addmm": lambda: torch.addmm(bias, x, w.T)}
        if ok:
            wp = torch.ops.mkldnn._reorder_linear_weight(w, M)
            fns["onednn"] = lambda: linear(x, wp, bias)
        times = {k: [] for k in fns}
        for f in fns.values():
            f()
        for _ in range(repeats):
            for k, f in fns.items():
                times[k] += timing.time_fn(f, device="cpu", repeats=1, warmup=0)
        flop = 2 * M * K * N
        row = {"M": M, "K": K, "N": N}
        for k in fns:
            med = statistics.median(times[k])
            row[k] = {"seconds": med, "gflops": flop / med / 1e9}
        if not ok:
            row["onednn"] = {"seconds": None, "gflops": None, "why": why}
        rows.append(row)
    return rows
