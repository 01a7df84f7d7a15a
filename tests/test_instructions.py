"""Instruction counts: which points, and a reason (never a crash) where valgrind is missing.

The counts themselves take ~20 s per collection under callgrind, too slow for the test suite;
their run-to-run variance is measured by `python -m studies.calibration instructions`."""
from __future__ import annotations

import pytest

from lstm_bench import cli
from lstm_bench.bench import instructions
from lstm_bench.bench.grid import Point
from lstm_bench.bench.instructions import (InstructionCount, InstructionsUnavailable, count_instructions,
                                           ineligible_reason)


def test_only_small_cpu_points_of_built_in_implementations():
    assert ineligible_reason(Point("vectorised", 10, 1, 64, 64)) is None
    assert "too big" in ineligible_reason(Point("vectorised", 100, 32, 256, 256))
    assert "too big" in ineligible_reason(Point("vectorised", 500, 1, 4, 4))
    assert "not cuda" in ineligible_reason(Point("vectorised", 10, 1, 64, 64, device="cuda"))
    assert "built-in" in ineligible_reason(Point("my_kernel", 10, 1, 64, 64))


def test_missing_valgrind_is_a_reason_not_a_crash(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(instructions.shutil, "which", lambda name: None)
    reason = instructions.unavailable_reason()
    assert "valgrind is not installed" in reason and "apt-get install valgrind" in reason
    with pytest.raises(InstructionsUnavailable, match="valgrind is not installed"):
        count_instructions(Point("vectorised", 2, 1, 4, 4))
    code = cli.main(["bench", "--instructions", "--impl", "vectorised", "-T", "2", "-B", "1", "-H", "4",
                     "--no-peak", "--out", str(tmp_path / "r.jsonl")])
    err = capsys.readouterr().err
    assert code == 2 and "--instructions: valgrind is not installed" in err and not (tmp_path / "r.jsonl").exists()


def test_the_count_is_the_median_per_call_and_its_spread():
    c = InstructionCount(Point("vectorised", 2, 1, 4, 4), (1000, 1010, 1001), 2)
    assert c.per_call == 1001 and c.spread == pytest.approx(10 / 1001)
