"""FLOP count of one LSTM training step, from the shapes alone.

Counting rule: a GEMM of an (m, k) by a (k, n) matrix costs 2 m k n FLOPs (one
multiply and one add per term), the convention of `torch.utils.flop_counter`.
Elementwise work (gate nonlinearities, the cell update, bias adds, the reductions
that give the bias gradients) is NOT counted: it is O(T B H), against the GEMMs'
O(T B H (I + H)), and how much of it an implementation does (recomputing tanh(c_t), fusing)
is an implementation choice, not part of the problem. Every implementation therefore gets
the same count for the same case, and GFLOP/s compares them on equal terms.

Forward, per layer and direction, over N = T B real steps (N = the sum of the lengths
with variable lengths: padded steps are not part of the problem, whatever a kernel
computes there), with In the layer's input size (I, or D H_out above the first layer),
H_out = P with a projection of size P, else H:
    input projection     2 N In (4H)
    recurrent GEMMs      2 N H_out (4H)
    projection           2 N H P               (with a projection)
Backward (Greff et al. 2017, arXiv:1503.04069): each forward GEMM (m, k) x (k, n) has two
of the same size, one for the gradient of each factor (dx and dW_ih, dr_{t-1} and dW_hh,
dm and dW_hr), so forward+backward = 3 x forward. For one layer, one direction, no
projection: forward = 8 T B H (I + H), forward+backward = 24 T B H (I + H).

A forward-only kernel (declared `gradients=False`) is timed on its forward, and its GFLOP/s
counts the forward alone: `lstm_flops(..., backward=False)` (`TIMED`, `Point.gemm_flops`).

Phases (`phase_flops`): of the backward's two GEMMs per forward GEMM, the one for the data
factor (dx, dr_{t-1}, dm: the backward-data half, cuDNN's cudnnRNNBackwardData) and the one
for the weight (dW_ih, dW_hh, dW_hr: the backward-weights half, cudnnRNNBackwardWeights) each
cost what the forward GEMM did, so backward_data = backward_weights = forward and
backward = 2 x forward.
"""
from __future__ import annotations

from ..core.values import check_int, check_positive_int

PHASES = ("forward", "backward", "backward_data", "backward_weights")
# What a sweep's timed call is: a training step, or the forward alone for a kernel declared
# forward-only (`gradients=False`: an inference engine), whose GFLOP/s counts the forward's FLOPs.
STEP, FORWARD = "forward+backward", "forward"
TIMED = (STEP, FORWARD)


def lstm_flops(T: int, B: int, I: int, H: int, backward: bool, *, num_layers: int = 1, bidirectional: bool = False,
               proj_size: int = 0, steps: int | None = None) -> int:
    """GEMM FLOPs of the forward (backward=False) or forward+backward (True) of one step.

    `steps` is the number of real (t, b) steps, the sum of the lengths (default T * B).
    """
    T, B, I, H = (check_positive_int(n, v) for n, v in (("T", T), ("B", B), ("I", I), ("H", H)))
    L, P = check_positive_int("num_layers", num_layers), check_int("proj_size", proj_size, 0)
    N = T * B if steps is None else check_int("steps", steps, 1)
    D, H_out = (2 if bidirectional else 1), (P or H)
    forward = 0
    for layer in range(L):
        In = I if layer == 0 else D * H_out
        forward += D * (2 * N * 4 * H * (In + H_out) + 2 * N * H * P)
    return 3 * forward if backward else forward



def phase_flops(T: int, B: int, I: int, H: int, *, num_layers: int = 1, bidirectional: bool = False,
                proj_size: int = 0, steps: int | None = None) -> dict[str, int]:
    """GEMM FLOPs of each phase of one step, keyed by `PHASES`: forward F, backward 2F, backward_data F,
    backward_weights F (F = `lstm_flops(..., backward=False)`)."""
    forward = lstm_flops(T, B, I, H, backward=False, num_layers=num_layers, bidirectional=bidirectional,
                         proj_size=proj_size, steps=steps)
    return {"forward": forward, "backward": 2 * forward, "backward_data": forward, "backward_weights": forward}
