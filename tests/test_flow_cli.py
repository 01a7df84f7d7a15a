"""`lstm-bench flow` on tiny sizes: tables, JSON, PNGs, bad input."""
from __future__ import annotations

import json
import math

import pytest
import torch

import lstm_bench.flow.study as study
from lstm_bench import cli
from lstm_bench.cli.flow import table
from lstm_bench.cli.output import table as cli_table
from lstm_bench.core.strict_json import finite
from lstm_bench.flow.plots import plot_curves
from lstm_bench.flow.study import COMPARISON, FlowSettings, run_config


def main(argv: list[str]) -> int:
    return cli.main(["flow", *argv])


TINY = ["-T", "8", "-H", "4", "-I", "3", "--samples", "3", "--seeds", "2", "--jacobian-steps", "2"]


@pytest.mark.slow  # the whole flow study and its plots (4.2 s): .ci/run runs it, the quick gate does not
def test_writes_tables_json_and_plots(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    threads = torch.get_num_threads()
    assert main([*TINY, "--out-dir", str(tmp_path / "out")]) == 0
    assert torch.get_num_threads() == threads  # restored
    out = capsys.readouterr().out
    for needle in ("RNN (tanh)", "LSTM chrono", "T=1000", str(tmp_path / "out")):
        assert needle in out
    doc = _strict((tmp_path / "out" / "flow.json").read_text())  # strict JSON: no NaN/Infinity
    assert [s["name"] for s in doc["comparison"]][0] == "RNN (tanh)"
    assert len(doc["comparison"][0]["curves"]["x"]["mean"]) == 8
    pngs = sorted(p.name for p in (tmp_path / "out").glob("*.png"))
    assert "models_dx.png" in pngs and "init_memory.png" in pngs and len(pngs) == 7
    assert all((tmp_path / "out" / p).stat().st_size > 10_000 for p in pngs)


def test_json_to_stdout_is_deterministic(tmp_path, capsys):
    docs = []
    for n in range(2):
        assert main([*TINY, "--json", "--no-plots", "--out-dir", str(tmp_path / str(n))]) == 0
        doc = _strict(capsys.readouterr().out)
        doc.pop("seconds")
        docs.append(doc)
    assert docs[0] == docs[1]


@pytest.mark.parametrize("flags", [["--threshold", "0"], ["--threshold", "1.5"], ["--samples", "0"],
                                   ["--seeds", "-1"], ["--loss", "first"]])
def test_bad_flags_exit_2(flags, tmp_path, capsys):
    assert main([*TINY, *flags, "--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert flags[0] in err and len(err.strip().splitlines()) == 1


def test_an_existing_out_dir_is_refused_before_the_work(monkeypatch, tmp_path, capsys):
    (tmp_path / "flow.json").write_text("an earlier run's results")
    monkeypatch.setattr(study, "step_gradients", lambda *a, **k: pytest.fail("the study ran"))
    assert main([*TINY, "--no-plots", "--out-dir", str(tmp_path)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "flow.json").read_text() == "an earlier run's results"


def test_bad_device_is_a_clear_error(tmp_path, capsys):
    assert main([*TINY, "--device", "tpu", "--no-plots", "--out-dir", str(tmp_path)]) == 2
    assert "device" in capsys.readouterr().err


def _strict(text: str):
    def refuse(constant):
        raise ValueError(f"invalid JSON constant {constant}")
    return json.loads(text, parse_constant=refuse)


def test_non_finite_floats_become_valid_json():
    doc = {"a": float("nan"), "b": [1.5, float("inf"), (float("-inf"), 2)],
           "c": {"d": torch.tensor([1.0, float("nan")]), "e": None, "f": "x"}, "g": 3}
    clean = finite(doc)
    assert clean == {"a": "nan", "b": [1.5, "inf", ["-inf", 2]], "c": {"d": [1.0, "nan"], "e": None, "f": "x"},
                     "g": 3}
    assert _strict(json.dumps(clean, allow_nan=False)) == clean
    assert doc["a"] != doc["a"] and math.isinf(doc["b"][1])  # the input is left as it was


def test_table_is_the_cli_table_of_formatted_cells():
    rows = [["RNN", 8.04e-30, None, 0.5], ["LSTM", 1.0, 12345.0, "x"]]
    assert table(["model", "a", "b", "c"], rows) == cli_table(
        ["model", "a", "b", "c"], [["RNN", "8.04e-30", "-", "0.5"], ["LSTM", "1", "1.23e+04", "x"]])


def test_non_finite_gradients_exit_2_with_one_line(monkeypatch, tmp_path, capsys):
    real = study.step_gradients

    def blow_up(model, x, **kwargs):
        grads = real(model, x, **kwargs)
        grads.dx[0] = float("nan")
        return grads

    monkeypatch.setattr(study, "step_gradients", blow_up)
    assert main([*TINY, "--no-plots", "--out-dir", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()  # the folder made before the work is not left behind
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lstm-bench: error: RNN (tanh): non-finite dx norms at seed "
                                               "index 0 in float64")


def test_plot_of_a_missing_gradient_is_a_value_error(tmp_path):
    rnn = run_config(COMPARISON[0], FlowSettings(seq_len=4, hidden_size=3, input_size=2, samples=2, seeds=1))
    with pytest.raises(ValueError, match="no model has 'c' norms"):
        plot_curves([rnn], tmp_path / "c.png", title="t", which="c")
    with pytest.raises(ValueError, match="which must be one of"):
        plot_curves([rnn], tmp_path / "y.png", title="t", which="y")
