"""haste's LSTM as shipped (lstm_bench.adapters.haste_lstm): its CPU path passes `check` and the suite with
zero false verdicts; nn.LSTM's gate order handed over unconverted, and haste's output left unmasked at padded
steps (as haste returns it), are caught; its CUDA kernel skips without CUDA. Skipped where haste_pytorch
is not installed."""
from __future__ import annotations

import pytest

pytest.importorskip("haste_pytorch")

from clirun import run  # noqa: E402

from lstm_bench import cli  # noqa: E402
from lstm_bench.adapters.autodiff import autograd_kernel  # noqa: E402
from lstm_bench.adapters.haste_lstm import FEATURES, HASTE, haste, haste_forward, haste_layer  # noqa: E402
from lstm_bench.adapters.layout import Layout  # noqa: E402
from lstm_bench.conformance.assertions import assert_agrees  # noqa: E402
from lstm_bench.conformance.cases import CaseSpec  # noqa: E402
from lstm_bench.core.devices import available_devices  # noqa: E402

# nn.LSTM's i, f, g, o given to haste as they are: haste reads f as g and g as f.
haste_ifgo = autograd_kernel(haste_forward(Layout("ifgo", "in_out", "one")), name="haste_ifgo", features=FEATURES,
                             devices=("cpu",))


def unmasked_forward(x, h0, c0, weights, case):
    """One layer, haste's output as it returns it: steps past each sequence's length not zeroed."""
    hs, h_n, c_n = haste_layer(x, h0[0], c0[0], HASTE.layer(weights, case.config, 0), case.lengths)
    return hs, h_n[None], c_n[None]


haste_unmasked = autograd_kernel(unmasked_forward, name="haste_unmasked", features=("lengths",), devices=("cpu",))


def test_every_feature_at_once_agrees():
    # Two layers, both directions, batch_first and lengths in one case, float64: the layout conversion is exact.
    assert_agrees(haste, CaseSpec(T=6, B=3, I=5, H=4, dtype="float64", num_layers=2, bidirectional=True,
                                  batch_first=True, lengths=(6, 2, 4)))


def test_the_gate_order_unconverted_is_caught():
    with pytest.raises(AssertionError, match="FAIL"):
        assert_agrees(haste_ifgo, CaseSpec(T=5, B=2, I=3, H=4, dtype="float64"))


def test_hastes_unmasked_padding_is_caught_and_its_final_states_are_not_the_cause():
    spec = CaseSpec(T=6, B=3, I=5, H=4, dtype="float64", lengths=(6, 2, 4))
    with pytest.raises(AssertionError) as failed:
        assert_agrees(haste_unmasked, spec)
    rows = {line.split()[0]: line.split()[-1] for line in str(failed.value).splitlines()[3:] if line.strip()}
    # Its output at padded steps (and through d_output there, every gradient) is wrong; its h_n and c_n,
    # taken at each sequence's own last step by haste itself, are right.
    assert rows["output"] == "FAIL" and rows["h_n"] == rows["c_n"] == "PASS"
    assert_agrees(haste_unmasked, CaseSpec(T=6, B=3, I=5, H=4, dtype="float64"))  # no padding: it agrees


@pytest.mark.skipif("cuda" in available_devices(), reason="the CUDA kernel runs where CUDA is")
def test_the_cuda_kernel_skips_without_cuda_and_judges_nothing(capsys):
    code, out, _ = run(capsys, "check", "--impl", "haste_cuda")
    # haste_pytorch_lib (its CUDA extension) is built only where nvcc is: either reason skips every case.
    assert code == 5 and "\n0 passed, 0 failed" in out
    assert "needs haste_pytorch_lib" in out or "runs on ['cuda'], not on cpu" in out


@pytest.mark.slow
def test_check_passes_with_zero_false_verdicts(capsys):
    code, out, _ = run(capsys, "check", "--impl", "haste")
    assert code == 0 and " 0 failed" in out


@pytest.mark.nightly
def test_the_suite_passes():
    assert cli.main(["test", "--impl", "haste", "--", "-q"]) == 0
