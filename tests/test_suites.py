"""Named shape suites (`bench --suite`) and the leaderboard (`bench --leaderboard`, `report --leaderboard`).

The suites' expected shapes are typed here from their sources (the paths and commits in
lstm_bench/bench/suites.py), not read from the code under test. The leaderboard's gate: the
fastest *passing* implementation is rank 1; a failing one, however fast, is never ranked."""
from __future__ import annotations

import itertools
import json

import pytest
import torch
from clirun import run

from lstm_bench.bench.results import load, make_header
from lstm_bench.bench.suites import SUITES, suite_grid
from lstm_bench.bench.sweep import grid_dict
from lstm_bench.cli.args import EXIT_FAIL, EXIT_NOTHING, EXIT_OK, EXIT_USAGE
from lstm_bench.machine.timing import THREADS_ENV
from lstm_bench.report.leaderboard import FAIL, PASS, SKIPPED, UNJUDGED, entries, leaderboard_rows

# baidu-research/DeepBench code/kernels/rnn_problems.h, training_set, the "lstm" rows: (hidden, batch, timesteps)
DEEPBENCH_LSTM_TRAINING = [
    (512, 16, 25), (512, 32, 25), (512, 64, 25), (512, 128, 25),
    (1024, 16, 25), (1024, 32, 25), (1024, 64, 25), (1024, 128, 25),
    (2048, 16, 25), (2048, 32, 25), (2048, 64, 25), (2048, 128, 25),
    (4096, 16, 25), (4096, 32, 25), (4096, 64, 25), (4096, 128, 25),
    (1536, 8, 50), (1536, 16, 50), (1536, 32, 50),
    (256, 16, 150), (256, 32, 150), (256, 64, 150),
]
# NX-AI/flashrnn flashrnn/speed_experiments/kernel_speed_benchmark.py: the three experiments' axes
FLASHRNN_HEAD_DIM = {"B": 16, "T": 1024, "DH": (16, 32, 64, 128, 256, 768)}
FLASHRNN_BATCH = {"T": 1024, "DH": (64, 768), "B": (2, 8, 16, 32, 64, 128, 256)}
FLASHRNN_SEQ = {"B": 16, "DH": (64, 768), "T": (256, 512, 1024, 2048)}


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    monkeypatch.setenv(THREADS_ENV, "1")
    monkeypatch.setenv("LSTM_BENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("LSTM_BENCH_CPU_GFLOP_LIMIT", "20")


def shapes(name):
    return set(SUITES[name].shapes())


def test_deepbench_is_the_lstm_rows_of_its_training_set_with_input_size_equal_to_hidden():
    assert shapes("deepbench") == {(T, B, H, H, "plain") for H, B, T in DEEPBENCH_LSTM_TRAINING}
    assert len(SUITES["deepbench"].shapes()) == 22


def test_fastrnns_is_T100_B64_I512_H512():
    assert shapes("fastrnns") == {(100, 64, 512, 512, "plain")}  # pytorch benchmarks/fastrnns/bench.py defaults


def test_flashrnn_is_the_nn_lstm_baseline_of_its_three_experiments():
    want = {(FLASHRNN_HEAD_DIM["T"], FLASHRNN_HEAD_DIM["B"], dh, dh, "plain") for dh in FLASHRNN_HEAD_DIM["DH"]}
    want |= {(FLASHRNN_BATCH["T"], b, dh, dh, "plain") for dh, b in itertools.product(FLASHRNN_BATCH["DH"],
                                                                                       FLASHRNN_BATCH["B"])}
    want |= {(t, FLASHRNN_SEQ["B"], dh, dh, "plain") for dh, t in itertools.product(FLASHRNN_SEQ["DH"],
                                                                                     FLASHRNN_SEQ["T"])}
    assert shapes("flashrnn") == want and len(want) == 24  # the shared B 16, T 1024 shapes are one point each


def test_kernelbench_is_its_four_level3_lstm_problems():
    # 35_LSTM, 36_LSTMHn, 37_LSTMCn: batch 10, seq 512, input 128, hidden 256, 6 layers; 38: the same, bidirectional
    assert shapes("kernelbench") == {(512, 10, 128, 256, "L=6"), (512, 10, 128, 256, "L=6+bi")}


def test_every_suite_docstring_names_its_source_file():
    sources = {"deepbench": "code/kernels/rnn_problems.h", "fastrnns": "benchmarks/fastrnns/bench.py",
               "flashrnn": "flashrnn/speed_experiments/kernel_speed_benchmark.py",
               "kernelbench": "KernelBench/level3/38_LSTMBidirectional.py"}
    assert set(SUITES) == set(sources)
    for name, path in sources.items():
        assert path in SUITES[name].doc


def test_a_suite_keeps_its_shapes_on_every_device_and_fixes_them():
    grid = suite_grid(["fastrnns"]).replace(impls=("vectorised",))
    assert {p.device for p in grid.points()} == {"cpu", "cuda"}
    with pytest.raises(ValueError, match="a suite fixes its shapes: T"):
        grid.replace(T=(10,))
    with pytest.raises(ValueError, match="unknown suite 'nope'; known: deepbench"):
        suite_grid(["nope"])


# --- the command line -----------------------------------------------------------------------------

def test_bench_suite_selects_the_shapes_and_skips_the_too_big_ones_with_the_reason(tmp_path, capsys):
    out = tmp_path / "r.jsonl"
    code, stdout, err = run(capsys, "bench", "--suite", "fastrnns,kernelbench", "--impl", "vectorised", "--device",
                            "cpu", "--no-peak", "--no-progress", "--out", out)
    assert code == EXIT_NOTHING, err
    recs = load(out).records
    assert {(r.point.T, r.point.B, r.point.I, r.point.H, r.point.variant.label) for r in recs} == \
        {(100, 64, 512, 512, "plain"), (512, 10, 128, 256, "L=6"), (512, 10, 128, 256, "L=6+bi")}
    assert all(r.status == "skipped" and "GFLOP" in r.reason for r in recs)
    assert load(out).grid["suites"] == ["fastrnns", "kernelbench"]
    assert "skipped 3 point(s): too slow" in stdout


def test_bench_suite_errors_are_one_line_exit_2(tmp_path, capsys):
    for argv, says in ((["--suite", "nope"], "--suite: unknown suite 'nope'; known: deepbench, fastrnns"),
                       (["--suite", "fastrnns", "-T", "3"], "--suite fixes the shapes: -T cannot be given"),
                       (["--suite", "fastrnns", "--quick"], "--suite and --quick both name the grid")):
        code, _, err = run(capsys, "bench", *argv, "--out", tmp_path / "r.jsonl")
        assert code == EXIT_USAGE and says in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "r.jsonl").exists()


def test_bench_suite_list_and_help_name_every_suite(capsys):
    code, stdout, _ = run(capsys, "bench", "--suite", "list")
    assert code == EXIT_OK and [line.split()[0] for line in stdout.splitlines()] == list(SUITES)
    with pytest.raises(SystemExit):
        run(capsys, "bench", "--help")
    text = " ".join(capsys.readouterr().out.split())
    assert all(name in text for name in SUITES) and "--leaderboard" in text


# --- the leaderboard ------------------------------------------------------------------------------

POINT = {"T": 10, "B": 2, "I": 4, "H": 4, "device": "cpu", "dtype": "float32"}


def _ok(impl, fb, bound=0.5, point=POINT, **measurement):
    m = {"forward_s": [], "forward_backward_s": list(fb), **measurement}
    if bound is not None:
        m["worst_err_bound"] = bound
    return {"kind": "point", "point": dict(point, impl=impl), "status": "ok", "measurement": m}


def _file(path, records, grid=None):
    header = make_header({"torch": torch.__version__, "threads": 1, "cpu": "test", "cpu_count": 2},
                         grid or {"impls": ["x"]}, {})
    path.write_text("".join(json.dumps(r) + "\n" for r in [header] + records))
    return path


RECORDS = [
    _ok("slow_pass", [4e-3, 4.2e-3, 4.1e-3], 0.2),
    # an "ok" record whose verdict failed (a file written before bench failed such points): fastest, not first
    _ok("fast_wrong", [1e-4, 1e-4, 1e-4], 3.0),
    {"kind": "point", "point": dict(POINT, impl="nan_kernel"), "status": "failed",
     "error": "wrong result on the first call", "worst_err_bound": "inf"},
    _ok("fast_pass", [2e-3, 2.1e-3, 2e-3], 0.9),
    _ok("unjudged", [1e-3, 1e-3, 1e-3], None),
    {"kind": "point", "point": dict(POINT, impl="gpu_only"), "status": "skipped",
     "reason": "impl 'gpu_only' runs on cuda only"},
]


def test_the_leaderboard_ranks_the_passing_by_time_and_never_a_failing_one(tmp_path):
    [(label, group)] = entries(load(_file(tmp_path / "r.jsonl", RECORDS)).records)
    assert label == "T=10 B=2 I=4 H=4 cpu float32"
    got = [(e.record.point.impl, e.verdict, e.rank) for e in group]
    assert got == [("fast_pass", PASS, 1), ("slow_pass", PASS, 2), ("unjudged", UNJUDGED, None),
                   ("fast_wrong", FAIL, None), ("nan_kernel", FAIL, None), ("gpu_only", SKIPPED, None)]
    ratios = {e.record.point.impl: e.ratio for e in group}
    assert ratios["fast_pass"] == 1 and ratios["slow_pass"] == pytest.approx(4.1 / 2.0)
    assert ratios["unjudged"] == pytest.approx(0.5) and ratios["fast_wrong"] is None and ratios["nan_kernel"] is None
    assert [e.detail for e in group][3:] == ["err/bound 3", "err/bound inf", "impl 'gpu_only' runs on cuda only"]


def test_a_forward_only_kernel_is_never_ranked_against_forward_and_backward_times(tmp_path):
    # an inference engine's forward is faster than anyone's forward+backward: shown, passed, not ranked
    records = [_ok("engine", [1e-4, 1e-4, 1e-4], 0.1, timed="forward"), _ok("trainer", [2e-3, 2e-3, 2e-3], 0.2),
               _ok("slower", [3e-3, 3e-3, 3e-3], 0.2)]
    [(_, group)] = entries(load(_file(tmp_path / "r.jsonl", records)).records)
    assert [(e.record.point.impl, e.verdict, e.rank, e.ratio) for e in group] == [
        ("trainer", PASS, 1, 1.0), ("slower", PASS, 2, pytest.approx(1.5)), ("engine", PASS, None, None)]
    assert "forward only" in group[2].detail
    summary, rows, _ = leaderboard_rows(load(_file(tmp_path / "r.jsonl", records)))
    assert [r[0] for r in summary if r[1]] == ["trainer"]  # the only win


def test_report_leaderboard_shows_the_verdict_next_to_the_time(tmp_path, capsys):
    path = _file(tmp_path / "r.jsonl", RECORDS)
    code, stdout, _ = run(capsys, "report", "--leaderboard", path)
    assert code == EXIT_OK
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in stdout.splitlines()
            if line.startswith("| ") and "cpu float32" in line or line.startswith("|  |")]
    assert [r[1:3] for r in rows] == [["1", "fast_pass"], ["2", "slow_pass"], ["-", "unjudged"], ["-", "fast_wrong"],
                                      ["-", "nan_kernel"], ["-", "gpu_only"]]
    assert rows[0][-1] == "pass (err/bound 0.9)" and rows[3][-1] == "FAIL (err/bound 3)"
    assert rows[3][5] == "-" and rows[4][3] == "-"  # no ratio for a failing one, no time for one not measured
    assert rows[5][-1] == "skipped (impl 'gpu_only' runs on cuda only)"
    summary = [line for line in stdout.splitlines() if line.startswith("| fast_pass ")]
    assert summary and summary[0].split("|")[2].strip() == "1"  # fastest at 1 point
    code, _, err = run(capsys, "report", "--leaderboard", "--format", "html", path)
    assert code == EXIT_USAGE and "--leaderboard" in err


def test_bench_leaderboard_end_to_end_with_a_broken_and_a_skipped_kernel(tmp_path, capsys):
    out = tmp_path / "r.jsonl"
    code, stdout, _ = run(capsys, "bench", "--impl", "tests/kernels/broken.py:nan_gradient,vectorised,"
                          "tests/kernels/broken.py:cuda_only", "--device", "cpu", "-T", "3", "-B", "2", "-H", "8",
                          "--repeats", "2", "--no-peak", "--no-progress", "--no-memory", "--leaderboard", "--out", out)
    assert code == EXIT_FAIL
    table = stdout.split("\npoint ", 1)[1]  # the per-point table, after the summary
    rows = {impl: words for words in (line.split() for line in table.splitlines())
            for impl in ("vectorised", "nan_gradient", "cuda_only") if impl in words}

    def rank(impl):
        return rows[impl][rows[impl].index(impl) - 1]
    assert rank("vectorised") == "1" and "pass" in rows["vectorised"], stdout
    assert rank("nan_gradient") == "-" and rows["nan_gradient"][-3:] == ["FAIL", "(err/bound", "inf)"]
    assert rank("cuda_only") == "-" and "skipped" in rows["cuda_only"] and "cuda" in " ".join(rows["cuda_only"])


def test_a_suite_results_file_still_compares(tmp_path, capsys):
    grid = grid_dict(suite_grid(["fastrnns"]).replace(impls=("vectorised",), devices=("cpu",)))
    point = {"T": 100, "B": 64, "I": 512, "H": 512, "device": "cpu", "dtype": "float32"}
    base = _file(tmp_path / "base.jsonl", [_ok("vectorised", [1.0, 1.01, 0.99, 1.0, 1.02], point=point)], grid)
    new = _file(tmp_path / "new.jsonl", [_ok("vectorised", [1.0, 1.01, 0.99, 1.0, 1.02], point=point)], grid)
    code, stdout, err = run(capsys, "compare", base, new)
    assert code in (EXIT_OK, 3), err  # no change, or inconclusive at 5 repeats: compared, not refused
    assert "vectorised" in stdout


def test_a_point_every_implementation_skipped_for_one_reason_is_one_row(tmp_path, capsys):
    big = dict(POINT, T=4096)
    records = RECORDS + [{"kind": "point", "point": dict(big, impl=impl), "status": "skipped",
                          "reason": "too slow: more than 20 GFLOP"} for impl in ("a", "b", "c")]
    code, stdout, _ = run(capsys, "report", "--leaderboard", _file(tmp_path / "r.jsonl", records))
    table = stdout.split("| point |", 1)[1]  # the per-point table, after the summary
    rows = [line for line in table.splitlines() if "T=4096" in line or "| a |" in line or "| b |" in line]
    assert code == EXIT_OK and len(rows) == 1 and "all 3" in rows[0] and "skipped (too slow" in rows[0]
