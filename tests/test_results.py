"""The results file: validation of synthetic files, no clobbering, bad files exit 2 and stay untouched."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from lstm_bench import cli
from lstm_bench.bench.grid import Point
from lstm_bench.bench.records import PointRecord
from lstm_bench.bench.results import ResultsError, Writer, load, make_header

ENV = {"torch": "2.13.0+cpu", "threads": 2, "cpu": "Test CPU", "gpu": None, "commit": "abc"}
GRID = {"impls": ["vectorised"], "T": [10, 100], "H": [64], "B": [1], "devices": ["cpu"], "dtypes": ["float32"],
        "I": None}
SETTINGS = {"repeats": 5, "warmup": 1, "seed": 0, "accuracy": False, "memory": False}


def point(T: int, impl: str = "vectorised") -> dict:
    return {"impl": impl, "T": T, "B": 1, "I": 64, "H": 64, "device": "cpu", "dtype": "float32"}


def key(p: dict) -> str:
    return f"{p['impl']}|T={p['T']}|B={p['B']}|I={p['I']}|H={p['H']}|{p['device']}|{p['dtype']}"


def record(T: int, times: list[float], impl: str = "vectorised") -> dict:
    p = point(T, impl)
    return {"kind": "point", "point": p, "status": "ok",
            "measurement": {"forward_s": [t / 3 for t in times], "forward_backward_s": times,
                            "saved_bytes": 1000 * T, "peak_bytes": 3000 * T, "max_rel_error": 1e-7}}


def write(path: Path, *, env: dict = ENV, grid: dict = GRID, records=None) -> Path:
    lines = [make_header(env, grid, SETTINGS)]
    lines += records if records is not None else [record(10, [1e-3, 1.1e-3, 0.9e-3, 1e-3, 1.05e-3]),
                                                  record(100, [1e-2, 1.1e-2, 0.9e-2, 1e-2, 1.05e-2])]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_valid_file_loads(tmp_path):
    res = load(write(tmp_path / "r.jsonl"))
    assert res.env["torch"] == ENV["torch"]
    assert [r.point.T for r in res.ok()] == [10, 100]


def test_half_written_last_line_is_reported_and_left_alone(tmp_path, capsys):
    path = write(tmp_path / "r.jsonl")
    partial = json.dumps(record(500, [1.0] * 5))[:40]  # the process died inside the write
    with path.open("a") as f:
        f.write(partial)
    before = path.read_bytes()
    with pytest.raises(ResultsError, match=r"r.jsonl:4: the last record is half-written"):
        load(path)
    for argv in (["compare", path, path], ["plot", path],
                 ["bench", "--impl", "vectorised", "-T", "10", "-H", "64", "-B", "1", "--device", "cpu",
                  "--out", path, "--resume", "--no-peak", "--no-progress"]):
        code, out, err = run(capsys, *argv)
        assert code == 2, argv
        assert "half-written" in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1
    assert path.read_bytes() == before  # nothing truncated, nothing appended


def test_corrupt_json_in_the_middle_names_the_line(tmp_path):
    path = write(tmp_path / "r.jsonl")
    lines = path.read_text().splitlines(keepends=True)
    lines[1] = lines[1].replace('"status"', '"status', 1)
    path.write_text("".join(lines))
    with pytest.raises(ResultsError, match=r"r.jsonl:2: not valid JSON"):
        load(path)


@pytest.mark.parametrize("drop, message", [("status", "missing 'status'"), ("point", "missing 'point'")])
def test_missing_fields(tmp_path, drop, message):
    rec = record(10, [1e-3] * 3)
    del rec[drop]
    with pytest.raises(ResultsError, match=message):
        load(write(tmp_path / "r.jsonl", records=[rec]))


def test_missing_times(tmp_path):
    rec = record(10, [1e-3] * 3)
    del rec["measurement"]["forward_backward_s"]
    with pytest.raises(ResultsError, match=r"r.jsonl:2: measurement.forward_backward_s must be a list"):
        load(write(tmp_path / "r.jsonl", records=[rec]))


def _bad_point(rec):
    rec["point"] = 3


def _bad_key(rec):
    rec["key"] = ["vectorised"]  # format 1 stored the key; a stored key must match the point


def _missing_size(rec):
    del rec["point"]["T"]


def _zero_time(rec):
    rec["measurement"]["forward_backward_s"] = [1e-3, 0.0, 1e-3]


def _bool_time(rec):
    rec["measurement"]["forward_backward_s"] = [True, 1e-3]


@pytest.mark.parametrize("spoil, message", [
    (_bad_point, r"r.jsonl:2: 'point' must be an object"),
    (_bad_key, r"r.jsonl:2: 'key' \['vectorised'\] does not match its point"),
    (_missing_size, r"r.jsonl:2: 'point' is not a valid grid point"),
    (_zero_time, r"r.jsonl:2: measurement.forward_backward_s must be a list of positive seconds"),
    (_bool_time, r"r.jsonl:2: measurement.forward_backward_s must be a list of positive seconds"),
])
def test_wrongly_typed_records_are_named_not_crashed_on(tmp_path, spoil, message):
    # Parseable JSON of the wrong shape must be refused at load, not crash compare or plot later.
    rec = record(10, [1e-3] * 3)
    spoil(rec)
    with pytest.raises(ResultsError, match=message):
        load(write(tmp_path / "r.jsonl", records=[rec]))


def test_a_header_grid_that_is_not_an_object_is_named(tmp_path):
    with pytest.raises(ResultsError, match=r"r.jsonl:1: header grid must be an object"):
        load(write(tmp_path / "r.jsonl", grid=["vectorised"]))


def test_not_a_results_file(tmp_path):
    path = tmp_path / "other.jsonl"
    path.write_text('{"hello": 1}\n')
    with pytest.raises(ResultsError, match="not an lstm-bench results file"):
        load(path)
    with pytest.raises(ResultsError, match="no such results file"):
        load(tmp_path / "missing.jsonl")
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ResultsError, match="empty file"):
        load(tmp_path / "empty.jsonl")


def test_compare_refuses_another_torch_version(tmp_path, capsys):
    base = write(tmp_path / "base.jsonl")
    new = write(tmp_path / "new.jsonl", env={**ENV, "torch": "2.12.0+cpu"})
    code, out, err = run(capsys, "compare", base, new)
    assert code == 2
    assert "torch version differs" in err and "--force" in err
    code, out, err = run(capsys, "compare", base, new, "--force")
    # compared: identical files, not significant; one run a side of 5 repeats spread by 20 % cannot see a
    # 5 % slowdown, so inconclusive (exit 3), not "no change"
    assert code == 3 and "warning: torch version differs" in err
    assert "2 inconclusive" in out


def test_compare_refuses_another_grid(tmp_path, capsys):
    base = write(tmp_path / "base.jsonl")
    new = write(tmp_path / "new.jsonl", grid={**GRID, "T": [10]})
    code, _, err = run(capsys, "compare", base, new)
    assert code == 2 and "grids differ in T" in err


def test_compare_on_synthetic_files_flags_a_3x_slowdown(tmp_path, capsys):
    times = [1e-3, 1.1e-3, 0.9e-3, 1e-3, 1.05e-3, 0.95e-3, 1.02e-3]
    base = write(tmp_path / "base.jsonl", records=[record(10, times)])
    new = write(tmp_path / "new.jsonl", records=[record(10, [3 * t for t in times])])
    code, out, _ = run(capsys, "compare", base, new)
    assert code == 1 and "REGRESSION" in out
    code, out, _ = run(capsys, "compare", new, base)  # the other way round it is faster
    assert code == 0 and "faster" in out and "REGRESSION" not in out


def test_compare_fails_when_a_point_measured_in_base_fails_in_new(tmp_path, capsys):
    # A change that makes a point crash (or run out of memory) is worse than any slowdown.
    base = write(tmp_path / "base.jsonl")
    failed = {"kind": "point", "key": key(point(100)), "point": point(100), "status": "failed",
              "error": "OutOfMemoryError: simulated"}
    new = write(tmp_path / "new.jsonl", records=[record(10, [1e-3, 1.1e-3, 0.9e-3, 1e-3, 1.05e-3]), failed])
    code, out, _ = run(capsys, "compare", str(base), str(new))
    assert code == 1
    assert "FAILED in NEW" in out and "OutOfMemoryError: simulated (BASE measured it)" in out


def test_writer_never_clobbers(tmp_path):
    path = write(tmp_path / "r.jsonl")
    before = path.read_bytes()
    with pytest.raises(ResultsError, match="already exists; pass --resume"):
        Writer(path, make_header(ENV, GRID, SETTINGS))
    assert path.read_bytes() == before


def test_resume_appends_and_refuses_another_environment(tmp_path):
    path = write(tmp_path / "r.jsonl")
    before = path.read_bytes()
    with pytest.raises(ResultsError, match="cannot resume.*torch"):
        Writer(path, make_header({**ENV, "torch": "9.9"}, GRID, SETTINGS), resume=True)
    with Writer(path, make_header(ENV, GRID, SETTINGS), resume=True) as w:
        assert w.done == {key(point(10)), key(point(100))}
        w.point(PointRecord(Point.from_dict(point(500)), "failed", error="OutOfMemoryError: no"))
    after = path.read_bytes()
    assert after.startswith(before)
    res = load(path)
    assert res.by_key()[key(point(500))].status == "failed"


# A file written by lstm-bench 0.1 (results format 1), verbatim but for the shortened header.
FORMAT_1 = [
    {"kind": "header", "format": "lstm-bench-results", "version": 1, "created": "2026-11-24T10:00:00+00:00",
     "env": ENV, "grid": GRID, "settings": SETTINGS},
    {"kind": "point", "key": "vectorised|T=10|B=1|I=64|H=64|cpu|float32", "point": point(10), "status": "ok",
     "time": "2026-11-24T10:00:01+00:00",
     "measurement": {"key": "vectorised|T=10|B=1|I=64|H=64|cpu|float32", "point": point(10),
                     "forward_s": [4e-4, 5e-4], "forward_backward_s": [1e-3, 1.2e-3], "forward_median_s": 4.5e-4,
                     "forward_backward_median_s": 1.1e-3, "saved_bytes": 1000, "peak_bytes": 3000,
                     "flops_forward": 655360, "flops_forward_backward": 1966080, "gflops": 1.79,
                     "max_rel_error": 2e-7, "threads": 2, "backend": "vectorised", "torch": "2.13.0+cpu"}},
]


def test_a_format_1_file_loads_and_resumes_in_format_1(tmp_path):
    path = tmp_path / "old.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in FORMAT_1))
    res = load(path)
    (rec,) = res.ok()
    assert rec.point.T == 10 and rec.measurement.forward_backward_s == (1e-3, 1.2e-3)
    assert rec.measurement.saved_bytes == 1000 and rec.measurement.backend == "vectorised"
    assert rec.gflops == pytest.approx(1966080 / 1.1e-3 / 1e9)  # derived from the point, as format 1 stored it
    header = {**FORMAT_1[0], "version": 2}  # what a sweep of today would write
    with Writer(path, header, resume=True) as w:
        w.point(PointRecord(Point.from_dict(point(100)), "skipped", reason="too slow"))
    appended = json.loads(path.read_text().splitlines()[-1])
    assert appended["key"] == key(point(100))  # format 1 readers need the key
    assert load(path).by_key()[key(point(100))].reason == "too slow"


def test_unreadable_file_is_one_line(tmp_path, capsys):
    path = tmp_path / "binary.jsonl"
    path.write_bytes(b"\xff\xfe\x00garbage")
    code, _, err = run(capsys, "plot", path)
    assert code == 2 and "not a text file" in err and len(err.strip().splitlines()) == 1


def test_two_sweeps_cannot_write_one_file_at_once(tmp_path):
    path = tmp_path / "r.jsonl"
    with Writer(path, make_header(ENV, GRID, SETTINGS)):
        with pytest.raises(ResultsError, match="another lstm-bench sweep is writing"):
            Writer(path, make_header(ENV, GRID, SETTINGS), resume=True)
    with Writer(path, make_header(ENV, GRID, SETTINGS), resume=True) as w:  # free again once closed
        assert w.done == set()


def test_load_and_instructions_round_trip_and_files_without_them_still_load(tmp_path):
    from lstm_bench.bench.records import Measurement
    from lstm_bench.machine.load import Load

    m = Measurement((1e-3,), (3e-3, 3.1e-3), load=Load(1.5, 2.5, 0.01, 2, 2), instructions=123456, peak_gflops=370.0)
    stored = json.loads(json.dumps(m.to_json()))
    assert stored["load"] == {"load_start": 1.5, "load_end": 2.5, "steal": 0.01, "threads": 2, "cpus": 2}
    assert Measurement.from_json(stored) == m
    old = {"forward_s": [1e-3], "forward_backward_s": [3e-3]}  # format 1 and 2 files hold neither field
    assert Measurement.from_json(old).load is None and Measurement.from_json(old).instructions is None
    assert "load" not in Measurement.from_json(old).to_json()  # nothing new is written for them either
    res = load(write(tmp_path / "r.jsonl"))  # the synthetic files of this module have no load fields
    assert all(r.measurement.load is None for r in res.ok())


@pytest.mark.parametrize("bad, message", [
    ({"load": {"load_start": -1, "load_end": 1, "steal": None, "threads": 1, "cpus": 2}}, "load.load_start"),
    ({"load": {"load_start": 1, "load_end": 1, "steal": 2.0, "threads": 1, "cpus": 2}}, "load.steal"),
    ({"load": {"load_start": 1, "load_end": 1, "steal": 0, "threads": 0, "cpus": 2}}, "load.threads"),
    ({"load": "busy"}, "load must be an object"),
    ({"instructions": "many"}, "measurement.instructions"),
])
def test_bad_new_fields_name_the_field(tmp_path, bad, message):
    rec = record(10, [1e-3, 1.1e-3])
    rec["measurement"].update(bad)
    path = write(tmp_path / "r.jsonl", records=[rec])
    with pytest.raises(ResultsError, match=r"r.jsonl:2: .*" + message):
        load(path)
