"""`python -m lstm_bench.flow` / `lstm-bench flow` on tiny sizes: tables, JSON, PNGs, bad input."""
from __future__ import annotations

import json

import pytest
import torch

from lstm_bench.flow.__main__ import main

TINY = ["-T", "8", "-H", "4", "-I", "3", "--samples", "3", "--seeds", "2", "--jacobian-steps", "2"]


def test_writes_tables_json_and_plots(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    threads = torch.get_num_threads()
    assert main([*TINY, "--out-dir", str(tmp_path / "out")]) == 0
    assert torch.get_num_threads() == threads  # restored
    out = capsys.readouterr().out
    for needle in ("RNN (tanh)", "LSTM chrono", "f=" if False else "T=1000", str(tmp_path / "out")):
        assert needle in out
    doc = json.loads((tmp_path / "out" / "flow.json").read_text())
    assert [s["name"] for s in doc["comparison"]][0] == "RNN (tanh)"
    assert len(doc["comparison"][0]["curves"]["x"]["mean"]) == 8
    pngs = sorted(p.name for p in (tmp_path / "out").glob("*.png"))
    assert "models_dx.png" in pngs and "init_memory.png" in pngs and len(pngs) == 7
    assert all((tmp_path / "out" / p).stat().st_size > 10_000 for p in pngs)


def test_json_to_stdout_is_deterministic(tmp_path, capsys):
    docs = []
    for n in range(2):
        assert main([*TINY, "--json", "--no-plots", "--out-dir", str(tmp_path / str(n))]) == 0
        doc = json.loads(capsys.readouterr().out)
        doc.pop("seconds")
        docs.append(doc)
    assert docs[0] == docs[1]


@pytest.mark.parametrize("flags", [["--threshold", "0"], ["--threshold", "1.5"], ["--samples", "0"],
                                   ["--seeds", "-1"], ["--loss", "first"]])
def test_bad_flags_exit_2(flags, tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        main([*TINY, *flags, "--out-dir", str(tmp_path)])
    assert err.value.code == 2
    assert flags[0] in capsys.readouterr().err


def test_bad_device_is_a_clear_error(tmp_path, capsys):
    assert main([*TINY, "--device", "tpu", "--no-plots", "--out-dir", str(tmp_path)]) == 2
    assert "device" in capsys.readouterr().err
