"""`lstm-bench test`: the conformance suite on a kernel named on the command line, pytest's exit status."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lstm_bench import cli
from lstm_bench.cli.args import Parser
from lstm_bench.cli.test import add_parser, pytest_argv

KERNELS = Path(__file__).parent / "kernels"


pytestmark = pytest.mark.usefixtures("forget_loaded_kernels")


@pytest.mark.slow  # the whole suite, twice (4.8 s): .ci/run runs it, the quick gate does not
def test_the_suite_on_an_outside_kernel_passes_and_on_a_broken_one_fails(capsys):
    assert cli.main(["test", "--impl", f"{KERNELS / 'numpy_lstm.py'}:numpy_lstm", "--depth", "quick",
                     "--", "-q"]) == 0
    assert "failed" not in capsys.readouterr().out
    assert cli.main(["test", "--impl", f"{KERNELS / 'broken.py'}:batch_tile_above_b32", "--depth", "quick",
                     "--", "-q", "-k", "agrees"]) == 1
    assert "FAILED" in capsys.readouterr().out


def test_a_kernel_that_cannot_be_loaded_is_pytests_usage_error(capsys):
    assert cli.main(["test", "--impl", "no_such_module_xyz:f"]) == 4
    assert "cannot import module 'no_such_module_xyz'" in capsys.readouterr().err


def test_arguments_after_the_double_dash_go_to_pytest():
    parser = Parser(prog="lstm-bench")
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["test", "--impl", "a:b,c:d", "--depth", "nightly", "--seed", "7", "--", "-x", "-n", "2"])
    argv = pytest_argv(args)
    assert argv[:2] == ["--pyargs", "lstm_bench.conformance"]
    assert argv[argv.index("--lstm-depth") + 1] == "nightly" and argv[argv.index("--lstm-seed") + 1] == "7"
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--lstm-impl"] == ["a:b", "c:d"]
    assert argv[-3:] == ["-x", "-n", "2"]


@pytest.mark.slow  # the whole suite (2.1 s): .ci/run runs it, the quick gate does not
@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA: the kernel declares CUDA alone")
def test_a_run_that_judged_nothing_is_not_a_pass(capsys):
    # every test skips (the kernel declares CUDA, there is none): pytest says 0, the contract says 5
    assert cli.main(["test", "--impl", f"{KERNELS / 'broken.py'}:cuda_only", "--depth", "quick", "--", "-q"]) == 5
    assert "nothing was judged" in capsys.readouterr().err
    assert cli.main(["test", "--impl", "vectorised", "--device", "cuda", "--depth", "quick", "--", "-q"]) == 5
