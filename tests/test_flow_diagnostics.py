"""GradientDiagnostics: what it captures, its flags, and that it removes its hooks."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from lstm_bench.flow.diagnostics import GradientDiagnostics


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 4)
        self.gru = nn.GRU(4, 5)
        self.head = nn.Linear(5, 1)

    def forward(self, x):
        y, _ = self.lstm(x)
        y, _ = self.gru(y)
        return self.head(y[-1]).sum()


def _hooks(m: nn.Module) -> int:
    return sum(len(s._forward_hooks) + len(s._backward_hooks) for s in m.modules())


def test_captures_norms_and_removes_hooks():
    torch.manual_seed(0)
    net = Net()
    x = torch.randn(6, 2, 3, requires_grad=True)
    with GradientDiagnostics(net) as diag:
        assert _hooks(net) == 4
        net(x).backward()
    assert _hooks(net) == 0 and not diag.attached
    net(x).backward()  # after exit: nothing more recorded
    report = diag.report()
    assert [(r.layer, r.call) for r in report.records] == [("lstm", 0), ("gru", 0)]
    # the LSTM's input gradient is dL/dx itself
    assert report.records[0].norms["input"] == pytest.approx(float(x.grad.norm()) / 2, rel=1e-6)
    # Net discards both layers' (h_n, c_n): no gradient reaches them, so their hooks never fire,
    # and a GRU has no cell state at all
    for record in report.records:
        assert record.norms["output"] > 0 and record.norms["input"] > 0
        assert record.norms["h_n"] is None and record.norms["c_n"] is None
    assert json.loads(report.to_json())["records"][1]["layer"] == "gru"
    assert "lstm" in str(report)


def test_state_gradients_and_flags():
    lstm = nn.LSTM(3, 4)
    x = torch.randn(5, 2, 3, requires_grad=True)
    with GradientDiagnostics(lstm, vanishing=1e-7, exploding=1e-3) as diag:
        out, (h_n, c_n) = lstm(x)
        (out.sum() + 2 * c_n.sum()).backward()
    norms = diag.report().records[0].norms
    assert norms["c_n"] == pytest.approx(2 * (2 * 4) ** 0.5)  # dL/dc_n = 2 everywhere, (1, 2, 4)
    assert norms["output"] == pytest.approx((5 * 2 * 4) ** 0.5)
    assert diag.report().exploding_found and not diag.report().vanishing_found


def test_backward_after_exit_records_nothing():
    """A backward on outputs kept from inside the block, run after it: the tensor hooks on
    h_n and c_n are gone too, so the record stays as it was."""
    lstm = nn.LSTM(3, 4)
    x = torch.randn(5, 2, 3, requires_grad=True)
    with GradientDiagnostics(lstm) as diag:
        out, (h_n, c_n) = lstm(x)
    (out.sum() + h_n.sum() + 2 * c_n.sum()).backward()
    assert x.grad is not None  # the backward did run
    [record] = diag.report().records
    assert record.norms == dict.fromkeys(("output", "input", "h_n", "c_n"))


def test_hooks_removed_even_on_error():
    lstm = nn.LSTM(3, 4)
    with pytest.raises(RuntimeError, match="boom"):
        with GradientDiagnostics(lstm):
            raise RuntimeError("boom")
    assert _hooks(lstm) == 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="no recurrent layers"):
        GradientDiagnostics(nn.Sequential(nn.Linear(2, 2)))
    with pytest.raises(ValueError, match="vanishing must be below exploding"):
        GradientDiagnostics(nn.LSTM(2, 2), vanishing=1.0, exploding=0.5)
