"""Per-step gradients dL/dx_t, dL/dh_t, dL/dc_t of a recurrent model, and their norms.

The loss is a weighted sum of the outputs h_1..h_T with zero initial states:

    L = sum_t <h_t, d_output_t>,  d_output_t = 1 for t = T only ("last", the seed's
        loss on the last step's output) or for every t ("every")

Samples are the batch: the loss is a sum over the batch, so the gradient of sample b
depends on sample b alone, and one backward gives every sample's curve.

For an LSTM, dL/dh_t and dL/dc_t are read straight from a manual BPTT implementation
(`lstm_bench.impls.vectorised` or `reference`, `state_grads=True`), whose backward loop
computes them; for RNN and GRU from autograd, with every h_t a node of the graph.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..core.contract import Case, LSTMConfig
from ..impls import reference, vectorised
from .models import check_single_layer, gru_step, kind_of, layer_weights, rnn_step

LOSSES = ("last", "every")
MANUAL_IMPLS = {"vectorised": vectorised.run, "reference": reference.run}


def check_loss(loss: object) -> str:
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    return loss


def upstream(like: torch.Tensor, hidden_size: int, loss: str) -> torch.Tensor:
    """d_output (T, B, H) of the loss: ones at t = T ("last") or at every t ("every")."""
    T, B = like.shape[:2]
    d_output = like.new_zeros(T, B, hidden_size)
    if check_loss(loss) == "last":
        d_output[-1] = 1.0
    else:
        d_output[:] = 1.0
    return d_output


@dataclass
class StepGrads:
    """Gradients of L at every step: dx (T, B, I), dh (T, B, H), dc (T, B, H) or None (no cell state)."""

    kind: str
    dx: torch.Tensor
    dh: torch.Tensor
    dc: torch.Tensor | None

    def norms(self) -> dict[str, torch.Tensor]:
        """Euclidean norms over the feature axis, (T, B) each: "x", "h" and (LSTM) "c"."""
        out = {"x": self.dx.norm(dim=-1), "h": self.dh.norm(dim=-1)}
        if self.dc is not None:
            out["c"] = self.dc.norm(dim=-1)
        return out


def lstm_case(model: nn.LSTM, x: torch.Tensor, loss: str = "last") -> Case:
    """The contract's Case for `model` on x (T, B, I): zero initial states, d_output from `loss`,
    d_h_n = d_c_n = 0 (so L is exactly the loss on the outputs)."""
    w_ih, w_hh, b_ih, b_hh = layer_weights(model, x)
    T, B, I = x.shape
    H = w_hh.shape[1]
    zeros = x.new_zeros(1, B, H)
    weights = {"weight_ih_l0": w_ih, "weight_hh_l0": w_hh, "bias_ih_l0": b_ih, "bias_hh_l0": b_hh}
    return Case(x=x.detach(), h0=zeros, c0=zeros.clone(), weights=weights, d_output=upstream(x, H, loss),
                d_h_n=zeros.clone(), d_c_n=zeros.clone(), config=LSTMConfig(I, H))


def step_gradients(model: nn.Module, x: torch.Tensor, *, loss: str = "last", impl: str = "vectorised") -> StepGrads:
    """dL/dx_t, dL/dh_t (and dL/dc_t for an LSTM) for t = 1..T; x is (T, B, I), time-major.

    `impl` picks the manual BPTT implementation for LSTMs ("vectorised" or "reference").
    """
    model = check_single_layer(model)
    check_loss(loss)
    if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[2] != model.input_size:
        raise ValueError(f"x must be a (T, B, {model.input_size}) tensor, got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    kind = kind_of(model)
    if kind == "LSTM":
        if impl not in MANUAL_IMPLS:
            raise ValueError(f"impl must be one of {sorted(MANUAL_IMPLS)}, got {impl!r}")
        result = MANUAL_IMPLS[impl](lstm_case(model, x, loss), state_grads=True)
        return StepGrads(kind, result.grads["x"], result.d_h, result.d_c)
    return _autograd_step_grads(model, x, loss)


def _autograd_step_grads(model: nn.RNNBase, x: torch.Tensor, loss: str) -> StepGrads:
    w = layer_weights(model, x)
    H = model.hidden_size
    d_output = upstream(x, H, loss)
    with torch.enable_grad():
        x = x.detach().requires_grad_()
        h = x.new_zeros(x.shape[1], H)
        hs = []
        for x_t in x:
            if isinstance(model, nn.GRU):
                h = gru_step(x_t, h, *w)
            else:
                h = rnn_step(x_t, h, *w, nonlinearity=model.nonlinearity)
            hs.append(h)
        L = sum((h_t * d_t).sum() for h_t, d_t in zip(hs, d_output))
        # Gradients w.r.t. intermediate nodes are totals: every path from h_t to L is summed.
        grads = torch.autograd.grad(L, [x, *hs])
    return StepGrads(kind_of(model), grads[0], torch.stack(grads[1:]), None)
