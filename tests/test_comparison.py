"""compare_runs as library code: the one speed verdict (SpeedVerdict), a row per point with its outcome."""
from __future__ import annotations

import json

import pytest

from lstm_bench.bench.grid import Point
from lstm_bench.bench.results import ResultsError, make_header
from lstm_bench.comparison.runs import compare_runs, load_side
from lstm_bench.comparison.verdict import SpeedVerdict

ENV = {"torch": "2.13.0+cpu", "threads": 2, "cpu": "Test CPU", "gpu": None, "commit": "a"}
GRID = {"impls": ["vectorised"]}


def write(path, points: dict[int, object], env=ENV, *, load: dict | None = None, backend: str = ""):
    """A results file with one record per T: a list of seconds (ok), "failed" or "skipped"; every ok
    record with `load` and `backend` when given."""
    lines = [make_header(env, GRID, {})]
    for T, what in points.items():
        p = Point("vectorised", T, 1, 4, 4).as_dict()
        if what == "failed":
            lines.append({"kind": "point", "point": p, "status": "failed", "error": "RuntimeError: boom"})
        elif what == "skipped":
            lines.append({"kind": "point", "point": p, "status": "skipped", "reason": "too slow"})
        else:
            m = {"forward_s": [], "forward_backward_s": what, "backend": backend}
            if load:
                m["load"] = load
            lines.append({"kind": "point", "point": p, "status": "ok", "measurement": m})
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


FAST = [1.00e-3, 1.01e-3, 0.99e-3, 1.02e-3, 0.98e-3, 1.00e-3, 1.01e-3]


def by_T(c: SpeedVerdict) -> dict:
    return {r.point.T: r for r in c.rows}


def test_a_typed_result_with_verdicts_missing_and_broken_points(tmp_path):
    base = load_side(str(write(tmp_path / "b.jsonl", {2: FAST, 3: FAST, 4: FAST, 5: "skipped"})))
    new = load_side(str(write(tmp_path / "n.jsonl", {2: [3 * t for t in FAST], 3: FAST, 4: "failed",
                                                       5: "skipped"})))
    c = compare_runs(base, new, threshold=0.10)
    assert isinstance(c, SpeedVerdict)
    rows = by_T(c)
    assert set(rows) == {2, 3, 4}  # T=5 is skipped on both sides: not listed
    assert rows[2].outcome == "regression" and rows[2].stats.ratio == pytest.approx(3.0)
    assert rows[3].stats.verdict == "no change" and rows[3].outcome in ("no change", "inconclusive")
    assert rows[4].outcome == "failed" and "RuntimeError: boom (BASE measured it)" in rows[4].reason
    assert c.failed and c.status == "failed" and [r.point.T for r in c.regressions] == [2]
    assert c.counts()["regression"] == 1 and c.counts()["failed"] == 1


def test_incomparable_environments_are_refused_unless_forced(tmp_path):
    base = load_side(str(write(tmp_path / "b.jsonl", {2: FAST})))
    new = load_side(str(write(tmp_path / "n.jsonl", {2: FAST}, env={**ENV, "threads": 4})))
    with pytest.raises(ResultsError, match="thread count differs"):
        compare_runs(base, new)
    c = compare_runs(base, new, force=True)
    assert c.warnings and "thread count differs" in c.warnings[0] and not c.failed


def test_a_single_pair_of_few_repeats_is_said_to_be_underpowered(tmp_path):
    base = load_side(str(write(tmp_path / "b.jsonl", {2: FAST[:3]})))
    new = load_side(str(write(tmp_path / "n.jsonl", {2: [2 * t for t in FAST[:3]]})))
    c = compare_runs(base, new)
    assert any("no point can be judged significant" in w for w in c.warnings) and not c.failed
    # ... and a point that could not have seen the threshold is inconclusive, never "no change"
    assert c.rows[0].outcome == "inconclusive" and c.status == "inconclusive"


def run_cli(capsys, *argv):
    from lstm_bench import cli

    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_new_lacking_points_of_base_fails_unless_allowed(tmp_path, capsys):
    # The case: NEW holds 7 of BASE's 24 points. Before, "7 points: no change", exit 0.
    base = write(tmp_path / "b.jsonl", {T: FAST for T in range(2, 26)})
    new = write(tmp_path / "n.jsonl", {T: FAST for T in range(2, 9)})
    c = compare_runs(load_side(str(base)), load_side(str(new)))
    missing = [r for r in c.rows if "missing" in r.reason]
    assert len(c.verdicts) == 7 and len(missing) == 17 and c.failed
    assert {r.outcome for r in missing} == {"failed"}
    code, out, _ = run_cli(capsys, "compare", base, new)
    assert code == 1 and "17 failed" in out and out.count("missing (BASE measured it)") == 17
    code, out, _ = run_cli(capsys, "compare", base, new, "--allow-missing")
    assert code != 1 and "allowed)" in out and "17 not compared" in out
    # points NEW has and BASE lacks are only listed: BASE cannot have regressed
    code, out, _ = run_cli(capsys, "compare", new, base)
    assert code != 1 and "not in BASE" in out


def test_every_point_failed_in_new_exits_1_as_documented(tmp_path, capsys):
    base = write(tmp_path / "b.jsonl", {2: FAST, 3: FAST})
    new = write(tmp_path / "n.jsonl", {2: "failed", 3: "failed"})
    c = compare_runs(load_side(str(base)), load_side(str(new)))
    assert c.verdicts == [] and [r.outcome for r in c.rows] == ["failed", "failed"] and c.failed
    code, out, err = run_cli(capsys, "compare", base, new)
    assert code == 1, err
    assert "2 failed" in out and out.count("FAILED in NEW") == 2


def test_runs_are_judged_as_runs_and_a_single_pair_says_it_is_not_calibrated(tmp_path):
    # Five runs a side whose repeats agree closely but whose levels moved with the load:
    # repeat-level tests call that a change; the run-level test does not.
    levels = [1.0, 1.25, 0.85, 1.1, 0.95]
    base = [write(tmp_path / f"b{i}.jsonl", {2: [x * t for t in FAST]}) for i, x in enumerate(levels)]
    new = [write(tmp_path / f"n{i}.jsonl", {2: [x * t for t in FAST]}) for i, x in enumerate(levels[1:] + [1.3])]
    c = compare_runs(load_side(",".join(map(str, base))), load_side(",".join(map(str, new))))
    assert c.verdicts[0].method == "runs" and c.verdicts[0].verdict == "no change" and not c.failed
    assert c.rows[0].outcome == "inconclusive"  # five runs swinging by 25 %: a 5 % slowdown could hide there
    pooled = compare_runs(load_side(str(base[0])), load_side(str(new[0])))  # 1.0 vs 1.25, one run each
    assert pooled.verdicts[0].method == "repeats" and pooled.verdicts[0].verdict == "slower"
    assert any("one run on a side" in note for note in pooled.notes)


def test_compare_says_when_the_runs_were_taken_under_load(tmp_path, capsys):
    path = write(tmp_path / "b.jsonl", {2: FAST})
    lines = path.read_text().splitlines()
    rec = json.loads(lines[1])
    rec["measurement"]["load"] = {"load_start": 5.2, "load_end": 6.0, "steal": 0.0, "threads": 2, "cpus": 2}
    loaded = tmp_path / "loaded.jsonl"
    loaded.write_text(lines[0] + "\n" + json.dumps(rec) + "\n")
    code, out, _ = run_cli(capsys, "compare", path, loaded)
    assert "TAKEN UNDER LOAD: load average 5.2-6.0 on 2 CPUs" in out
    code, out, _ = run_cli(capsys, "compare", path, path)
    assert "UNDER LOAD" not in out


LOADED = {"load_start": 5.2, "load_end": 6.0, "steal": 0.0, "threads": 2, "cpus": 2}
QUIET = {"load_start": 0.3, "load_end": 0.4, "steal": 0.0, "threads": 2, "cpus": 2}
RUNS = [[x * t for t in FAST] for x in (1.0, 1.01, 0.99, 1.0, 1.005)]  # five quiet runs, within 1 %


def _runs(tmp_path, name, levels, **kw):
    return ",".join(str(write(tmp_path / f"{name}{i}.jsonl", {2: [x * t for t in FAST]}, **kw))
                    for i, x in enumerate(levels))


def test_a_slowdown_measured_under_load_is_inconclusive_in_compare_never_a_regression(tmp_path, capsys):
    """Two identical sweeps, NEW's beside a busy neighbour, read 3.36x and exited 1 (the issue). Separate runs
    do not share their load: such a point is inconclusive (exit 3), and the reason says so."""
    base = _runs(tmp_path, "b", [1.0, 1.01, 0.99, 1.0, 1.005], load=QUIET)
    slow_loaded = _runs(tmp_path, "n", [3.3, 3.4, 3.36, 3.35, 3.3], load=LOADED)
    c = compare_runs(load_side(base), load_side(slow_loaded))
    row = c.rows[0]
    assert row.stats.verdict == "slower" and row.stats.regression  # the test alone would call it
    assert row.outcome == "inconclusive" and "measured under load" in row.reason and "regression" in row.reason
    code, out, _ = run_cli(capsys, "compare", base, slow_loaded)
    assert code == 3 and "INCONCLUSIVE" in out and "but measured under load (load average 0.3-6.0" in out
    # the same figures measured quietly: a regression, exit 1
    slow_quiet = _runs(tmp_path, "q", [3.3, 3.4, 3.36, 3.35, 3.3], load=QUIET)
    code, out, _ = run_cli(capsys, "compare", base, slow_quiet)
    assert code == 1 and "REGRESSION" in out


def test_no_change_needs_a_test_that_could_have_seen_the_threshold(tmp_path, capsys):
    quiet = _runs(tmp_path, "b", [1.0, 1.01, 0.99, 1.0, 1.005])
    same = _runs(tmp_path, "n", [1.005, 1.0, 0.995, 1.01, 1.0])
    c = compare_runs(load_side(quiet), load_side(same))
    assert c.rows[0].outcome == "no change" and c.rows[0].stats.detectable <= 0.05
    assert run_cli(capsys, "compare", quiet, same)[0] == 0
    swinging = _runs(tmp_path, "s", [1.0, 1.3, 0.8, 1.2, 0.9])  # the same mean, runs 20 % apart
    c = compare_runs(load_side(quiet), load_side(swinging))
    assert c.rows[0].stats.verdict == "no change" and c.rows[0].outcome == "inconclusive"
    assert c.rows[0].stats.more_for_target > 0
    code, out, _ = run_cli(capsys, "compare", quiet, swinging)
    assert code == 3 and f"about {c.rows[0].stats.more_for_target} more runs a side would decide it" in out


def test_compare_flags_a_point_whose_backend_changed(tmp_path, capsys):
    base = write(tmp_path / "b.jsonl", {2: FAST}, backend="mkl-gemm+fused-loop")
    new = write(tmp_path / "n.jsonl", {2: FAST}, backend="onednn-gemm+fused-cell")
    c = compare_runs(load_side(str(base)), load_side(str(new)))
    assert c.rows[0].backend_base == "mkl-gemm+fused-loop" and c.rows[0].backend_new == "onednn-gemm+fused-cell"
    assert any("backend changed" in n for n in c.rows[0].notes)
    code, out, _ = run_cli(capsys, "compare", base, new)
    assert "backend changed: mkl-gemm+fused-loop in BASE, onednn-gemm+fused-cell in NEW" in out
    same = compare_runs(load_side(str(base)), load_side(str(base)))
    assert not same.rows[0].notes


@pytest.mark.parametrize("where, message", [("exists", "already exists"), ("no-folder", "no such folder")])
def test_an_unwritable_json_is_refused_before_anything_is_compared(tmp_path, capsys, where, message):
    base = write(tmp_path / "b.jsonl", {2: FAST})
    new = write(tmp_path / "n.jsonl", {2: [3 * t for t in FAST]})
    target = tmp_path / "out.json" if where == "exists" else tmp_path / "missing" / "out.json"
    if where == "exists":
        target.write_text("keep me")
    code, out, err = run_cli(capsys, "compare", base, new, "--json", target)
    assert code == 2 and message in err and out == ""  # refused first: nothing compared, nothing printed
    assert where != "exists" or target.read_text() == "keep me"


def test_the_json_is_the_verdict(tmp_path, capsys):
    base = write(tmp_path / "b.jsonl", {2: FAST, 3: FAST})
    new = write(tmp_path / "n.jsonl", {2: [3 * t for t in FAST], 3: "failed"})
    code, _, _ = run_cli(capsys, "compare", base, new, "--json", tmp_path / "v.json")
    data = json.loads((tmp_path / "v.json").read_text())
    assert code == 1 and data["kind"] == "lstm-bench-compare" and data["status"] == "failed"
    assert {p["point"]["T"]: p["outcome"] for p in data["points"]} == {2: "regression", 3: "failed"}


def test_ab_keeps_a_loaded_regression_but_says_so_and_compare_does_not_keep_it():
    from lstm_bench.comparison.stats import compare_pairs
    from lstm_bench.comparison.verdict import row_from_stats
    from lstm_bench.machine.load import Load

    stats = compare_pairs({"p": ([1.0, 1.01, 0.99, 1.0] * 5, [2.0, 2.02, 1.98, 2.0] * 5)})[0]
    assert stats.outcome == "regression"
    point = Point("vectorised", 2, 1, 4, 4)
    loaded = Load.from_json(LOADED)
    paired = row_from_stats(point, stats, load=loaded, paired=True)
    assert paired.outcome == "regression" and any("measured under load" in n for n in paired.notes)
    separate = row_from_stats(point, stats, load=loaded, paired=False)
    assert separate.outcome == "inconclusive" and "measured under load" in separate.reason
    assert row_from_stats(point, stats, load=Load.from_json(QUIET), paired=False).outcome == "regression"


def test_the_comparison_commands_import_no_sibling_command():
    """Shared CLI helpers live in cli/args.py and cli/output.py, never in another command's module."""
    import ast
    from pathlib import Path

    cli = Path(__file__).resolve().parent.parent / "lstm_bench" / "cli"
    for name in ("ab.py", "compare.py"):
        tree = ast.parse((cli / name).read_text())
        siblings = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 1}
        assert siblings <= {"args", "output"}, (name, siblings)
