"""FlashRNN's LSTM as shipped (lstm_bench.adapters.flashrnn_lstm): its CPU backends, the PyTorch loop
("vanilla", gradients by autograd) and its own hand-written BPTT ("vanilla_fwbw"), pass `check` and the
suite with zero false verdicts; a wrong gate order and a wrong head layout are caught; its CUDA and Triton
backends skip on a machine without CUDA, naming why. Skipped where flashrnn is not installed."""
from __future__ import annotations

import pytest

pytest.importorskip("flashrnn")

from clirun import run  # noqa: E402

from lstm_bench import cli  # noqa: E402
from lstm_bench.adapters.autodiff import autograd_kernel  # noqa: E402
from lstm_bench.adapters.flashrnn_lstm import FEATURES, flashrnn_forward  # noqa: E402
from lstm_bench.adapters.layout import Layout  # noqa: E402
from lstm_bench.conformance.assertions import assert_agrees  # noqa: E402
from lstm_bench.conformance.cases import CaseSpec  # noqa: E402
from lstm_bench.core.devices import available_devices  # noqa: E402
from lstm_bench.core.registry import get_impl  # noqa: E402

CPU_KERNELS = ("flashrnn", "flashrnn_fwbw")
# nn.LSTM's i, f, g, o handed over as i, f, o, z: FlashRNN reads the output gate as the cell input.
flashrnn_ifoz = autograd_kernel(flashrnn_forward("vanilla_fwbw", Layout("ifoz", "out_in", "one")),
                                name="flashrnn_ifoz", features=FEATURES, devices=("cpu",))
# Two heads: FlashRNN's recurrent matrix is block-diagonal per head, so W_hh's off-diagonal blocks are lost.
flashrnn_two_heads = autograd_kernel(flashrnn_forward("vanilla", num_heads=2), name="flashrnn_two_heads",
                                     features=FEATURES, devices=("cpu",))


@pytest.mark.parametrize("name", CPU_KERNELS)
def test_every_feature_at_once_agrees(name):
    # Two layers, both directions, batch_first and lengths in one case, float64: the layout conversion is exact.
    assert_agrees(get_impl(name).fn, CaseSpec(T=6, B=3, I=5, H=4, dtype="float64", num_layers=2,
                                              bidirectional=True, batch_first=True, lengths=(6, 2, 4)))


@pytest.mark.parametrize("kernel", [flashrnn_ifoz, flashrnn_two_heads], ids=lambda k: k.__name__)
def test_a_wrong_gate_order_or_head_layout_is_caught(kernel):
    with pytest.raises(AssertionError, match="FAIL"):
        assert_agrees(kernel, CaseSpec(T=5, B=2, I=3, H=4, dtype="float64"))


@pytest.mark.skipif("cuda" in available_devices(), reason="the CUDA backends run where CUDA is")
@pytest.mark.parametrize("name", ["flashrnn_cuda", "flashrnn_cuda_fused", "flashrnn_triton"])
def test_the_cuda_backends_skip_without_cuda_and_judge_nothing(capsys, name):
    code, out, _ = run(capsys, "check", "--impl", name)
    assert code == 5 and "\n0 passed, 0 failed" in out and "runs on ['cuda'], not on cpu" in out


@pytest.mark.slow
@pytest.mark.parametrize("name", CPU_KERNELS)
def test_check_passes_with_zero_false_verdicts(capsys, name):
    code, out, _ = run(capsys, "check", "--impl", name)
    assert code == 0 and " 0 failed" in out


@pytest.mark.nightly
@pytest.mark.parametrize("name", CPU_KERNELS)
def test_the_suite_passes(name):
    assert cli.main(["test", "--impl", name, "--", "-q"]) == 0
