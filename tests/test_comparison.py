"""compare_runs as library code: a typed Comparison with verdicts, missing and broken points."""
from __future__ import annotations

import json

import pytest

from lstm_bench.bench.grid import Point
from lstm_bench.bench.results import ResultsError, make_header
from lstm_bench.comparison.runs import Comparison, compare_runs, load_side

ENV = {"torch": "2.13.0+cpu", "threads": 2, "cpu": "Test CPU", "gpu": None, "commit": "a"}
GRID = {"impls": ["vectorised"]}


def write(path, points: dict[int, object], env=ENV):
    """A results file with one record per T: a list of seconds (ok), "failed" or "skipped"."""
    lines = [make_header(env, GRID, {})]
    for T, what in points.items():
        p = Point("vectorised", T, 1, 4, 4).as_dict()
        if what == "failed":
            lines.append({"kind": "point", "point": p, "status": "failed", "error": "RuntimeError: boom"})
        elif what == "skipped":
            lines.append({"kind": "point", "point": p, "status": "skipped", "reason": "too slow"})
        else:
            lines.append({"kind": "point", "point": p, "status": "ok",
                          "measurement": {"forward_s": [], "forward_backward_s": what}})
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


FAST = [1.00e-3, 1.01e-3, 0.99e-3, 1.02e-3, 0.98e-3, 1.00e-3, 1.01e-3]


def test_a_typed_result_with_verdicts_missing_and_broken_points(tmp_path):
    base = load_side(str(write(tmp_path / "b.jsonl", {2: FAST, 3: FAST, 4: FAST, 5: "skipped"})))
    new = load_side(str(write(tmp_path / "n.jsonl", {2: [3 * t for t in FAST], 3: FAST, 4: "failed",
                                                       5: "skipped"})))
    c = compare_runs(base, new, threshold=0.10)
    assert isinstance(c, Comparison)
    by_T = {c.points[v.key].T: v for v in c.verdicts}
    assert set(by_T) == {2, 3}
    assert by_T[2].verdict == "slower" and by_T[2].regression and by_T[2].ratio == pytest.approx(3.0)
    assert by_T[3].verdict == "no change" and not by_T[3].regression
    key4 = Point("vectorised", 4, 1, 4, 4).key
    assert c.missing == [key4] and c.broken == [key4]  # T=5 is skipped on both sides: not missing
    assert c.failed and [v.key for v in c.regressions] == [Point("vectorised", 2, 1, 4, 4).key]
    assert c.counts() == {"faster": 0, "slower": 1, "no change": 1}


def test_incomparable_environments_are_refused_unless_forced(tmp_path):
    base = load_side(str(write(tmp_path / "b.jsonl", {2: FAST})))
    new = load_side(str(write(tmp_path / "n.jsonl", {2: FAST}, env={**ENV, "threads": 4})))
    with pytest.raises(ResultsError, match="thread count differs"):
        compare_runs(base, new)
    c = compare_runs(base, new, force=True)
    assert c.problems and "thread count differs" in c.problems[0] and not c.failed


def test_a_single_pair_of_few_repeats_is_said_to_be_underpowered(tmp_path):
    base = load_side(str(write(tmp_path / "b.jsonl", {2: FAST[:3]})))
    new = load_side(str(write(tmp_path / "n.jsonl", {2: [2 * t for t in FAST[:3]]})))
    c = compare_runs(base, new)
    assert "no point can be judged significant" in c.underpowered and not c.failed


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
    assert len(c.verdicts) == 7 and len(c.missing_in_new) == 17 and c.failed
    code, out, _ = run_cli(capsys, "compare", base, new)
    assert code == 1 and "17 measured in BASE but missing in NEW" in out and out.count("MISSING in NEW") == 17
    code, out, _ = run_cli(capsys, "compare", base, new, "--allow-missing")
    assert code == 0 and "(allowed)" in out
    # points NEW has and BASE lacks are only listed: BASE cannot have regressed
    code, _, _ = run_cli(capsys, "compare", new, base)
    assert code == 0


def test_every_point_failed_in_new_exits_1_as_documented(tmp_path, capsys):
    base = write(tmp_path / "b.jsonl", {2: FAST, 3: FAST})
    new = write(tmp_path / "n.jsonl", {2: "failed", 3: "failed"})
    c = compare_runs(load_side(str(base)), load_side(str(new)))
    assert c.verdicts == [] and len(c.broken) == 2 and c.failed
    code, out, err = run_cli(capsys, "compare", base, new)
    assert code == 1, err
    assert "2 measured in BASE but failed in NEW" in out and out.count("FAILED in NEW") == 2


def test_runs_are_judged_as_runs_and_a_single_pair_says_it_is_not_calibrated(tmp_path):
    # Five runs a side whose repeats agree closely but whose levels moved with the load:
    # repeat-level tests call that a change; the run-level test does not.
    levels = [1.0, 1.25, 0.85, 1.1, 0.95]
    base = [write(tmp_path / f"b{i}.jsonl", {2: [x * t for t in FAST]}) for i, x in enumerate(levels)]
    new = [write(tmp_path / f"n{i}.jsonl", {2: [x * t for t in FAST]}) for i, x in enumerate(levels[1:] + [1.3])]
    c = compare_runs(load_side(",".join(map(str, base))), load_side(",".join(map(str, new))))
    assert c.verdicts[0].method == "runs" and c.verdicts[0].verdict == "no change" and not c.failed
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
