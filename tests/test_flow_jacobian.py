"""The exact Jacobian decomposition of lstm_bench.flow.jacobian against autograd, in float64.

The step function here is written from the LSTM equations independently of the code under
test; each term is also checked alone, by letting only its gate see h_{t-1}."""
from __future__ import annotations

import math

import pytest
import torch
from torch.autograd.functional import jacobian

from lstm_bench import make_case
from lstm_bench.flow.jacobian import cell_jacobian_terms, decompose_sequence, state_jacobian, state_jacobian_terms

H, I, B = 5, 3, 3
TOL = 1e-10


def _setup(seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, dtype=torch.float64, generator=g)  # noqa: E731
    return dict(x=r(B, I), h=r(B, H), c=r(B, H), w_ih=r(4 * H, I) * 0.7, w_hh=r(4 * H, H) * 0.7, b=r(4 * H) * 0.5)


def _pre(p, h_for_gate):
    """Pre-activations z_k = x W_k^T + h_k U_k^T + b_k, where gate k sees h_for_gate[k]."""
    z = []
    for n, k in enumerate("ifgo"):
        sl = slice(n * H, (n + 1) * H)
        z.append(p["x"] @ p["w_ih"][sl].T + h_for_gate[k] @ p["w_hh"][sl].T + p["b"][sl])
    return z


def _step(p, c_prev, h_for_gate):
    zi, zf, zg, zo = _pre(p, h_for_gate)
    i, f, g, o = torch.sigmoid(zi), torch.sigmoid(zf), torch.tanh(zg), torch.sigmoid(zo)
    c = f * c_prev + i * g
    return c, o * torch.tanh(c)


def _gates(p):
    zi, zf, zg, zo = _pre(p, dict.fromkeys("ifgo", p["h"]))
    gates = torch.cat([torch.sigmoid(zi), torch.sigmoid(zf), torch.tanh(zg), torch.sigmoid(zo)], dim=1)
    c, _ = _step(p, p["c"], dict.fromkeys("ifgo", p["h"]))
    return gates, c


def test_state_jacobian_equals_autograd():
    p = _setup()
    gates, c = _gates(p)
    ours = state_jacobian(gates, p["c"], c, p["w_hh"])  # (B, 2H, 2H), order (c, h)

    def fn(c_prev, h_prev):
        c_t, h_t = _step(p, c_prev, dict.fromkeys("ifgo", h_prev))
        return torch.cat([c_t, h_t], dim=1)

    jc, jh = jacobian(fn, (p["c"], p["h"]))  # each (B, 2H, B, H)
    for b in range(B):
        truth = torch.cat([jc[b, :, b], jh[b, :, b]], dim=1)
        assert torch.allclose(ours[b], truth, atol=TOL, rtol=0), (ours[b] - truth).abs().max()
    assert not torch.allclose(ours, torch.zeros_like(ours))


@pytest.mark.parametrize("gate", ["i", "f", "g"])
def test_each_path_into_c_alone(gate):
    """The via-k term equals the Jacobian of c_t when only gate k sees h_{t-1}."""
    p = _setup(1)
    gates, c = _gates(p)
    term = state_jacobian_terms(gates, p["c"], c, p["w_hh"])[f"c<-h via {gate}"]

    def fn(h_var):
        hs = dict.fromkeys("ifgo", p["h"])
        hs[gate] = h_var
        return _step(p, p["c"], hs)[0]

    j = jacobian(fn, p["h"])
    for b in range(B):
        assert torch.allclose(term[b], j[b, :, b], atol=TOL, rtol=0)


def test_direct_term_is_diag_f_and_via_o_alone():
    p = _setup(2)
    gates, c = _gates(p)
    terms = state_jacobian_terms(gates, p["c"], c, p["w_hh"])
    f = torch.sigmoid(_pre(p, dict.fromkeys("ifgo", p["h"]))[1])
    assert torch.allclose(terms["c<-c direct"], torch.diag_embed(f), atol=TOL, rtol=0)

    def fn(h_var):  # only o sees h_{t-1}: dh_t/dh_{t-1} via o
        hs = dict.fromkeys("ifgo", p["h"])
        hs["o"] = h_var
        return _step(p, p["c"], hs)[1]

    j = jacobian(fn, p["h"])
    for b in range(B):
        assert torch.allclose(terms["h<-h via o"][b], j[b, :, b], atol=TOL, rtol=0)


def test_cell_to_cell_jacobian_equals_autograd():
    """dc_t/dc_{t-1} with h_{t-1} = o_{t-1} tanh(c_{t-1}): direct + via i, f, g."""
    p = _setup(3)
    g = torch.Generator().manual_seed(9)
    o_prev = torch.sigmoid(torch.randn(B, H, dtype=torch.float64, generator=g))
    p["h"] = o_prev * torch.tanh(p["c"])  # consistent with c_{t-1}
    gates, _ = _gates(p)
    terms = cell_jacobian_terms(gates, p["c"], o_prev, p["w_hh"])
    ours = sum(terms.values())

    def fn(c_prev):
        h_prev = o_prev * torch.tanh(c_prev)
        return _step(p, c_prev, dict.fromkeys("ifgo", h_prev))[0]

    j = jacobian(fn, p["c"])
    for b in range(B):
        assert torch.allclose(ours[b], j[b, :, b], atol=TOL, rtol=0), (ours[b] - j[b, :, b]).abs().max()
    # the indirect part is not negligible here, so dropping it would fail the check above
    indirect = terms["i"] + terms["f"] + terms["g"]
    assert float(indirect.abs().max()) > 1e-3


def test_decompose_sequence_total_matches_autograd_norm():
    case = make_case(6, 2, I, H, dtype=torch.float64, seed=4)
    prof = decompose_sequence(case)
    assert prof.steps == [2, 3, 4, 5, 6]
    # Independent: spectral norm of autograd's dc_3/dc_2 of the first sample, rolling the cell forward.
    w = case.weights
    b = w["bias_ih_l0"] + w["bias_hh_l0"]
    h, c = case.h0[0, :1], case.c0[0, :1]
    p = dict(w_ih=w["weight_ih_l0"], w_hh=w["weight_hh_l0"], b=b)
    for t in range(2):  # c_1, c_2 and o_2
        p["x"] = case.x[t, :1]
        o = torch.sigmoid(_pre(p, dict.fromkeys("ifgo", h))[3])
        c, h = _step(p, c, dict.fromkeys("ifgo", h))
    p["x"] = case.x[2, :1]
    j = jacobian(lambda cp: _step(p, cp, dict.fromkeys("ifgo", o * torch.tanh(cp)))[0], c)[0, :, 0]
    truth = float(torch.linalg.matrix_norm(j, ord=2))
    # prof averages over the batch; recompute with one sample
    one = decompose_sequence(case, samples=1)
    assert math.isclose(one.norms["total"][1], truth, rel_tol=1e-9)
    assert all(math.isfinite(r) and r > 0 for r in prof.ratio)


def test_decompose_sequence_rejects_bad_arguments():
    case = make_case(1, 2, I, H, dtype=torch.float64)
    with pytest.raises(ValueError, match="seq_len >= 2"):
        decompose_sequence(case)
    with pytest.raises(ValueError, match="samples"):
        decompose_sequence(make_case(3, 2, I, H, dtype=torch.float64), samples=0)
