"""compare_runs as library code: a typed Comparison with verdicts, missing and broken points."""
from __future__ import annotations

import json

import pytest

from lstm_bench.comparison import Comparison, compare_runs, load_side
from lstm_bench.grid import Point
from lstm_bench.results import ResultsError, make_header

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
