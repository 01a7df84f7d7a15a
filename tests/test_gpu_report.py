"""The CUDA rows of a results file: launch share, floor, phases against the peak, clocks and throttling,
from a synthetic file (the numbers are chosen, so every expected figure is worked out by hand)."""
from __future__ import annotations

from pathlib import Path

import pytest

from lstm_bench.bench.gpu_report import gpu_notes, gpu_rows
from lstm_bench.bench.grid import Point
from lstm_bench.bench.records import Measurement, PointRecord
from lstm_bench.bench.results import ResultsFile
from lstm_bench.cli.bench import gpu_table
from lstm_bench.machine.gpu_timing import GpuFigures

# T=100, B=64, I=H=512: forward 26.84 GFLOP, backward 53.69, each backward half 26.84 (bench/flops.py)
ANCHOR = Point("nn_lstm", 100, 64, 512, 512, device="cuda")
PEAK = 50_000.0  # GFLOP/s, chosen


def _file(*records: PointRecord) -> ResultsFile:
    env = {"torch": "x", "threads": 1, "gpu": {"name": "NVIDIA H200"}, "matmul_peak_gflops": {"cuda/float32": PEAK}}
    return ResultsFile(Path("r.jsonl"), {"env": env, "grid": {}, "settings": {}, "version": 2}, list(records))


def _record(**gpu) -> PointRecord:
    fig = GpuFigures(**{"cache": "cold", "l2_flush_bytes": 50 * 2 ** 20, "graph_s": (8e-3, 8e-3),
                        "backward_s": (2.0e-3,), "backward_data_s": (1.2e-3,), "backward_weights_s": (0.8e-3,),
                        "launch_s": 5e-6, "clock": {"sm_clock_mhz": [1980, 1200], "temperature_c": [40, 44],
                                                    "throttled": 1, "reason": ""}, **gpu})
    return PointRecord(ANCHOR, "ok", Measurement((1.0e-3,) * 3, (10e-3,) * 3, gpu=fig))


def test_a_cuda_row_works_out_launch_share_floor_and_phase_peaks():
    cpu = PointRecord(Point("vectorised", 10, 1, 8, 8), "ok", Measurement((1.0,), (2.0,)))
    (row,) = gpu_rows(_file(_record(), cpu))  # the CPU point has no row
    assert row.cache == "cold" and row.eager_s == 10e-3 and row.graph_s == 8e-3
    assert row.launch_share == pytest.approx(0.2)  # 1 - 8 / 10
    assert row.floor_s == pytest.approx(200 * 5e-6) and row.over_floor == pytest.approx(10.0)  # 2 T launches
    forward = 8 * 100 * 64 * 512 * 1024
    assert row.phase_pct["forward"] == pytest.approx(100 * forward / 1e-3 / 1e9 / PEAK)
    assert row.phase_pct["backward"] == pytest.approx(100 * 2 * forward / 2e-3 / 1e9 / PEAK)
    assert row.phase_pct["backward_weights"] == pytest.approx(100 * forward / 0.8e-3 / 1e9 / PEAK)
    assert row.pct_peak == pytest.approx(100 * 3 * forward / 10e-3 / 1e9 / PEAK)
    assert row.sm_clock_mhz == (1200, 1980) and row.temperature_c == 44 and row.throttled == 1


def test_an_autograd_weight_half_is_the_backward_less_its_data_half():
    from lstm_bench.machine.gpu_timing import WEIGHTS_DERIVED

    (row,) = gpu_rows(_file(_record(backward_weights_s=(), phases_reason=WEIGHTS_DERIVED)))
    assert row.phases_s["backward_weights"] == pytest.approx(2.0e-3 - 1.2e-3)
    assert any(n.startswith("bwd-wt of nn_lstm: the weight half is not timed alone") for n in gpu_notes([row]))
    (noisy,) = gpu_rows(_file(_record(backward_s=(1.0e-3,), backward_weights_s=(), phases_reason=WEIGHTS_DERIVED)))
    assert noisy.phases_s["backward_weights"] is None  # data half above the whole: no negative figure


def test_empty_cells_are_explained():
    rec = _record(graph_s=(), graph_reason="cannot be captured in a CUDA graph: RuntimeError: sync",
                  backward_data_s=(), backward_weights_s=(), phases_reason="no split",
                  clock={"reason": "nvidia-ml-py is not installed"})
    rows = gpu_rows(_file(rec))
    assert rows[0].graph_s is None and rows[0].launch_share is None and rows[0].phase_pct["backward_data"] is None
    notes = gpu_notes(rows)
    assert any("graph '-' for nn_lstm: cannot be captured" in n for n in notes)
    assert any("no split" in n for n in notes) and any("nvidia-ml-py" in n for n in notes)
    text = gpu_table(_file(rec))
    assert "nn_lstm" in text and "cannot be captured" in text


def test_throttled_points_are_flagged_and_a_cpu_file_has_no_gpu_table():
    assert any(n.startswith("THROTTLED: nn_lstm|T=100") for n in gpu_notes(gpu_rows(_file(_record()))))
    assert gpu_table(_file(PointRecord(Point("vectorised", 10, 1, 8, 8), "ok", Measurement((1.0,), (2.0,))))) is None


def test_bench_refuses_a_bad_cache_mode_in_one_line(monkeypatch, capsys, tmp_path):
    import torch

    from lstm_bench import cli

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # the check runs where CUDA points would
    monkeypatch.setenv("LSTM_BENCH_CUDA_CACHE", "lukewarm")
    code = cli.main(["bench", "--device", "cuda", "--impl", "vectorised", "-T", "2", "-B", "1", "-H", "4",
                     "--out", str(tmp_path / "r.jsonl"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "LSTM_BENCH_CUDA_CACHE" in err and "lukewarm" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r.jsonl").exists()
