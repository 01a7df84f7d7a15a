"""The layout helper (lstm_bench.adapters.layout) and the autograd bridge (adapters.autodiff): expected
values typed from the layouts' definitions, the adjoint identity, and a stand-in library in ONNX's layout
judged by the suite's assertions, correct and with its gate order converted wrongly."""
from __future__ import annotations

import pytest
import torch

from lstm_bench.adapters.layout import (LayerWeights, Layout, at_own_last_step, from_gate_order, gate_order,
                                        mask_padded, reverse_within_lengths, state_index, time_major, to_gate_order)
from lstm_bench.conformance.assertions import assert_agrees, assert_conforms
from lstm_bench.conformance.cases import CaseSpec, configurations, features_alone
from lstm_bench.core.contract import LSTMConfig
from tests.kernels.foreign_lstm import foreign_lstm, foreign_lstm_ifog


def test_gate_orders_are_read_with_their_aliases_and_bad_ones_are_refused():
    assert gate_order("iofc") == ("i", "o", "f", "g")
    assert gate_order("IFZO") == ("i", "f", "g", "o")
    for bad in ("iifo", "ifg", "ifgx", "ifgoo"):
        with pytest.raises(ValueError, match="gate order"):
            gate_order(bad)


def test_a_gate_permutation_moves_whole_blocks_and_its_inverse_undoes_it():
    t = torch.arange(8.0)  # H = 2: i = [0, 1], f = [2, 3], g = [4, 5], o = [6, 7]
    assert to_gate_order(t, "iofc").tolist() == [0, 1, 6, 7, 2, 3, 4, 5]
    assert to_gate_order(t, "ifog").tolist() == [0, 1, 2, 3, 6, 7, 4, 5]
    m = torch.arange(24.0).view(8, 3)
    assert torch.equal(from_gate_order(to_gate_order(m, "gofi"), "gofi"), m)
    assert torch.equal(to_gate_order(m.t(), "iofc", dim=1), to_gate_order(m, "iofc").t())


def test_convert_transposes_permutes_and_fuses_as_declared():
    H, I = 2, 3
    w_ih, w_hh = torch.randn(4 * H, I), torch.randn(4 * H, H)
    b_ih, b_hh = torch.randn(4 * H), torch.randn(4 * H)
    rows = [0, 1, 6, 7, 2, 3, 4, 5]  # i, o, f, g rows of nn.LSTM's i, f, g, o
    w = Layout("iofc", "in_out", "one").convert(w_ih, w_hh, b_ih, b_hh)
    assert torch.equal(w.w_ih, w_ih[rows].t()) and torch.equal(w.w_hh, w_hh[rows].t())
    assert w.b_hh is None and torch.allclose(w.bias, (b_ih + b_hh)[rows])
    same = Layout().convert(w_ih, w_hh, b_ih, b_hh)
    assert torch.equal(same.w_ih, w_ih) and torch.equal(same.b_hh, b_hh)
    with pytest.raises(ValueError, match="weights must be one of"):
        Layout(weights="transposed")
    with pytest.raises(ValueError, match="bias must be one of"):
        Layout(bias="fused")


@pytest.mark.parametrize("layout", [Layout("iofc", "in_out", "one"), Layout("gofi"), Layout("ifgo", "in_out")])
def test_grads_back_is_the_adjoint_of_convert(layout):
    """<convert(W), G> = <W, grads_back(G)> for every W, G: what a kernel returning gradients in its own
    layout needs to give them by nn.LSTM's names."""
    H, I, P = 3, 4, 2
    w = [torch.randn(4 * H, I, dtype=torch.float64), torch.randn(4 * H, P, dtype=torch.float64),
         torch.randn(4 * H, dtype=torch.float64), torch.randn(4 * H, dtype=torch.float64),
         torch.randn(P, H, dtype=torch.float64)]
    out = layout.convert(*w)
    g = LayerWeights(*(None if t is None else torch.randn_like(t) for t in
                       (out.w_ih, out.w_hh, out.b_ih, out.b_hh, out.w_hr)))
    lhs = sum((a * b).sum() for a, b in zip((out.w_ih, out.w_hh, out.b_ih, out.b_hh, out.w_hr),
                                            (g.w_ih, g.w_hh, g.b_ih, g.b_hh, g.w_hr)) if a is not None)
    rhs = sum((a * b).sum() for a, b in zip(w, layout.grads_back(g)))
    assert torch.allclose(lhs, rhs, rtol=1e-12)


def test_stacked_puts_the_directions_first():
    config = LSTMConfig(3, 2, bidirectional=True)
    weights = {k: torch.randn(s) for k, s in config.weight_shapes().items()}
    w = Layout("iofc").stacked(weights, config, 0)
    assert w.w_ih.shape == (2, 8, 3)
    assert torch.equal(w.w_hh[1], to_gate_order(weights["weight_hh_l0_reverse"], "iofc"))


def test_sequence_helpers_give_nn_lstms_semantics():
    seq = torch.arange(4.0).view(4, 1, 1).expand(4, 3, 1).clone()  # (T=4, B=3, 1): step t holds t
    lengths = torch.tensor([4, 1, 3])
    assert reverse_within_lengths(seq, lengths)[:, :, 0].t().tolist() == [[3, 2, 1, 0], [0, 1, 2, 3], [2, 1, 0, 3]]
    assert torch.equal(reverse_within_lengths(reverse_within_lengths(seq, lengths), lengths), seq)
    assert at_own_last_step(seq, lengths)[:, 0].tolist() == [3, 0, 2]
    assert at_own_last_step(seq, None)[:, 0].tolist() == [3, 3, 3]
    assert mask_padded(seq + 1, lengths)[:, :, 0].t().tolist() == [[1, 2, 3, 4], [1, 0, 0, 0], [1, 2, 3, 0]]
    x = torch.randn(2, 5, 3)
    assert time_major(x, True).shape == (5, 2, 3) and time_major(x, False) is x
    assert state_index(LSTMConfig(1, 1, num_layers=3, bidirectional=True), 2, 1) == 5


def test_a_library_in_another_layout_agrees_in_every_configuration():
    # Each feature alone and the catalogue's combined configurations (layers, both directions, projection,
    # batch_first, lengths), through the layout helper (stack_layers) and autograd: zero false verdicts.
    cases = features_alone("quick") + configurations("default")
    assert {k for c in cases for k, v in vars(c).items() if v} >= {"num_layers", "bidirectional", "proj_size",
                                                                   "batch_first", "lengths"}
    assert assert_conforms(foreign_lstm, cases)


def test_a_wrong_gate_order_in_the_conversion_is_caught():
    with pytest.raises(AssertionError, match="FAIL"):
        assert_agrees(foreign_lstm_ifog, CaseSpec(T=5, B=2, I=3, H=4, dtype="float64"))
