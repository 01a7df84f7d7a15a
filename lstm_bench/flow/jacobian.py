r"""Exact one-step Jacobians of the LSTM, split into the paths of the equations.

With z_t = x_t W^T + h_{t-1} U^T + b, gates i, f, o = sigmoid, g = tanh (U_k is the
gate-k slice of weight_hh, (H, H)), c_t = f * c_{t-1} + i * g, h_t = o * tanh(c_t),
and diag(a) U meaning a[:, None] * U:

State Jacobian, with (c_{t-1}, h_{t-1}) independent inputs (the 2H x 2H matrix
d(c_t, h_t) / d(c_{t-1}, h_{t-1})):

    dc_t/dc_{t-1} = diag(f_t)                                   direct (the highway)
    dc_t/dh_{t-1} = diag(g i (1-i)) U_i                          via i
                  + diag(c_{t-1} f (1-f)) U_f                    via f
                  + diag(i (1-g^2)) U_g                          via g
    dh_t/dc_{t-1} = diag(o tanh'(c_t)) diag(f_t)                 through c_t
    dh_t/dh_{t-1} = diag(tanh(c_t) o (1-o)) U_o                  via o
                  + diag(o tanh'(c_t)) dc_t/dh_{t-1}             through c_t

Cell-to-cell Jacobian along a sequence, where h_{t-1} = o_{t-1} tanh(c_{t-1}) is itself
a function of c_{t-1} (o_{t-1} depends on h_{t-2} and x_{t-1} only): the seed's
"dc_t/dc_{t-1} = f_t + indirect",

    dc_t/dc_{t-1} = diag(f_t) + dc_t/dh_{t-1} diag(o_{t-1} (1 - tanh(c_{t-1})^2))

whose indirect part is the sum of the via-i, via-f and via-g terms, each multiplied on
the right by D_{t-1} = diag(o_{t-1} tanh'(c_{t-1})). tanh'(c) = 1 - tanh(c)^2.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..core.contract import Case, gate_slices
from ..impls import vectorised

VIA = ("i", "f", "g")


def _split(gates: torch.Tensor) -> tuple[torch.Tensor, ...]:
    if gates.dim() != 2 or gates.shape[1] % 4:
        raise ValueError(f"gates must be (B, 4H) activated i, f, g, o, got shape {tuple(gates.shape)}")
    return gates.chunk(4, dim=1)


def _gate_rows(weight_hh: torch.Tensor) -> dict[str, torch.Tensor]:
    H = weight_hh.shape[1]
    return {k: weight_hh[rows] for k, rows in gate_slices(H).items()}


def cell_from_hidden_terms(gates: torch.Tensor, c_prev: torch.Tensor, weight_hh: torch.Tensor) -> dict[str, torch.Tensor]:
    """dc_t/dh_{t-1} split by gate: {"i", "f", "g"} -> (B, H, H).

    gates (B, 4H) are step t's activated i, f, g, o; c_prev (B, H); weight_hh (4H, H).
    """
    i, f, g, _ = _split(gates)
    U = _gate_rows(weight_hh)
    return {
        "i": (g * i * (1 - i)).unsqueeze(-1) * U["i"],
        "f": (c_prev * f * (1 - f)).unsqueeze(-1) * U["f"],
        "g": (i * (1 - g * g)).unsqueeze(-1) * U["g"],
    }


def state_jacobian_terms(gates: torch.Tensor, c_prev: torch.Tensor, c: torch.Tensor,
                         weight_hh: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every term of d(c_t, h_t)/d(c_{t-1}, h_{t-1}), each (B, H, H), keyed "<out><-<in> <path>".

    gates (B, 4H) activated at step t, c_prev = c_{t-1} and c = c_t (B, H), weight_hh (4H, H).
    """
    i, f, g, o = _split(gates)
    U = _gate_rows(weight_hh)
    tanh_c = torch.tanh(c)
    dh_dc = o * (1 - tanh_c * tanh_c)  # dh_t/dc_t, diagonal
    via = cell_from_hidden_terms(gates, c_prev, weight_hh)
    terms = {"c<-c direct": torch.diag_embed(f)}
    terms.update({f"c<-h via {k}": via[k] for k in VIA})
    terms["h<-c through c"] = torch.diag_embed(dh_dc * f)
    terms["h<-h via o"] = (tanh_c * o * (1 - o)).unsqueeze(-1) * U["o"]
    terms.update({f"h<-h via {k} through c": dh_dc.unsqueeze(-1) * via[k] for k in VIA})
    return terms


def state_jacobian(gates: torch.Tensor, c_prev: torch.Tensor, c: torch.Tensor, weight_hh: torch.Tensor) -> torch.Tensor:
    """d(c_t, h_t)/d(c_{t-1}, h_{t-1}) as (B, 2H, 2H), state order (c, h): the sum of the terms."""
    terms = state_jacobian_terms(gates, c_prev, c, weight_hh)
    block = {}
    for key, value in terms.items():
        out_in = key.split(" ")[0]
        block[out_in] = block.get(out_in, 0) + value
    top = torch.cat([block["c<-c"], block["c<-h"]], dim=-1)
    bottom = torch.cat([block["h<-c"], block["h<-h"]], dim=-1)
    return torch.cat([top, bottom], dim=-2)


def cell_jacobian_terms(gates: torch.Tensor, c_prev: torch.Tensor, o_prev: torch.Tensor,
                        weight_hh: torch.Tensor) -> dict[str, torch.Tensor]:
    """dc_t/dc_{t-1} along a sequence split into {"direct", "i", "f", "g"}, each (B, H, H).

    direct = diag(f_t); "k" = (via-k term of dc_t/dh_{t-1}) diag(o_{t-1} tanh'(c_{t-1})).
    """
    _, f, _, _ = _split(gates)
    tanh_prev = torch.tanh(c_prev)
    d_prev = (o_prev * (1 - tanh_prev * tanh_prev)).unsqueeze(-2)  # right-multiplying by a diagonal
    terms = {"direct": torch.diag_embed(f)}
    terms.update({k: m * d_prev for k, m in cell_from_hidden_terms(gates, c_prev, weight_hh).items()})
    return terms


@dataclass
class JacobianProfile:
    """Spectral norms of the terms of dc_t/dc_{t-1} at `steps` (1-based t), mean over samples.

    `ratio` is ||direct|| / ||indirect|| per step (mean over samples of the per-sample ratio).
    """

    steps: list[int]
    norms: dict[str, list[float]] = field(default_factory=dict)
    ratio: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        """Medians over the steps of each norm and of the ratio."""
        med = lambda v: float(torch.tensor(v, dtype=torch.float64).median())  # noqa: E731
        out = {f"{k} (median)": med(v) for k, v in self.norms.items()}
        out["direct/indirect (median)"] = med(self.ratio)
        out["direct/indirect (min)"] = float(min(self.ratio))
        return out

    def to_dict(self) -> dict:
        return {"steps": self.steps, "norms": self.norms, "ratio": self.ratio, "summary": self.summary()}


def decompose_sequence(case: Case, *, samples: int | None = None, steps: int | None = None) -> JacobianProfile:
    """Per-step spectral norms of direct, via-i/f/g, indirect (their sum) and total dc_t/dc_{t-1}
    along `case`'s forward pass, for the first `samples` batch rows, at every step t = 2..T or at
    `steps` steps spread evenly over them (the SVDs cost: ~5 per step and sample)."""
    T, B, _, _ = case.sizes
    if T < 2:
        raise ValueError(f"the cell-to-cell Jacobian needs seq_len >= 2, got {T}")
    if samples is not None:
        if samples <= 0:
            raise ValueError(f"samples must be positive, got {samples}")
        B = min(B, samples)
    at = list(range(1, T))  # 0-based index of c_t in the cache, i.e. Jacobian of step t+1
    if steps is not None:
        if steps <= 0:
            raise ValueError(f"steps must be positive, got {steps}")
        if steps < len(at):
            at = sorted({round(1 + k * (T - 2) / max(steps - 1, 1)) for k in range(steps)})
    cache = vectorised.forward(case).layers[(0, 0)]  # gates (T, B, 4H) activated, r and c (T+1, B, H)
    w_hh = case.weights["weight_hh_l0"]
    names = ("direct", "i", "f", "g", "indirect", "total")
    profile = JacobianProfile(steps=[t + 1 for t in at], norms={k: [] for k in names})
    for t in at:  # Jacobian of c_{t+1} w.r.t. c_t, 1-based step t+1
        gates, c_prev = cache.gates[t, :B], cache.c[t, :B]
        o_prev = cache.gates[t - 1, :B].chunk(4, dim=1)[3]
        terms = cell_jacobian_terms(gates, c_prev, o_prev, w_hh)
        terms["indirect"] = terms["i"] + terms["f"] + terms["g"]
        terms["total"] = terms["direct"] + terms["indirect"]
        # The direct term is diagonal: its spectral norm is max f, no SVD needed.
        norm = {k: torch.linalg.matrix_norm(m, ord=2) for k, m in terms.items() if k != "direct"}
        norm["direct"] = terms["direct"].diagonal(dim1=-2, dim2=-1).abs().amax(dim=-1)
        for k in names:
            profile.norms[k].append(float(norm[k].mean()))
        profile.ratio.append(float((norm["direct"] / norm["indirect"]).mean()))
    return profile
