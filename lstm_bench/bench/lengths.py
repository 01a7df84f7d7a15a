"""Named distributions of sequence lengths, for benchmark points with variable lengths.

A benchmark point names its lengths by distribution rather than listing them, so that its
key stays short and its lengths (hence its FLOPs) depend only on T and B:

- "padded-batch": one batch of a corpus padded to its longest sequence. The longest has
  length T; the others are log-normally shorter, as sentence lengths in text corpora are
  roughly log-normal: L_b = clamp(round(T * exp(-0.6 |z_b|)), 1, T) with z_b ~ N(0, 1),
  so the median sequence is 2/3 of T and about one in eight is under 40 % of it. Drawn with a
  fixed seed: the same (T, B) always gives the same lengths.
"""
from __future__ import annotations

import torch

from ..core.values import check_positive_int

PADDED_BATCH = "padded-batch"
DISTRIBUTIONS = (PADDED_BATCH,)
_SEED = 20260  # fixed: a point's lengths must not change with the case's seed


def draw_lengths(name: str, T: int, B: int) -> torch.Tensor:
    """The lengths (B,) int64 on the CPU of distribution `name` for a batch padded to T steps."""
    T, B = check_positive_int("T", T), check_positive_int("B", B)
    if name != PADDED_BATCH:
        raise ValueError(f"unknown length distribution {name!r}; known: {', '.join(DISTRIBUTIONS)}")
    z = torch.randn(B, generator=torch.Generator().manual_seed(_SEED), dtype=torch.float64)
    lengths = torch.clamp(torch.round(T * torch.exp(-0.6 * z.abs())), 1, T).to(torch.int64)
    lengths[0] = T  # the batch is padded to its longest sequence
    return lengths
