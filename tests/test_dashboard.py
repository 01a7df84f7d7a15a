"""The fleet's merge step and what people look at, in a real browser: asv's dashboard and the HTML report.

Two machines (this one, and a forced second fingerprint: the same CPU at another thread
count) each leave an asv results folder for two commits, as the fleet workflow's jobs
upload them; `merge_asv_results` gathers them, `asv publish` builds the site, and
headless Chromium opens the page of `TimeStep.time_forward_backward` (our parameters:
impl, device, dtype, T, B, H). The asv results are hand-written in asv's results format
(version 2, as `asv run` 0.6 writes it), so the test costs a publish and two page loads,
not a benchmark run. Skipped with the reason where chromium (or the packaged JavaScript
asv's site loads from CDNs) is absent. Set $LSTM_BENCH_SCREENSHOTS to a folder to keep
the screenshots.
"""
from __future__ import annotations

import ast
import base64
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import PIL.Image
import pytest
from browser import CHROMIUM_MISSING, VENDOR_MISSING, instrument, open_page, serve, vendor_asv_site

from lstm_bench.bench.grid import CI_GRID
from lstm_bench.bench.results import load, make_header
from lstm_bench.machine.environment import environment
from lstm_bench.machine.fingerprint import fingerprint
from lstm_bench.report.fleet import merge_asv_results
from lstm_bench.report.html import render_html

pytestmark = pytest.mark.slow  # a browser and asv: run by .ci/run, not by the quick `python -m pytest -n auto`

ROOT = Path(__file__).resolve().parent.parent
BENCHMARK = "bench_lstm.TimeStep.time_forward_backward"
COLUMNS = ["result", "params", "version", "started_at", "duration", "stats_ci_99_a", "stats_ci_99_b", "stats_q_25",
           "stats_q_75", "stats_number", "stats_repeat", "samples", "profile"]
VERSION = "0" * 64
browser_needed = pytest.mark.skipif(CHROMIUM_MISSING is not None, reason=CHROMIUM_MISSING or "")


def suite_param_names() -> list[str]:
    """PARAM_NAMES of the project's asv suite, read from its source (importing it would warm torch's profiler)."""
    tree = ast.parse((ROOT / "benchmarks" / "bench_lstm.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "PARAM_NAMES":
            return ast.literal_eval(node.value)
    raise AssertionError("benchmarks/bench_lstm.py has no PARAM_NAMES")


def asv_params() -> list[list[str]]:
    """The asv parameters of CI_GRID, as asv stores them (reprs), in the suite's order."""
    axes = {"impl": CI_GRID.impls, "device": CI_GRID.devices, "dtype": CI_GRID.dtypes, "T": CI_GRID.T,
            "B": CI_GRID.B, "H": CI_GRID.H}
    return [[repr(v) for v in axes[name]] for name in suite_param_names()]


def git_repo(path: Path) -> list[str]:
    """A repository with two commits (what asv orders the results by); their hashes."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    run = lambda *a, **kw: subprocess.run(["git", "-C", str(path), *a], check=True, capture_output=True,  # noqa: E731
                                          text=True, env={**env, **kw})
    path.mkdir()
    run("init", "-q", "-b", "main")
    hashes = []
    for i, date in enumerate(("2026-12-01T10:00:00", "2026-12-02T10:00:00")):
        run("commit", "-q", "--allow-empty", "-m", f"commit {i}", GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date)
        hashes.append(run("rev-parse", "HEAD").stdout.strip())
    return hashes


def asv_artifact(folder: Path, machine: str, commits: list[str], scale: float) -> None:
    """One machine's upload: results/<machine>/machine.json and a results file per commit (2nd commit 10 % slower)."""
    params = asv_params()
    machine_info = {"arch": "x86_64", "cpu": f"test cpu of {machine}", "machine": machine, "num_cpu": "2",
                    "os": "Linux", "ram": "25276194816"}
    (folder / machine).mkdir(parents=True)
    (folder / machine / "machine.json").write_text(json.dumps({**machine_info, "version": 1}))
    n = 1
    for axis in params:
        n *= len(axis)
    for i, commit in enumerate(commits):
        values = [scale * (1 + 0.1 * i) * 1e-3 * (k + 1) for k in range(n)]
        row = [values, params, VERSION, 1796400000000 + i, 1.0] + [None] * (len(COLUMNS) - 5)
        doc = {"commit_hash": commit, "env_name": "existing-py", "date": 1796400000000 + i * 86400000,
               "params": {**machine_info, "python": "3.11"}, "python": "3.11", "requirements": {}, "env_vars": {},
               "result_columns": COLUMNS, "results": {BENCHMARK: row}, "durations": {}, "version": 2}
        (folder / machine / f"{commit[:8]}-existing-py.json").write_text(json.dumps(doc))
    benchmarks = {BENCHMARK: {"code": "def time_forward_backward(self, *args): ...", "min_run_count": 2,
                              "name": BENCHMARK, "number": 0, "param_names": suite_param_names(), "params": params,
                              "rounds": 2, "sample_time": 0.01, "timeout": 600.0, "type": "time",
                              "unit": "seconds", "version": VERSION, "warmup_time": 0.0},
                  "version": 2}
    (folder / "benchmarks.json").write_text(json.dumps(benchmarks))


def machines() -> list[str]:
    """asv machine names of this machine and of a forced second fingerprint (another thread count)."""
    one = fingerprint(environment(threads=2))
    two = fingerprint(environment(threads=1))
    assert one["hash"] != two["hash"]
    return [f"cpu-{one['hash']}", f"cpu-{two['hash']}"]


def keep(shot: Path) -> None:
    if os.environ.get("LSTM_BENCH_SCREENSHOTS"):
        shutil.copy(shot, Path(os.environ["LSTM_BENCH_SCREENSHOTS"]) / shot.name)


def test_merge_keeps_one_folder_per_machine_and_refuses_a_name_clash(tmp_path):
    commits = ["a" * 40, "b" * 40]
    names = machines()
    for i, name in enumerate(names):
        asv_artifact(tmp_path / f"artifact-{i}", name, commits, scale=1.0 + i)
    merged = tmp_path / "results"
    assert merge_asv_results([tmp_path / "artifact-0", tmp_path / "artifact-1"], merged) == names
    assert sorted(p.parent.name for p in merged.glob("*/machine.json")) == sorted(names)
    assert len(list((merged / names[1]).glob("*-existing-py.json"))) == 2
    # a third upload under the first machine's name but from other hardware: refused, nothing overwritten
    asv_artifact(tmp_path / "clash", names[0], commits, scale=5.0)
    info = json.loads((tmp_path / "clash" / names[0] / "machine.json").read_text())
    (tmp_path / "clash" / names[0] / "machine.json").write_text(json.dumps({**info, "cpu": "another cpu"}))
    before = {p: p.read_bytes() for p in merged.rglob("*.json")}
    with pytest.raises(ValueError, match="in two artifacts with different machine.json"):
        merge_asv_results([tmp_path / "clash"], merged)
    assert {p: p.read_bytes() for p in merged.rglob("*.json")} == before


@browser_needed
@pytest.mark.skipif(VENDOR_MISSING is not None, reason=VENDOR_MISSING or "")
def test_asv_dashboard_of_two_machines_and_two_commits_renders_our_benchmark(tmp_path):
    commits = git_repo(tmp_path / "repo")
    names = machines()
    for i, name in enumerate(names):
        asv_artifact(tmp_path / f"artifact-{i}", name, commits, scale=1.0 + i)
    merge_asv_results([tmp_path / "artifact-0", tmp_path / "artifact-1"], tmp_path / "results")
    conf = {"version": 1, "project": "lstm-bench", "project_url": "https://example.invalid/lstm-bench",
            "repo": str(tmp_path / "repo"), "branches": ["main"], "environment_type": "virtualenv",
            "benchmark_dir": str(ROOT / "benchmarks"), "results_dir": str(tmp_path / "results"),
            "html_dir": str(tmp_path / "html"), "env_dir": str(tmp_path / "env")}
    (tmp_path / "asv.conf.json").write_text(json.dumps(conf))
    publish = subprocess.run([sys.executable, "-m", "asv", "publish", "--config", str(tmp_path / "asv.conf.json")],
                             capture_output=True, text=True, cwd=tmp_path)
    assert publish.returncode == 0, publish.stdout + publish.stderr
    site = tmp_path / "html"
    vendor_asv_site(site)
    instrument(site / "index.html")
    shot = tmp_path / "asv_dashboard.png"
    with serve(site) as url:
        page = open_page(f"{url}/#{BENCHMARK}", shot)
    keep(shot)
    assert page["errors"] == []
    assert page["plots"], "no flot plot on the benchmark's page"
    series = page["plots"][0]
    labels = " ".join(s["label"] for s in series)
    for name in names:  # both machines, each its own series, never pooled
        assert f"machine-{name}" in labels
    assert "impl-vectorised" in labels and "impl-nn_lstm" in labels
    assert all(s["points"] == 2 for s in series), series  # two commits on every line
    assert len(series) == len(names) * len(CI_GRID.impls) * len(CI_GRID.T)  # H=64 is the page's default choice
    assert shot.stat().st_size > 10_000


def _results(path: Path, threads: int, scale: float) -> Path:
    env = {"torch": "2.13.0+cpu", "threads": threads, "cpu": "Test CPU", "cpu_count": 2, "gpu": None, "commit": "abc"}
    fp = fingerprint(env)
    grid = {"impls": ["vectorised", "nn_lstm"], "T": [10, 100], "H": [64], "B": [1], "devices": ["cpu"],
            "dtypes": ["float32"], "I": None}
    lines = [make_header(env, grid, {"repeats": 5}, fingerprint=fp)]
    for impl in ("vectorised", "nn_lstm"):
        for T in (10, 100):
            t = scale * T * (1e-5 if impl == "vectorised" else 2e-5)
            lines.append({"kind": "point", "point": {"impl": impl, "T": T, "B": 1, "I": 64, "H": 64, "device": "cpu",
                                                     "dtype": "float32"}, "status": "ok",
                          "measurement": {"forward_s": [t / 3] * 5, "forward_backward_s": [t, 1.02 * t, 0.98 * t,
                                                                                           t, 1.01 * t],
                                          "saved_bytes": 1000 * T, "peak_bytes": 3000 * T, "max_rel_error": 1e-7}})
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return path


def test_html_report_keeps_two_machines_apart(tmp_path):
    a, b = load(_results(tmp_path / "a.jsonl", 2, 1.0)), load(_results(tmp_path / "b.jsonl", 1, 1.5))
    page = render_html([a, b])
    assert a.fingerprint["hash"] != b.fingerprint["hash"]
    sections = page.split("<h2>")[1:]
    assert len(sections) == 2
    assert a.fingerprint["hash"] in sections[0] and b.path.name not in sections[0]
    assert b.fingerprint["hash"] in sections[1] and a.path.name not in sections[1]
    assert "http" not in page.replace("http-equiv", "")  # self-contained: nothing fetched
    pngs = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(pngs) == 2 * 3  # per machine: time vs T, memory vs T, ratio to nn_lstm
    for data in pngs:  # whole PNGs (a browser shows a truncated one's top half without complaint)
        image = PIL.Image.open(io.BytesIO(base64.b64decode(data)))
        image.load()
        assert image.size[0] > 300 and image.size[1] > 200


@browser_needed
def test_html_report_renders_its_plots_in_chromium(tmp_path):
    a, b = load(_results(tmp_path / "a.jsonl", 2, 1.0)), load(_results(tmp_path / "b.jsonl", 1, 1.5))
    verdicts = {"kind": "lstm-bench-ab", "threshold": 0.05, "alpha": 0.05, "verdicts": [
        {"key": "vectorised|T=100|B=1|I=64|H=64|cpu|float32", "base_median": 1e-3, "new_median": 1.12e-3,
         "ratio": 1.12, "ci_low": 1.08, "ci_high": 1.16, "verdict": "slower", "regression": True, "detectable": 0.03,
         "spread_base": 0.02, "spread_new": 0.03},
        {"key": "nn_lstm|T=100|B=1|I=64|H=64|cpu|float32", "base_median": 2e-3, "new_median": 2e-3, "ratio": 1.0,
         "ci_low": 0.9, "ci_high": 1.1, "verdict": "no change", "regression": False, "detectable": 0.12,
         "spread_base": 0.2, "spread_new": 0.1}], "runs": []}
    site = tmp_path / "site"
    site.mkdir()
    (site / "report.html").write_text(render_html([a, b], [("ab.json", verdicts)]))
    instrument(site / "report.html")
    shot = tmp_path / "html_report.png"
    with serve(site) as url:
        page = open_page(f"{url}/report.html", shot)
    keep(shot)
    assert page["errors"] == []
    # the comparison's chart, and per machine time vs T, memory vs T and ratio to nn_lstm
    assert page["images"] == 1 + 2 * 3
    assert page["broken_images"] == 0


def test_the_fleet_workflow_runs_commands_this_lstm_bench_has():
    """The workflow cannot run here (GPU runners); its lstm-bench command lines must at least parse."""
    yaml = pytest.importorskip("yaml")
    import shlex

    from lstm_bench.cli import build_parser

    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "fleet.yml").read_text())
    assert workflow["jobs"]["merge"]["needs"] == "measure"
    labels = [m["label"] for m in workflow["jobs"]["measure"]["strategy"]["matrix"]["include"]]
    assert "cpu" in labels and len(labels) >= 3  # a CPU runner and GPU runners
    commands = []
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            script = step.get("run", "").replace("\\\n", " ")
            for line in script.splitlines():
                for i, part in enumerate(line.split("$(")):  # commands inside $(...) too
                    part = (part.split(")")[0] if i else part).strip()
                    if part.startswith("lstm-bench "):
                        commands.append(part.split(">")[0].split("|")[0])
    assert len(commands) >= 6, commands
    for command in commands:
        argv = shlex.split(command.replace("${{ matrix.devices }}", "cpu").replace("${{ matrix.label }}", "cpu"))[1:]
        build_parser().parse_args(argv)  # UsageError (a test failure) on a flag this version lacks
