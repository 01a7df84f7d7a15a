"""bench, plot and the main job under the exit-code contract: a verdict for every measured point,
5 when nothing was measured or drawn, outputs checked before the work and never overwritten,
every option's help with its default."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from clirun import run

from lstm_bench import cli, get_impl, register_impl, unregister_impl
from lstm_bench.bench.grid import Grid
from lstm_bench.bench.results import load, make_header
from lstm_bench.cli import bench as bench_cli
from lstm_bench.cli import main_job
from lstm_bench.cli.args import EXIT_FAIL, EXIT_NOTHING, EXIT_OK, EXIT_USAGE
from lstm_bench.cli.check import CheckOutcome
from lstm_bench.machine.timing import THREADS_ENV

TINY = ["-T", "3", "-B", "2", "-H", "4", "--repeats", "2", "--no-peak", "--no-progress", "--no-memory"]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    monkeypatch.setenv(THREADS_ENV, "1")
    monkeypatch.setenv("LSTM_BENCH_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def kernel():
    names = []

    def register(name, fn, **kw):
        register_impl(name, fn, replace=True, **kw)
        names.append(name)
        return name
    yield register
    for name in names:
        unregister_impl(name)


def _correct(case):
    return get_impl("autograd").fn(case)


# --- every measurement is a verdict ----------------------------------------------------------

def test_bench_fails_a_kernel_with_bf16_rounded_gradients_and_records_its_verdict(tmp_path, capsys, kernel):
    def rounded(case):  # ~3e-3 relative error on a float32 case: recorded "ok" before
        r = _correct(case)
        return dataclasses.replace(r, grads={k: v.to(torch.bfloat16).to(v.dtype) for k, v in r.grads.items()})

    name = kernel("_bf16_rounded_cli", rounded, devices=("cpu",))
    out = tmp_path / "r.jsonl"
    code, stdout, _ = run(capsys, "bench", "--impl", f"{name},vectorised", "--device", "cpu", *TINY, "--out", out)
    assert code == EXIT_FAIL
    recs = {r.point.impl: r for r in load(out).records}
    assert recs[name].status == "failed" and "wrong result on the first call" in recs[name].error
    assert recs[name].worst_err_bound > 1 and recs[name].err_bound == recs[name].worst_err_bound
    good = recs["vectorised"]
    assert good.status == "ok" and 0 <= good.measurement.worst_err_bound <= 1
    assert "err/bound" in stdout and "FAILED: wrong result" in stdout


# --- nothing measured: exit 5 ----------------------------------------------------------------

def test_bench_exits_5_for_a_cuda_only_kernel_on_a_machine_without_cuda(tmp_path, capsys, kernel):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the kernel would be measured")
    name = kernel("_cuda_only_cli", _correct, devices=("cuda",))
    code, _, err = run(capsys, "bench", "--impl", name, *TINY, "--out", tmp_path / "r.jsonl")
    assert code == EXIT_NOTHING and "nothing was measured" in err


def test_bench_exits_5_when_the_dtype_is_not_supported(tmp_path, capsys):
    code, stdout, err = run(capsys, "bench", "--impl", "autograd", "--dtype", "bfloat16", "--device", "cpu", *TINY,
                            "--out", tmp_path / "r.jsonl")
    assert code == EXIT_NOTHING and "nothing was measured" in err and "skipped" in stdout


def test_bench_exits_5_when_every_point_is_too_slow_and_names_their_own_size(tmp_path, capsys):
    code, stdout, err = run(capsys, "bench", "--impl", "reference", "-H", "100000", "--device", "cpu", "--no-peak",
                            "--no-progress", "--out", tmp_path / "r.jsonl")
    assert code == EXIT_NOTHING
    reasons = {r.reason for r in load(tmp_path / "r.jsonl").records}
    assert "H=1024 is" not in " ".join(reasons) and "at T=500, H=100000" in " ".join(reasons)


def test_a_failed_point_beats_nothing_measured(tmp_path, capsys, kernel):
    def nan(case):
        r = _correct(case)
        return dataclasses.replace(r, output=r.output * float("nan"))

    name = kernel("_nan_cli", nan, devices=("cpu",))
    code, _, _ = run(capsys, "bench", "--impl", name, "--device", "cpu", *TINY, "--out", tmp_path / "r.jsonl")
    assert code == EXIT_FAIL


def _results_file(path, records):
    lines = [make_header({"torch": torch.__version__, "threads": 1, "cpu": "test", "cpu_count": 2},
                         {"impls": ["vectorised"]}, {})] + records
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return path


POINT = {"impl": "vectorised", "T": 10, "B": 1, "I": 4, "H": 4, "device": "cpu", "dtype": "float32"}


def _ok(T, fb=(1e-3, 1.1e-3), **measurement):
    return {"kind": "point", "point": dict(POINT, T=T), "status": "ok",
            "measurement": {"forward_s": [], "forward_backward_s": list(fb), **measurement}}


def test_plot_exits_5_when_it_draws_nothing(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    skipped = _results_file(tmp_path / "skipped.jsonl", [
        {"kind": "point", "point": POINT, "status": "skipped", "reason": "device missing"}])
    code, _, err = run(capsys, "plot", skipped, "--out-dir", tmp_path / "png")
    assert code == EXIT_NOTHING and "nothing drawn" in err
    single = _results_file(tmp_path / "single.jsonl", [_ok(10)])  # one T, one H: no line to draw
    code, _, err = run(capsys, "plot", single, "--out-dir", tmp_path / "png2")
    assert code == EXIT_NOTHING and "nothing was drawn" in err


# --- outputs checked before the work, never overwritten -------------------------------------

def test_plot_never_replaces_another_runs_charts(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    results = _results_file(tmp_path / "r.jsonl", [_ok(10), _ok(20, (2e-3, 2.2e-3))])
    code, first, _ = run(capsys, "plot", results)
    assert code == EXIT_OK and (tmp_path / "r-plots" / "time_vs_T.png").exists()
    before = (tmp_path / "r-plots" / "time_vs_T.png").read_bytes()
    code, second, _ = run(capsys, "plot", results)  # the default folder is taken: a new one is made
    assert code == EXIT_OK and "r-plots-2" in second and (tmp_path / "r-plots-2" / "time_vs_T.png").exists()
    code, _, err = run(capsys, "plot", results, "--out-dir", tmp_path / "r-plots")
    assert code == EXIT_USAGE and "already exists" in err
    assert (tmp_path / "r-plots" / "time_vs_T.png").read_bytes() == before


def test_plot_marks_oversubscribed_points(tmp_path):
    pytest.importorskip("matplotlib")
    from lstm_bench.bench.plots import OVERSUBSCRIBED, _time_series, rows_of

    results = load(_results_file(tmp_path / "r.jsonl", [_ok(10), _ok(20, oversubscribed="tasks waited")]))
    rows = rows_of(results)
    assert [r["oversubscribed"] for r in rows] == [False, True]
    series = _time_series("T", ["vectorised"], {"vectorised": {}})(rows)
    marked = [s for s in series if s[0] == OVERSUBSCRIBED]
    assert len(marked) == 1 and marked[0][1] == [20]


@pytest.fixture
def no_work(monkeypatch):
    """Any measuring or checking fails the test: the output must be refused first."""
    def refuse(*args, **kwargs):
        raise AssertionError("work ran before the output was checked")
    monkeypatch.setattr(bench_cli, "run_sweep", refuse)
    monkeypatch.setattr(main_job, "run_sweep", refuse)
    monkeypatch.setattr(main_job, "run_check", refuse)


def test_bench_refuses_an_existing_or_unwritable_out_before_any_work(tmp_path, capsys, no_work):
    existing = tmp_path / "old.jsonl"
    existing.write_text("precious\n")
    code, _, err = run(capsys, "bench", "--impl", "vectorised", *TINY, "--out", existing)
    assert code == EXIT_USAGE and "already exists" in err and existing.read_text() == "precious\n"
    code, _, err = run(capsys, "bench", "--impl", "vectorised", *TINY, "--out", existing / "r.jsonl")
    assert code == EXIT_USAGE and "not a folder" in err


def test_the_main_job_refuses_an_existing_out_before_any_work(tmp_path, capsys, no_work):
    existing = tmp_path / "old.jsonl"
    existing.write_text("precious\n")
    code, _, err = run(capsys, "--out", existing)
    assert code == EXIT_USAGE and "already exists" in err and existing.read_text() == "precious\n"


@pytest.mark.slow  # the main job end to end (2.5 s): .ci/run runs it, the quick gate does not
def test_the_main_job_follows_the_exit_code_contract(tmp_path, capsys, monkeypatch):
    cuda_only = Grid(impls=("vectorised",), T=(2,), H=(4,), B=(1,), devices=("cuda",))
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the grid would be measured")
    monkeypatch.setattr(main_job, "QUICK_GRID", cuda_only)
    monkeypatch.setattr(main_job, "run_check", lambda *a, **k: CheckOutcome(True, False, EXIT_OK))
    code, _, err = run(capsys, "--repeats", "1")
    assert code == EXIT_NOTHING and "nothing was measured" in err
    monkeypatch.setattr(main_job, "run_check", lambda *a, **k: CheckOutcome(False, False, EXIT_FAIL))
    assert run(capsys, "--repeats", "1")[0] == EXIT_FAIL  # a failed check beats nothing measured
    monkeypatch.setattr(main_job, "QUICK_GRID", cuda_only.replace(devices=("cpu",)))
    monkeypatch.setattr(main_job, "run_check", lambda *a, **k: CheckOutcome(True, False, EXIT_OK))
    assert run(capsys, "--repeats", "1")[0] == EXIT_OK


# --- help ---------------------------------------------------------------------------------

def _options(parser):
    import argparse

    return [a for a in parser._actions if a.option_strings and not isinstance(a, argparse._HelpAction)
            and not isinstance(a, argparse._SubParsersAction)]


def test_every_option_of_bench_and_the_main_job_says_what_it_does_and_its_default():
    import argparse

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for prog, p in (("lstm-bench", parser), ("bench", sub.choices["bench"])):
        for action in _options(p):
            flag = action.option_strings[-1]
            assert action.help and action.help.strip(), f"{prog} {flag}: no help"
            if not isinstance(action, argparse._StoreTrueAction):
                assert "default" in action.help, f"{prog} {flag}: help does not say its default: {action.help!r}"
