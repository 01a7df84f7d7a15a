"""The forget gate's part in gradient flow: f_t along a sequence, products of f over spans,
and the idealised highway decay f^k.

Along the direct path alone (dropping the indirect terms, see `jacobian`), the gradient
that reaches c_{T-k} from c_T is scaled by the span product

    P_k = prod_{j=T-k+1}^{T} f_j        (P_0 = 1), which for a constant f is f^k.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

from ..core.contract import Case, gate_slice
from ..impls import vectorised

DECAY_F = (0.5, 0.9, 0.95, 0.99, 0.999)
DECAY_T = (100, 500, 1000)
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
QUANTILE_LIMIT = 2 ** 24  # the most values torch.quantile accepts


def simulate_gradient_decay(f: float | Sequence[float] | torch.Tensor, seq_len: int) -> torch.Tensor:
    """Gradient left after k = 0..seq_len steps of the direct path, (seq_len + 1,) float64.

    g_0 = 1, g_k = g_{k-1} * f_k, by repeated multiplication as the seed simulates it; f is
    a constant in [0, 1] (then g_k = f^k) or a sequence of seq_len per-step values.
    """
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 0:
        raise ValueError(f"seq_len must be a non-negative int, got {seq_len!r}")
    fs = torch.as_tensor(f, dtype=torch.float64).flatten()
    if fs.numel() == 1:
        fs = fs.expand(seq_len)
    if fs.numel() != seq_len:
        raise ValueError(f"f must be one value or seq_len={seq_len} values, got {fs.numel()}")
    if not bool(((fs >= 0) & (fs <= 1)).all()):
        raise ValueError(f"forget-gate values must lie in [0, 1], got min {float(fs.min())}, max {float(fs.max())}")
    g = torch.empty(seq_len + 1, dtype=torch.float64)
    g[0] = 1.0
    for k in range(seq_len):
        g[k + 1] = g[k] * fs[k]
    return g


def steps_to_fall(f: float, level: float = 0.01) -> float:
    """Smallest k with f^k < level: floor(ln(level) / ln(f)) + 1 (inf for f = 1)."""
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    if not 0 <= f <= 1:
        raise ValueError(f"f must lie in [0, 1], got {f!r}")
    if f == 1:
        return math.inf
    if f == 0:
        return 1
    return math.floor(math.log(level) / math.log(f)) + 1


def decay_table(fs: Sequence[float] = DECAY_F, lengths: Sequence[int] = DECAY_T) -> list[dict]:
    """One row per f: f^T for each T in `lengths` (simulated), and the steps to fall below 1e-2."""
    rows = []
    for f in fs:
        g = simulate_gradient_decay(f, max(lengths))
        row = {"f": f, **{f"T={T}": float(g[T]) for T in lengths}, "steps to 1e-2": steps_to_fall(f)}
        rows.append(row)
    return rows


def forget_values(case: Case) -> torch.Tensor:
    """f_t for t = 1..T of `case`'s forward pass, (T, B, H)."""
    H = case.sizes[3]
    return vectorised.forward(case).layers[(0, 0)].gates[:, :, gate_slice("f", H)].clone()


def span_products(f: torch.Tensor) -> torch.Tensor:
    """P_k = prod of f over the k steps ending at t = T, for k = 0..T-1, per unit: (T, B, H).

    f is (T, B, H); computed as exp of a reversed cumulative sum of log f (no underflow
    in the sum; exp underflows to 0 only below ~1e-308 in float64).
    """
    logs = torch.log(f.to(torch.float64)).flip(0).cumsum(0)  # sum over the last k+1 steps
    return torch.cat([torch.ones_like(logs[:1]), logs[:-1].exp()], dim=0)


def quantile_sample(flat: torch.Tensor, limit: int = QUANTILE_LIMIT) -> torch.Tensor:
    """`flat` itself if it has at most `limit` values, else every k-th value with the smallest k that
    leaves at most `limit`: an even subsample over the whole tensor (first to last step of a
    time-major one), never a prefix."""
    n = flat.numel()
    return flat if n <= limit else flat[::-(-n // limit)]


def forget_stats(f: torch.Tensor) -> dict:
    """Distribution of f (T, B, H): overall quantiles (over every value, or an even subsample of
    at most 2**24 of them), mean per step, and span products."""
    flat = f.flatten().to(torch.float64)
    sample = quantile_sample(flat)
    P = span_products(f)
    return {
        "quantiles": {f"q{int(100 * q):02d}": float(torch.quantile(sample, q)) for q in QUANTILES},
        "mean": float(flat.mean()),
        "mean_per_step": f.to(torch.float64).mean(dim=(1, 2)).tolist(),
        # log10 of the geometric mean over units: what a typical unit's highway keeps after k steps
        "span_product_log10_geomean": (P.clamp_min(1e-300).log10().mean(dim=(1, 2))).tolist(),
        "span_product_mean": P.mean(dim=(1, 2)).tolist(),
    }
