"""`lstm-bench check` as the quick look: a catalogue that catches the bugs real kernels have,
skips (with the reason) what a kernel does not support, streams its results, keeps them on Ctrl-C."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from clirun import run


BROKEN = Path(__file__).parent / "kernels" / "broken.py"


pytestmark = pytest.mark.usefixtures("forget_loaded_kernels")


def test_the_default_run_covers_tile_boundaries_and_long_memory(capsys):
    code, out, _ = run(capsys, "check", "--impl", "vectorised")
    assert code == 0
    ids = re.findall(r"^(T\d+-B\d+-I\d+-H\d+-\S+)\s+vectorised", out, re.M)
    assert len(ids) >= 24  # a few dozen cases
    sizes = [tuple(int(v) for v in re.match(r"T(\d+)-B(\d+)-I(\d+)-H(\d+)", i).groups()) for i in ids]
    assert max(H for *_, H in sizes) >= 256 and max(I for _, _, I, _ in sizes) >= 256
    assert max(B for _, B, _, _ in sizes) >= 64 and max(T for T, *_ in sizes) >= 300
    assert any("fb5" in i for i in ids)  # long memory: forget gate near 1
    assert {H % 2 for *_, H in sizes} == {0, 1}  # not only powers of two


@pytest.mark.parametrize("kernel", ["remainder_tile_above_h64", "batch_tile_above_b32", "input_loop_bound_h",
                                    "window_40", "bfloat16_inside", "caches_weights_by_shape", "mutates_c0",
                                    "nan_gradient", "nondeterministic", "batch_first_reshaped", "bfloat16_result"])
def test_the_default_run_catches_each_bug_class(capsys, kernel):
    code, out, _ = run(capsys, "check", "--impl", f"{BROKEN}:{kernel}")
    assert code == 1, out[-2000:]
    assert re.search(r"reproduce: lstm-bench check --impl \S+ -T \d+", out)  # the failing case, ready to rerun
    # caught by its verdict, not by a crash of the mutant (window_40 once raised on every case and passed here)
    # (a ValueError is the harness refusing a result in the wrong dtype: bfloat16_result's verdict)
    assert not set(re.findall(r": (\w+Error): ", out)) - {"ValueError"}, out[-2000:]


def test_the_run_ends_with_a_case_run_again_and_a_declared_nondeterminism_passes(capsys):
    # 1 ulp that flips from call to call: only the repeat at the end sees it
    code, out, _ = run(capsys, "check", "--impl", f"{BROKEN}:nondeterministic")
    assert code == 1 and re.search(r"again\s+nondeterministic .*FAIL \(.*different bits in d_weight_hh_l0", out)
    code, out, _ = run(capsys, "check", "--impl", f"{BROKEN}:nondeterministic_declared")
    assert code == 0 and re.search(r"again\s+nondeterministic_declared .*PASS", out)


def test_a_kernel_declaring_one_feature_meets_fixed_cases_of_it(capsys):
    # batch_first alone (FlashRNN's, Flax's, Keras' layout): caught by a fixed case, not only by random ones
    code, out, _ = run(capsys, "check", "--impl", f"{BROKEN}:batch_first_reshaped")
    assert code == 1 and re.search(r"T7-B4-I5-H6-float32-bf-s\d+\s+batch_first_reshaped .*FAIL", out)


def test_the_reproduce_line_reruns_the_users_kernel_from_its_file(capsys):
    code, out, _ = run(capsys, "check", "--impl", f"{BROKEN}:batch_tile_above_b32")
    assert code == 1
    line = re.search(r"reproduce: (lstm-bench check [^\n]*)", out).group(1)
    assert f"{BROKEN}:batch_tile_above_b32" in line  # the file, not the bare function name
    again, out, err = run(capsys, *shlex.split(line)[1:])  # as a user pastes it, in a fresh command
    assert again == 1 and "unknown implementation" not in err and "FAIL" in out


def test_an_unsupported_case_is_skipped_with_the_reason_never_passed(capsys):
    code, out, err = run(capsys, "check", "--impl", "autograd", "-T", "3", "--dtype", "bfloat16")
    assert code == 5 and "SKIP (implementation 'autograd' computes in ['float32', 'float64'], not in bfloat16)" in out
    assert "nothing was checked" in err and "0 passed, 0 failed, 1 skipped" in out
    # no yardstick: a low-precision case with too few elements a tensor is not judged either
    code, out, _ = run(capsys, "check", "--impl", "vectorised", "-T", "3", "-H", "4", "--dtype", "bfloat16")
    assert code == 5 and "SKIP (a torch.bfloat16 case is judged against the vendor's error only from H = 8" in out


def test_stress_presets(capsys):
    code, out, _ = run(capsys, "check", "--impl", "vectorised", "--stress", "long-memory", "-B", "2", "-H", "8",
                       "-I", "4")
    assert code == 0 and "T300-B2-I4-H8-float32-fb5-s0" in out
    code, out, _ = run(capsys, "check", "--impl", "vectorised", "--stress", "saturated", "-T", "5")
    assert code == 0 and "ws10" in out


def test_ctrl_c_keeps_and_prints_what_finished(capsys, tmp_path, monkeypatch):
    (tmp_path / "stops.py").write_text(
        "from lstm_bench import get_impl\n"
        "calls = []\n"
        "def stops_at_third(case):\n"
        "    calls.append(1)\n"
        "    if len(calls) == 3:\n"
        "        raise KeyboardInterrupt\n"
        "    return get_impl('vectorised').fn(case)\n")
    code, out, err = run(capsys, "check", "--impl", f"{tmp_path / 'stops.py'}:stops_at_third")
    assert code == 130 and "interrupted" in err
    assert "2 passed, 0 failed, 0 skipped" in out  # the two cases that finished, summarised


def test_a_length_beyond_the_policys_measured_range_is_refused_unless_asked(capsys):
    code, _, err = run(capsys, "check", "--impl", "vectorised", "-T", "10000", "-B", "2", "-H", "8", "--summary")
    assert code == 2 and "longer than the tolerance policy was measured on (T <= 1000)" in err
    assert err.count("\n") == 1
    code, out, _ = run(capsys, "check", "--impl", "vectorised", "-T", "1001", "-B", "1", "-I", "1", "-H", "1",
                       "--beyond-measured", "--summary")
    assert code == 0 and "1 failed" not in out
