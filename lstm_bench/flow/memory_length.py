"""Effective memory length: how far back from the loss the gradient still reaches.

For per-step norms n_t = ||dL/dx_t|| (t = 1..T, loss at t = T), the effective memory of
one sample is the longest lag k in 0..T-1 with

    n_{T-k} >= threshold * max_t n_t

(the longest lag, not the count of steps above the threshold as in the seed: the two
differ when the curve is not monotone). It equals T - 1 when even the farthest step
passes, i.e. the sequence is too short to see the end of the memory ("censored").
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..core.values import check_positive_int
from .models import X_SEED_OFFSET, check_single_layer
from .norms import step_gradients

DEFAULT_THRESHOLD = 0.01


def check_threshold(threshold: object) -> float:
    """`threshold` as a float in (0, 1]; ValueError otherwise."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold) \
            or not 0 < threshold <= 1:
        raise ValueError(f"threshold must be a number in (0, 1], got {threshold!r}")
    return float(threshold)


def effective_memory(norms: torch.Tensor, threshold: float = DEFAULT_THRESHOLD) -> torch.Tensor:
    """Longest lag k with norms[T-1-k] >= threshold * max, per sample.

    norms: (T,) or (T, S), step t-1 at row t-1, loss at the last row. Returns () or (S,) int64.
    """
    threshold = check_threshold(threshold)
    if not isinstance(norms, torch.Tensor) or norms.dim() not in (1, 2) or norms.shape[0] == 0:
        raise ValueError(f"norms must be a (T,) or (T, S) tensor with T >= 1, got "
                         f"{tuple(norms.shape) if isinstance(norms, torch.Tensor) else type(norms).__name__}")
    if not bool(torch.isfinite(norms).all()):
        raise ValueError("norms contain NaN or Inf")
    T = norms.shape[0]
    peak = norms.amax(dim=0)
    above = norms >= threshold * peak  # (T, ...)
    lag = torch.arange(T - 1, -1, -1, device=norms.device)  # lag of row t is T-1-t
    if norms.dim() == 2:
        lag = lag[:, None]
    return torch.where(above, lag, torch.zeros_like(lag)).amax(dim=0)


@dataclass
class MemoryLength:
    """Effective memory over samples: mean, std, min, max, and the fraction censored at T - 1."""

    mean: float
    std: float
    min: int
    max: int
    censored: float
    seq_len: int
    threshold: float

    @classmethod
    def of(cls, lags: torch.Tensor, seq_len: int, threshold: float) -> "MemoryLength":
        lags = lags.flatten().to(torch.float64)
        return cls(float(lags.mean()), float(lags.std(unbiased=False)), int(lags.min()), int(lags.max()),
                   float((lags >= seq_len - 1).to(torch.float64).mean()), seq_len, threshold)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def measure_effective_memory(model: nn.Module, *, seq_len: int = 100, samples: int = 50, seed: int = 0,
                             threshold: float = DEFAULT_THRESHOLD, loss: str = "last") -> MemoryLength:
    """Effective memory of `model` (a one-layer nn.RNN/GRU/LSTM) over `samples` inputs x ~ N(0, 1)
    of length `seq_len`, drawn from a generator seeded with seed + models.X_SEED_OFFSET (the input
    stream, as in the studies: independent of make_model's weights of the same seed); loss on the
    last step's output."""
    threshold = check_threshold(threshold)
    samples = check_positive_int("samples", samples)
    seq_len = check_positive_int("seq_len", seq_len)
    model = check_single_layer(model)
    dtype, device = model.weight_ih_l0.dtype, model.weight_ih_l0.device
    gen = torch.Generator().manual_seed(seed + X_SEED_OFFSET)
    x = torch.randn(seq_len, samples, model.input_size, dtype=torch.float64, generator=gen)
    grads = step_gradients(model, x.to(dtype=dtype, device=device), loss=loss)
    return MemoryLength.of(effective_memory(grads.norms()["x"], threshold), seq_len, threshold)
