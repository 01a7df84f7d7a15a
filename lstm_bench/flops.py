"""FLOP count of one LSTM training step, from the shapes alone.

Counting rule: a GEMM of an (m, k) by a (k, n) matrix costs 2 m k n FLOPs (one
multiply and one add per term), the convention of `torch.utils.flop_counter`.
Elementwise work (gate nonlinearities, the cell update, bias adds, the reductions
that give the bias gradients) is NOT counted: it is O(T B H), against the GEMMs'
O(T B H (I + H)), and how much of it an implementation does (recomputing tanh(c_t), fusing)
is an implementation choice, not part of the problem. Every implementation therefore gets
the same count for the same case, and GFLOP/s compares them on equal terms.

Forward, T steps of gates = x_t W_ih^T + h_{t-1} W_hh^T:
    input projection     2 (T B) I (4H)
    recurrent GEMMs      2 (T B) H (4H)          total 8 T B H (I + H)
Backward (Greff et al. 2017, arXiv:1503.04069), dz the (T B, 4H) gate gradients:
    dx   = dz W_ih       2 (T B) (4H) I
    dh   = dz_t W_hh     2 (T B) (4H) H          (t = 1 included: it gives d_h0)
    dW_ih = dz^T x       2 (4H) (T B) I
    dW_hh = dz^T h       2 (4H) (T B) H          total 16 T B H (I + H)
"""
from __future__ import annotations

from .values import check_positive_int


def lstm_flops(T: int, B: int, I: int, H: int, backward: bool) -> int:
    """GEMM FLOPs of the forward (backward=False) or forward+backward (True) of one step.

    forward = 8 T B H (I + H); forward+backward = 3 x forward = 24 T B H (I + H).
    """
    T, B, I, H = (check_positive_int(n, v) for n, v in (("T", T), ("B", B), ("I", I), ("H", H)))
    forward = 2 * T * B * 4 * H * (I + H)
    return 3 * forward if backward else forward


def gflops(T: int, B: int, I: int, H: int, seconds: float) -> float:
    """Achieved GFLOP/s of one forward+backward taking `seconds` (NaN for a non-positive time)."""
    return lstm_flops(T, B, I, H, backward=True) / seconds / 1e9 if seconds > 0 else float("nan")
