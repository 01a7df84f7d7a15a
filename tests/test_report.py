"""Reports for people: the markdown of a comparison (a PR comment) and of sweeps, and `lstm-bench report`."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from clirun import run

from lstm_bench.bench.results import make_header
from lstm_bench.report.markdown import MAX_ROWS, render_markdown

ROOT = Path(__file__).resolve().parent.parent
ENV = {"torch": "2.13.0+cpu", "threads": 2, "cpu": "Test CPU", "cpu_count": 2, "gpu": None, "commit": "abc"}
GRID = {"impls": ["vectorised"], "T": [10, 100], "H": [64], "B": [1], "devices": ["cpu"], "dtypes": ["float32"],
        "I": None}


def verdict(T: int, ratio: float, *, verdict: str = "no change", regression: bool = False,
            detectable: float | None = 0.03, spread: float = 0.02) -> dict:
    return {"key": f"vectorised|T={T}|B=1|I=64|H=64|cpu|float32", "base_median": 1e-3, "new_median": ratio * 1e-3,
            "ratio": ratio, "ci_low": ratio - 0.02, "ci_high": ratio + 0.02, "p_value": 0.01, "p_adjusted": 0.02,
            "verdict": verdict, "regression": regression, "method": "batches", "n": 10, "detectable": detectable,
            "more_for_target": 0, "spread_base": spread, "spread_new": spread, "noisy": spread > 0.1}


def test_summary_first_names_the_regression_the_inconclusive_and_the_noise():
    text = render_markdown([verdict(10, 1.0), verdict(100, 1.2, verdict="slower", regression=True),
                            verdict(500, 1.01, detectable=0.2, spread=0.3), verdict(20, 0.9, verdict="faster")])
    head, summary = text.split("\n\n")[:2]
    assert head.startswith("**lstm-bench compare: 1 regression(s)**")
    lines = summary.splitlines()
    assert lines[0] == "- Regression: `vectorised T=100 B=1 I=64 H=64 cpu float32` +20.0% (95% CI +18.0% to +22.0%)"
    assert lines[1].startswith("- Inconclusive: 1 point(s)") and "T=500" in lines[1] and "sees 20.0%" in lines[1]
    assert lines[2] == "- Noise: 1 of 4 point(s) NOISY (repeats spread by more than 10.0%, IQR/median)"
    table = [line for line in text.splitlines() if line.startswith("| vectorised")]
    assert "REGRESSION" in table[0] and "T=100" in table[0]  # the regression leads the table
    assert "http" not in text and "](" not in text  # link-free


def test_no_regression_says_so_and_every_point_could_see_the_threshold():
    text = render_markdown({"verdicts": [verdict(10, 1.0)], "threshold": 0.05, "alpha": 0.05})
    assert text.startswith("**lstm-bench compare: no regression**")
    assert "- Inconclusive: none" in text


def test_a_large_comparison_stays_short_enough_for_a_comment():
    many = [verdict(T, 1.0) for T in range(1, 3000)] + [verdict(5000, 1.5, verdict="slower", regression=True)]
    text = render_markdown(many)
    assert len(text) < 65536 and f"{len(many) - MAX_ROWS} more point(s) not shown" in text
    assert "T=5000" in text.split("| point")[1].splitlines()[2]  # the one regression survives the cut


def test_not_a_verdict_json_is_named():
    with pytest.raises(ValueError, match="no list of verdicts"):
        render_markdown({"kind": "lstm-bench-results"})


def _results(path: Path, threads: int) -> Path:
    rec = {"kind": "point", "point": {"impl": "vectorised", "T": 10, "B": 1, "I": 64, "H": 64, "device": "cpu",
                                      "dtype": "float32"}, "status": "ok",
           "measurement": {"forward_s": [3e-4] * 3, "forward_backward_s": [1e-3, 1.5e-3, 0.9e-3]}}
    failed = {"kind": "point", "point": {**rec["point"], "T": 100}, "status": "failed", "error": "RuntimeError: boom"}
    path.write_text("".join(json.dumps(r) + "\n" for r in
                            [make_header({**ENV, "threads": threads}, GRID, {"repeats": 3}), rec, failed]))
    return path


def test_report_of_two_machines_has_a_section_each(tmp_path, capsys):
    a, b = _results(tmp_path / "a.jsonl", 2), _results(tmp_path / "b.jsonl", 1)
    code, out, err = run(capsys, "report", a, b)
    assert code == 0, err
    assert "from 2 machine(s)" in out.splitlines()[0]
    sections = out.split("\n### ")[1:]
    assert len(sections) == 2 and "2 threads of" in sections[0] and "1 thread of" in sections[1]
    assert "a.jsonl" in sections[0] and "b.jsonl" not in sections[0]
    assert "1 point(s) measured, 1 failed, 0 skipped, 1 NOISY" in out  # IQR/median of the repeats: 30 %
    assert "failed: RuntimeError: boom" in out


def test_report_reads_compare_json_and_writes_a_new_file_only(tmp_path, capsys):
    verdicts = tmp_path / "cmp.json"
    verdicts.write_text(json.dumps([verdict(100, 1.2, verdict="slower", regression=True)]))
    out_file = tmp_path / "r.html"
    code, _, err = run(capsys, "report", verdicts, _results(tmp_path / "a.jsonl", 2), "--format", "html",
                       "--out", out_file)
    assert code == 0, err
    page = out_file.read_text()
    assert page.count("data:image/png;base64,") == 1 and "Comparison: cmp.json" in page  # the NEW/BASE chart
    assert "time_vs_T.png not drawn: the results hold a single T value" in page  # the sweep's one point: said why
    code, _, err = run(capsys, "report", verdicts, "--out", out_file)
    assert code == 2 and "already exists" in err and out_file.read_text() == page
    (tmp_path / "junk.json").write_text('{"hello": 1}')
    code, _, err = run(capsys, "report", tmp_path / "junk.json")
    assert code == 2 and "nor is it the JSON of compare/ab --json" in err


@pytest.mark.slow  # run by .ci/run, not by the quick `python -m pytest`
def test_ab_writes_a_markdown_report_a_pull_request_can_carry(tmp_path, capsys):
    md, js = tmp_path / "ab.md", tmp_path / "ab.json"
    # NEW busy-waits 2x its own time on every call (lstm_bench.comparison.ab_worker): a 3x slowdown,
    # flagged on a quiet machine; under a neighbour's load the verdict may differ, so the report is
    # checked against the verdict the command gave, not against a verdict assumed here.
    code, out, err = run(capsys, "ab", "--base", sys.executable, "--new", sys.executable, "--impl", "vectorised",
                         "-T", "3", "-B", "1", "-H", "8", "--device", "cpu", "--pairs", "9", "--processes", "3",
                         "--min-time", "0.005", "--new-env", "LSTM_BENCH_INJECT_SLOWDOWN=2", "--markdown", md,
                         "--json", js, "--no-progress")
    assert code in (0, 1, 3), out + err  # 3: inconclusive, in the exit-code contract
    text, data = md.read_text(), json.loads(js.read_text())
    assert text.startswith("**lstm-bench ab (interleaved A/B): ")
    regressions = [v for v in data["verdicts"] if v["regression"]]
    assert (code == 1) == bool(regressions)
    if regressions:
        assert "1 regression(s)**" in text and "- Regression: `vectorised T=3 B=1 I=8 H=8 cpu float32` +" in text
    else:
        assert "no regression**" in text and "- Regression" not in text
    assert "| vectorised T=3 B=1 I=8 H=8 cpu float32 |" in text
    assert "- Machine: " in text and "[fp " in text
